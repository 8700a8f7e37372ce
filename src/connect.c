/* sockit_create_connection: every resolved address, raced with Happy Eyeballs
 * (RFC 8305), under one deadline that covers name resolution and every attempt. */
#include "internal.h"
#include "resolve_deadline.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* RFC 8305 section 5 recommends 250 ms between connection attempts: long enough
 * for a healthy path to answer, short enough that a dead one costs little. */
#define CONNECT_ATTEMPT_DELAY_NS (250 * 1000000LL)
/* Resolved addresses beyond this many are not tried. */
#define CONNECT_MAX_ADDRS 16
/* Room for the "tried ..." list in the error message. */
#define CONNECT_TRIED_LEN 900

typedef struct attempt {
    sockit_addr addr;
    int family;
    int fd;    /* -1 when not started or finished */
    int error; /* 0: not tried yet or in flight */
    bool started;
} attempt;

typedef struct race {
    attempt at[CONNECT_MAX_ADDRS];
    size_t count;
    size_t next;     /* the next attempt to start */
    size_t inflight; /* attempts with fd >= 0 */
    const sockit_addr *source;
} race;

/* RFC 8305 section 4: alternate families, starting with the family of the first
 * address, so one broken family delays a connection by one attempt at most. */
static void order_interleaved(race *r, const sockit_addrinfo *ai, size_t n)
{
    int first = ai[0].family;
    size_t a = 0, b = 0;
    while (r->count < n) {
        while (a < n && ai[a].family != first)
            a++;
        while (b < n && ai[b].family == first)
            b++;
        if (a < n)
            r->at[r->count++].addr = ai[a++].addr;
        if (b < n)
            r->at[r->count++].addr = ai[b++].addr;
    }
    for (size_t i = 0; i < r->count; i++) {
        r->at[i].family = r->at[i].addr.u.sa.sa_family;
        r->at[i].fd = -1;
    }
}

static void finish(race *r, attempt *at, int error)
{
    if (at->fd >= 0) {
        close(at->fd);
        at->fd = -1;
        r->inflight--;
    }
    at->error = error;
}

/* Starts the next attempt. Returns its index if it connected at once, else -1. */
static int start_next(race *r)
{
    size_t i = r->next++;
    attempt *at = &r->at[i];
    at->started = true;
    at->fd = socket(at->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (at->fd < 0) {
        at->error = -errno;
        return -1;
    }
    r->inflight++;
    if (r->source != NULL && bind(at->fd, &r->source->u.sa, r->source->len) < 0) {
        finish(r, at, -errno);
        return -1;
    }
    if (sockit__sys_connect(at->fd, &at->addr.u.sa, at->addr.len) == 0)
        return (int)i;
    int err = errno;
    /* A non-blocking connect interrupted by a signal still proceeds in the kernel,
     * exactly as one in progress does. */
    if (err != EINPROGRESS && err != EINTR)
        finish(r, at, -err);
    return -1;
}

/* Polls every attempt in flight until wake. Returns the index of a connected
 * attempt, or -1 with *err 0 (none yet, or EINTR: the caller recomputes the time
 * left) or -errno of poll. Sets *any_failed when an attempt failed. */
static int poll_inflight(race *r, int64_t wake, bool *any_failed, int *err)
{
    struct pollfd pfd[CONNECT_MAX_ADDRS];
    size_t idx[CONNECT_MAX_ADDRS];
    nfds_t n = 0;
    for (size_t i = 0; i < r->next; i++) {
        if (r->at[i].fd >= 0) {
            pfd[n] = (struct pollfd){.fd = r->at[i].fd, .events = POLLOUT};
            idx[n++] = i;
        }
    }
    int ready = poll(pfd, n, sockit__remaining_ms(wake));
    if (ready < 0) {
        *err = errno == EINTR ? 0 : -errno;
        return -1;
    }
    for (nfds_t k = 0; k < n && ready > 0; k++) {
        if (pfd[k].revents == 0)
            continue;
        attempt *at = &r->at[idx[k]];
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(at->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        if (soerr == 0 && (pfd[k].revents & POLLOUT))
            return (int)idx[k];
        finish(r, at, soerr != 0 ? -soerr : -ECONNRESET);
        *any_failed = true;
    }
    return -1;
}

/* Runs the race until one attempt connects. Returns its index, or -1 with *code:
 * 0 when every attempt failed, SOCKIT_ETIMEOUT, or -errno of poll. */
static int run_race(race *r, int64_t deadline, int *code)
{
    int64_t next_start = sockit__now_ns();
    for (;;) {
        int64_t now = sockit__now_ns();
        bool expired = deadline != SOCKIT__NEVER && now >= deadline;
        /* The first attempt always starts, so even a zero timeout gets one poll in
         * which a loopback connect can complete. */
        bool may_start = r->next < r->count && (r->next == 0 || !expired);
        if (may_start && (r->inflight == 0 || now >= next_start)) {
            int won = start_next(r);
            if (won >= 0)
                return won;
            /* An attempt that failed at once (no route, no IPv6) hands over at once. */
            bool pending = r->at[r->next - 1].fd >= 0;
            next_start = pending ? now + CONNECT_ATTEMPT_DELAY_NS : now;
            continue;
        }
        if (r->inflight == 0) {
            *code = r->next < r->count ? SOCKIT_ETIMEOUT : 0;
            return -1;
        }
        int64_t wake = deadline;
        if (may_start && next_start < wake)
            wake = next_start;
        bool any_failed = false;
        int err = 0;
        int won = poll_inflight(r, wake, &any_failed, &err);
        if (won >= 0)
            return won;
        if (err < 0) {
            *code = err;
            return -1;
        }
        if (expired) {
            *code = SOCKIT_ETIMEOUT;
            return -1;
        }
        /* RFC 8305 section 5: a failed attempt lets the next one start at once. */
        if (any_failed)
            next_start = sockit__now_ns();
    }
}

static void describe_failure(const race *r, char *buf, size_t size)
{
    char tried[CONNECT_TRIED_LEN] = "", untried[CONNECT_TRIED_LEN] = "";
    size_t nt = 0, nu = 0;
    for (size_t i = 0; i < r->count; i++) {
        const attempt *at = &r->at[i];
        if (at->started) {
            sockit__tried_append(tried, sizeof tried, &nt, &at->addr, at->error);
            continue;
        }
        char text[SOCKIT_ADDRSTRLEN];
        sockit__addr_text(&at->addr, text, sizeof text);
        int w = snprintf(untried + nu, sizeof untried - nu, "%s%s", nu ? ", " : "", text);
        if (w > 0 && (size_t)w < sizeof untried - nu)
            nu += (size_t)w;
        else
            untried[nu] = '\0';
    }
    snprintf(buf, size, "%s%s%s%s", nt ? "tried " : "", tried,
             nu == 0 ? ""
             : nt    ? "; not tried: "
                     : "not tried: ",
             untried);
}

/* Wraps a connected descriptor in the mode the caller asked for. */
static sockit *adopt(int fd, int family, double timeout, const char *where)
{
    if (timeout < 0) {
        int rc = sockit__set_nonblock(fd, false);
        if (rc < 0) {
            close(fd);
            sockit__failf(rc, "connect to %s: restoring blocking mode", where);
            return NULL;
        }
    }
    sockit *s = sockit__wrap(fd, family, SOCK_STREAM, timeout < 0 ? SOCKIT_BLOCKING : timeout);
    if (s == NULL)
        close(fd);
    return s;
}

static sockit *connect_unix(const char *host, int port, double timeout, const sockit_addr *source)
{
    if (port != 0) {
        sockit__failf(SOCKIT_EBADPORT, "connect to %s: port %d given for a Unix socket (use 0)",
                      host, port);
        return NULL;
    }
    sockit_addr addr;
    int rc = sockit_addr_parse(&addr, host);
    if (rc < 0 || sockit_addr_family(&addr) != AF_UNIX) {
        sockit__failf(rc < 0 ? rc : SOCKIT_EBADADDR, "connect to %s", host);
        return NULL;
    }
    if (source != NULL && sockit_addr_family(source) != AF_UNIX) {
        sockit__failf(SOCKIT_ENOADDR, "connect to %s: source address is not a Unix address", host);
        return NULL;
    }
    sockit *s = sockit_socket(AF_UNIX, SOCK_STREAM);
    if (s == NULL)
        return NULL;
    rc = sockit_settimeout(s, timeout);
    if (rc == 0 && source != NULL && bind(s->fd, &source->u.sa, source->len) < 0) {
        rc = -errno;
        sockit_close(s);
        char text[SOCKIT_ADDRSTRLEN];
        sockit__addr_text(source, text, sizeof text);
        sockit__failf(rc, "connect to %s: binding the source address %s", host, text);
        return NULL;
    }
    if (rc == 0)
        rc = sockit__connect_raw(s, &addr, sockit__deadline(timeout));
    if (rc == 0)
        return s;
    sockit_close(s);
    /* With a zero timeout the deadline has passed before a full backlog drains. */
    if (rc == -EINPROGRESS || rc == SOCKIT_EWOULDBLOCK)
        rc = SOCKIT_ETIMEOUT;
    sockit__failf(rc, "connect to %s", host);
    return NULL;
}

sockit *sockit_create_connection(const char *host, int port, double timeout,
                                 const sockit_addr *source)
{
    if (isnan(timeout)) {
        sockit__failf(-EINVAL, "create_connection: timeout is NaN");
        return NULL;
    }
    if (host != NULL && strncmp(host, "unix:", 5) == 0)
        return connect_unix(host, port, timeout, source);
    char where[SOCKIT_ADDRSTRLEN + 64];
    sockit__hostport(where, sizeof where, host, port);
    char op[sizeof where + 16];
    snprintf(op, sizeof op, "connect to %s", where);
    if (sockit__check_port(op, port, false) < 0)
        return NULL;
    int64_t deadline = sockit__deadline(timeout);

    int family = AF_UNSPEC;
    if (source != NULL) {
        family = sockit_addr_family(source);
        if (family != AF_INET && family != AF_INET6) {
            sockit__failf(SOCKIT_EBADADDR, "connect to %s: source is not an IP address", where);
            return NULL;
        }
    }
    sockit_addrinfo ai[CONNECT_MAX_ADDRS];
    ssize_t n = sockit__resolve_deadline(host, port, family, SOCK_STREAM, 0, deadline, ai,
                                         CONNECT_MAX_ADDRS);
    if (n < 0) {
        if (n == SOCKIT_ETIMEOUT)
            sockit__failf(SOCKIT_ETIMEOUT, "connect to %s: resolving the name", where);
        else
            sockit__failf((int)n, "connect to %s", where);
        return NULL;
    }

    race r;
    memset(&r, 0, sizeof r);
    r.source = source;
    order_interleaved(&r, ai, (size_t)n);
    int code = 0;
    int won = run_race(&r, deadline, &code);
    if (won >= 0) {
        int fd = r.at[won].fd;
        int fam = r.at[won].family;
        /* The winner's descriptor is handed over; only the losers are closed. */
        r.at[won].fd = -1;
        r.inflight--;
        for (size_t i = 0; i < r.next; i++)
            finish(&r, &r.at[i], r.at[i].error);
        return adopt(fd, fam, timeout, where);
    }
    /* Attempts still in flight are abandoned for the reason the race ended. */
    for (size_t i = 0; i < r.next; i++)
        if (r.at[i].fd >= 0)
            finish(&r, &r.at[i], code);
    if (code == 0)
        code = r.at[0].error;
    if (r.count == 1 && r.at[0].started) {
        /* One address: its reason is the message's own; only the address is added. */
        char text[SOCKIT_ADDRSTRLEN];
        sockit__addr_text(&r.at[0].addr, text, sizeof text);
        if (strcmp(text, where) == 0)
            sockit__failf(code, "connect to %s", where);
        else
            sockit__failf(code, "connect to %s (%s)", where, text);
        return NULL;
    }
    char tried[CONNECT_TRIED_LEN];
    describe_failure(&r, tried, sizeof tried);
    sockit__failf(code, "connect to %s (%s)", where, tried);
    return NULL;
}
