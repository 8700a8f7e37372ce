/* sockit_create_connection: every resolved address, raced with Happy Eyeballs
 * (RFC 8305), under one deadline that covers name resolution and every attempt. */
#include "connect_race.h"
#include "internal.h"
#include "resolve_deadline.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Polls every attempt in flight until wake. Returns the index of a connected
 * attempt, or -1 with *err 0 (none yet, or EINTR: the caller recomputes the time
 * left) or -errno of poll. Sets *any_failed when an attempt failed. */
static int poll_inflight(sockit__race *r, int64_t wake, bool *any_failed, int *err)
{
    struct pollfd pfd[SOCKIT__RACE_MAX];
    size_t idx[SOCKIT__RACE_MAX];
    nfds_t n = sockit__race_pollfds(r, pfd, idx);
    int ready = poll(pfd, n, sockit__remaining_ms(wake));
    if (ready < 0) {
        *err = errno == EINTR ? 0 : -errno;
        return -1;
    }
    for (nfds_t k = 0; k < n && ready > 0; k++) {
        short ev = pfd[k].revents;
        int rc =
            sockit__race_check(r, idx[k], (ev & POLLOUT) != 0, (ev & (POLLERR | POLLHUP)) != 0);
        if (rc == 1)
            return (int)idx[k];
        if (rc < 0)
            *any_failed = true;
    }
    return -1;
}

/* Runs the race until one attempt connects. Returns its index, or -1 with *code:
 * 0 when every attempt failed, SOCKIT_ETIMEOUT, or -errno of poll. */
static int run_race(sockit__race *r, int64_t deadline, int *code)
{
    int64_t next_start = sockit__now_ns();
    for (;;) {
        int64_t now = sockit__now_ns();
        bool expired = deadline != SOCKIT__NEVER && now >= deadline;
        /* The first attempt always starts, so even a zero timeout gets one poll in
         * which a loopback connect can complete. */
        bool may_start = r->next < r->count && (r->next == 0 || !expired);
        if (may_start && (r->inflight == 0 || now >= next_start)) {
            int won = sockit__race_start_next(r);
            if (won >= 0)
                return won;
            /* An attempt that failed at once (no route, no IPv6) hands over at once. */
            bool pending = r->at[r->next - 1].fd >= 0;
            next_start = pending ? now + SOCKIT__ATTEMPT_DELAY_NS : now;
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
    sockit_addrinfo ai[SOCKIT__RACE_MAX];
    ssize_t n = sockit__resolve_deadline(host, port, family, SOCK_STREAM, 0, deadline, ai,
                                         SOCKIT__RACE_MAX);
    if (n < 0) {
        if (n == SOCKIT_ETIMEOUT)
            sockit__failf(SOCKIT_ETIMEOUT, "connect to %s: resolving the name", where);
        else
            sockit__failf((int)n, "connect to %s", where);
        return NULL;
    }

    sockit__race r;
    sockit__race_init(&r, ai, (size_t)n, source);
    int code = 0;
    int won = run_race(&r, deadline, &code);
    if (won >= 0) {
        int fam = r.at[won].family;
        return adopt(sockit__race_take(&r, (size_t)won), fam, timeout, where);
    }
    sockit__race_fail(&r, code, where);
    return NULL;
}
