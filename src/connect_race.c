/* A Happy Eyeballs race's attempts (connect_race.h). */
#include "connect_race.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Room for the "tried ..." list in the error message. */
#define RACE_TRIED_LEN 900

/* RFC 8305 section 4: alternate families, starting with the family of the first
 * address, so one broken family delays a connection by one attempt at most. */
void sockit__race_init(sockit__race *r, const sockit_addrinfo *ai, size_t n,
                       const sockit_addr *source)
{
    memset(r, 0, sizeof *r);
    r->source = source;
    if (n > SOCKIT__RACE_MAX)
        n = SOCKIT__RACE_MAX;
    int first = n > 0 ? ai[0].family : AF_UNSPEC;
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

void sockit__race_finish(sockit__race *r, sockit__attempt *at, int error)
{
    if (at->fd >= 0) {
        close(at->fd);
        at->fd = -1;
        r->inflight--;
    }
    at->error = error;
}

int sockit__race_start_next(sockit__race *r)
{
    size_t i = r->next++;
    sockit__attempt *at = &r->at[i];
    at->started = true;
    at->fd = socket(at->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (at->fd < 0) {
        at->error = -errno;
        return -1;
    }
    r->inflight++;
    if (r->source != NULL && bind(at->fd, &r->source->u.sa, r->source->len) < 0) {
        sockit__race_finish(r, at, -errno);
        return -1;
    }
    if (sockit__sys_connect(at->fd, &at->addr.u.sa, at->addr.len) == 0)
        return (int)i;
    int err = errno;
    /* A non-blocking connect interrupted by a signal still proceeds in the kernel,
     * exactly as one in progress does. */
    if (err != EINPROGRESS && err != EINTR)
        sockit__race_finish(r, at, -err);
    return -1;
}

int sockit__race_check(sockit__race *r, size_t i, bool writable, bool failed)
{
    sockit__attempt *at = &r->at[i];
    if (!writable && !failed)
        return 0;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(at->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr == 0 && writable)
        return 1;
    int code = soerr != 0 ? -soerr : -ECONNRESET;
    sockit__race_finish(r, at, code);
    return code;
}

nfds_t sockit__race_pollfds(const sockit__race *r, struct pollfd *pfd, size_t *idx)
{
    nfds_t n = 0;
    for (size_t i = 0; i < r->next; i++) {
        if (r->at[i].fd >= 0) {
            pfd[n] = (struct pollfd){.fd = r->at[i].fd, .events = POLLOUT};
            idx[n++] = i;
        }
    }
    return n;
}

int sockit__race_take(sockit__race *r, size_t won)
{
    int fd = r->at[won].fd;
    /* The winner's descriptor is handed over; only the losers are closed. */
    r->at[won].fd = -1;
    r->inflight--;
    for (size_t i = 0; i < r->next; i++)
        sockit__race_finish(r, &r->at[i], r->at[i].error);
    return fd;
}

static void describe_failure(const sockit__race *r, char *buf, size_t size)
{
    char tried[RACE_TRIED_LEN] = "", untried[RACE_TRIED_LEN] = "";
    size_t nt = 0, nu = 0;
    for (size_t i = 0; i < r->count; i++) {
        const sockit__attempt *at = &r->at[i];
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

int sockit__race_fail(sockit__race *r, int code, const char *where)
{
    /* Attempts still in flight are abandoned for the reason the race ended. */
    for (size_t i = 0; i < r->next; i++)
        if (r->at[i].fd >= 0)
            sockit__race_finish(r, &r->at[i], code);
    if (code == 0)
        code = r->count > 0 ? r->at[0].error : SOCKIT_ENOADDR;
    if (r->count == 1 && r->at[0].started) {
        /* One address: its reason is the message's own; only the address is added. */
        char text[SOCKIT_ADDRSTRLEN];
        sockit__addr_text(&r->at[0].addr, text, sizeof text);
        if (strcmp(text, where) == 0)
            return sockit__failf(code, "connect to %s", where);
        return sockit__failf(code, "connect to %s (%s)", where, text);
    }
    char tried[RACE_TRIED_LEN];
    describe_failure(r, tried, sizeof tried);
    return sockit__failf(code, "connect to %s (%s)", where, tried);
}
