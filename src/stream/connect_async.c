/* sockit_stream_connect: sockit_create_connection on the loop. The name goes to the
 * loop's resolver (getaddrinfo.c); the attempts of the race (connect_race.c) are
 * watched for writability, and one timer paces them, holds the deadline and, on a
 * cancel, brings the end back to the loop. The timer is kept scheduled from the
 * start (moved, never stopped) so that moving it later allocates nothing and a
 * cancel cannot fail. */
#include "../abi.h"
#include "../connect_race.h"
#include "../tunnel/tunnel.h"
#include "sockit_tls.h"
#include "stream_internal.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* A Unix listener with a full backlog refuses a non-blocking connect with EAGAIN
 * instead of queueing it: the attempt is made again after this long, until the
 * deadline (the blocking call waits for writability instead). */
#define UNIX_RETRY_NS (10 * 1000000LL)

struct sockit_connector {
    sockit_loop *loop;
    const sockit_stream_callbacks *cb;
    sockit_connector_fn done;
    void *user;
    int64_t deadline;
    int64_t next_start;
    sockit_resolve *resolve; /* while the name is looked up */
    sockit_timer *timer;
    sockit_io *watch[SOCKIT__RACE_MAX]; /* the attempts in flight */
    bool is_unix;
    bool cancelled;
    bool finished; /* done was called or is being called */
    sockit_addr source;
    sockit__race race;
    char where[SOCKIT_ADDRSTRLEN + 64];
    /* sockit_stream_connect_tls: the context, the name to verify, and the stream
     * while its handshake runs (done waits for the handshake). */
    sockit_tls_ctx *tls;
    char *tls_host;
    sockit_stream *handshaking;
    /* sockit_stream_connect_via: the proxy, the target, and the stream while the
     * proxy's handshake runs (before TLS's, when both are asked for). */
    sockit__proxy_url *via;
    char *via_host;
    int via_port;
    sockit_stream *tunneling;
};

static void step(sockit_connector *c);

/* Moves the timer to an absolute time on the loop's clock (SOCKIT__NEVER: out of
 * the way). It is already scheduled, so this allocates nothing and cannot fail. */
static void arm(sockit_connector *c, int64_t when)
{
    double after = 1e10; /* saturates in the timer: never */
    if (when != SOCKIT__NEVER)
        after = when > c->loop->now ? (double)(when - c->loop->now) / 1e9 : 0;
    sockit_timer_start(c->timer, after, 0);
}

static void close_watch(sockit_connector *c, size_t i)
{
    sockit_io_close(c->watch[i]);
    c->watch[i] = NULL;
}

static void close_watches(sockit_connector *c)
{
    for (size_t i = 0; i < SOCKIT__RACE_MAX; i++)
        if (c->watch[i] != NULL)
            close_watch(c, i);
}

static void finish(sockit_connector *c, sockit_stream *st, int code)
{
    c->finished = true;
    close_watches(c);
    for (size_t i = 0; i < c->race.next; i++)
        if (c->race.at[i].fd >= 0)
            sockit__race_finish(&c->race, &c->race.at[i], code);
    sockit__resolve_discard(c->resolve);
    c->resolve = NULL;
    sockit_timer_close(c->timer);
    if (c->done != NULL)
        c->done(c, st, code, c->user);
    else if (st != NULL)
        sockit_stream_close(st, 0);
    sockit_tls_ctx_free(c->tls);
    sockit__free(c->tls_host);
    sockit__free(c->via);
    sockit__free(c->via_host);
    sockit__free(c);
}

/* A TLS connect's stream until its handshake is done: what ends it before then ends
 * the connect (the user never sees the stream). */
static void handshake_ended(sockit_stream *st, int status, void *arg)
{
    sockit_connector *c = arg;
    if (c == NULL || c->handshaking != st)
        return;
    c->handshaking = NULL;
    sockit_stream_set_user(st, NULL);
    sockit__stream_tls_forget(st); /* c goes with finish: nothing may call back into it */
    if (status == 0) {
        sockit_stream_set_callbacks(st, c->cb);
        sockit_stream_set_user(st, c->user);
        finish(c, st, 0);
        return;
    }
    /* The stream's own failure wrote the message; it names the peer. */
    finish(c, NULL, status);
}

static void handshake_error(sockit_stream *st, int code, void *user)
{
    handshake_ended(st, code, user);
}

static void handshake_closed(sockit_stream *st, void *user)
{
    if (user != NULL)
        sockit__failf(-ECONNRESET, "connect to %s: the stream ended during the TLS handshake",
                      ((sockit_connector *)user)->where);
    handshake_ended(st, -ECONNRESET, user);
}

static const sockit_stream_callbacks handshake_callbacks = {
    .on_error = handshake_error,
    .on_close = handshake_closed,
};

static void start_handshake(sockit_connector *c, sockit_stream *st)
{
    sockit_stream_set_callbacks(st, &handshake_callbacks);
    sockit_stream_set_user(st, c);
    c->handshaking = st;
    arm(c, SOCKIT__NEVER); /* the race is over: the timer waits for a cancel */
    /* The rest of the one deadline: a passed one still gets a moment, as the TCP
     * connect's timeout 0 does, rather than an immediate failure. */
    double left = -1;
    if (c->deadline != SOCKIT__NEVER) {
        int64_t ns = c->deadline - sockit__now_ns();
        left = ns > 1000000 ? (double)ns / 1e9 : 0.001;
    }
    int rc = sockit__stream_tls(st, c->tls, c->tls_host, left, handshake_ended, c);
    if (rc < 0) {
        c->handshaking = NULL;
        sockit_stream_set_user(st, NULL);
        sockit_stream_abort(st);
        finish(c, NULL, rc);
    }
}

static void tunnel_ended(sockit_stream *st, int status, void *arg)
{
    sockit_connector *c = arg;
    if (c->tunneling != st) { /* cancelled: the cancel finishes c */
        sockit_stream_abort(st);
        return;
    }
    c->tunneling = NULL;
    if (status < 0) {
        sockit_stream_abort(st);
        finish(c, NULL, status);
        return;
    }
    if (c->tls != NULL) {
        start_handshake(c, st);
        return;
    }
    sockit_stream_set_callbacks(st, c->cb);
    sockit_stream_set_user(st, c->user);
    finish(c, st, 0);
}

static void start_tunnel(sockit_connector *c, sockit_stream *st)
{
    c->tunneling = st;
    arm(c, SOCKIT__NEVER); /* the tunnel keeps the deadline; the timer waits for a cancel */
    int rc =
        sockit__stream_tunnel(st, c->via, c->via_host, c->via_port, c->deadline, tunnel_ended, c);
    if (rc < 0) {
        /* The stream was made with the user's callbacks: they must not hear of it. */
        c->tunneling = NULL;
        sockit_stream_set_callbacks(st, NULL);
        sockit_stream_set_user(st, NULL);
        sockit_stream_abort(st);
        finish(c, NULL, rc);
    }
    /* Else c may be finished already: nothing of it is touched here. */
}

static void fail(sockit_connector *c, int code)
{
    close_watches(c);
    finish(c, NULL, sockit__race_fail(&c->race, code, c->where));
}

static void win(sockit_connector *c, size_t i)
{
    close_watches(c);
    sockit_addr peer = c->race.at[i].addr;
    int fd = sockit__race_take(&c->race, i);
    sockit_stream *st = sockit__stream_make(c->loop, fd, true, true, c->cb, c->user);
    if (st == NULL) {
        int code = sockit_errcode();
        close(fd);
        sockit__failf(code, "connect to %s: making the stream", c->where);
        finish(c, NULL, code);
        return;
    }
    sockit__stream_set_peer(st, &peer);
    if (c->via != NULL) {
        start_tunnel(c, st);
        return;
    }
    if (c->tls != NULL) {
        start_handshake(c, st);
        return;
    }
    finish(c, st, 0);
}

static size_t watch_index(sockit_connector *c, sockit_io *io)
{
    size_t i = 0;
    while (i < SOCKIT__RACE_MAX && c->watch[i] != io)
        i++;
    return i;
}

static void attempt_ready(sockit_io *io, int events, void *arg)
{
    (void)events;
    sockit_connector *c = arg;
    size_t i = watch_index(c, io);
    if (i == SOCKIT__RACE_MAX)
        return;
    /* The watcher goes before the check, which closes a failed attempt's descriptor:
     * a registration must never outlive its descriptor. */
    close_watch(c, i);
    int rc = sockit__race_check(&c->race, i, true, false);
    if (rc == 1) {
        win(c, i);
        return;
    }
    /* RFC 8305 section 5: a failed attempt lets the next one start at once. */
    c->next_start = sockit__now_ns();
    step(c);
}

/* At the deadline: one last look, without waiting, at what is in flight, so a zero
 * timeout still lets a loopback connect win. Returns the winner or -1. */
static int poll_now(sockit_connector *c)
{
    sockit__race *r = &c->race;
    struct pollfd pfd[SOCKIT__RACE_MAX];
    size_t idx[SOCKIT__RACE_MAX];
    nfds_t n = sockit__race_pollfds(r, pfd, idx);
    if (n == 0 || poll(pfd, n, 0) <= 0)
        return -1;
    for (nfds_t k = 0; k < n; k++) {
        short ev = pfd[k].revents;
        if ((ev & (POLLOUT | POLLERR | POLLHUP)) == 0)
            continue;
        close_watch(c, idx[k]);
        /* A failed one is finished with its own reason, which the message keeps. */
        if (sockit__race_check(r, idx[k], (ev & POLLOUT) != 0, (ev & (POLLERR | POLLHUP)) != 0) ==
            1)
            return (int)idx[k];
    }
    return -1;
}

/* Starts attempt r->next and watches it. Returns the winner's index if it connected
 * at once, -2 when a Unix attempt is to be made again later, else -1. */
static int start_attempt(sockit_connector *c, int64_t now, bool expired)
{
    sockit__race *r = &c->race;
    int won = sockit__race_start_next(r);
    if (won >= 0)
        return won;
    size_t i = r->next - 1;
    sockit__attempt *at = &r->at[i];
    if (at->fd >= 0) {
        c->watch[i] = sockit_io_new(c->loop, at->fd, attempt_ready, c);
        int rc = c->watch[i] != NULL ? sockit_io_start(c->watch[i], SOCKIT_EVENT_WRITE)
                                     : sockit_errcode();
        if (rc < 0) {
            close_watch(c, i);
            sockit__race_finish(r, at, rc);
            c->next_start = now;
        } else {
            c->next_start = now + SOCKIT__ATTEMPT_DELAY_NS;
        }
        return -1;
    }
    if (c->is_unix && at->error == -EAGAIN && !expired) {
        at->started = false;
        at->error = 0;
        r->next--;
        return -2;
    }
    /* An attempt that failed at once (no route, no IPv6) hands over at once. */
    c->next_start = now;
    return -1;
}

static void step(sockit_connector *c)
{
    sockit__race *r = &c->race;
    for (;;) {
        int64_t now = sockit__now_ns();
        bool expired = c->deadline != SOCKIT__NEVER && now >= c->deadline;
        /* The first attempt always starts, so even a zero timeout gets one look. */
        bool may_start = r->next < r->count && (r->next == 0 || !expired);
        if (may_start && (r->inflight == 0 || now >= c->next_start)) {
            int won = start_attempt(c, now, expired);
            if (won >= 0) {
                win(c, (size_t)won);
                return;
            }
            if (won == -2) {
                int64_t when = now + UNIX_RETRY_NS;
                arm(c, c->deadline < when ? c->deadline : when);
                return;
            }
            continue;
        }
        if (expired) {
            int won = poll_now(c);
            if (won >= 0)
                win(c, (size_t)won);
            else
                fail(c, SOCKIT_ETIMEOUT);
            return;
        }
        if (r->inflight == 0) {
            fail(c, r->next < r->count ? SOCKIT_ETIMEOUT : 0);
            return;
        }
        int64_t wake = c->deadline;
        if (may_start && c->next_start < wake)
            wake = c->next_start;
        arm(c, wake);
        return;
    }
}

static void timer_fired(sockit_timer *t, void *arg)
{
    (void)t;
    sockit_connector *c = arg;
    if (c->cancelled) {
        sockit__failf(-ECANCELED, "connect to %s: cancelled", c->where);
        finish(c, NULL, -ECANCELED);
        return;
    }
    if (c->resolve != NULL) {
        /* The lookup's own deadline is the same; this only guards a lag. */
        return;
    }
    step(c);
}

static void resolved(sockit_resolve *rs, int code, const sockit_addrinfo *ai, size_t n, void *arg)
{
    (void)rs;
    sockit_connector *c = arg;
    c->resolve = NULL;
    if (code < 0) {
        if (code == SOCKIT_ETIMEOUT)
            sockit__failf(code, "connect to %s: resolving the name", c->where);
        else
            sockit__failf(code, "connect to %s", c->where);
        finish(c, NULL, code);
        return;
    }
    sockit__race_init(&c->race, ai, n, c->source.len > 0 ? &c->source : NULL);
    step(c);
}

/* Checks what can never work, and the Unix address. Returns 0 or a code with the
 * message set. */
static int check_args(sockit_connector *c, const char *host, int port, const sockit_addr *source,
                      sockit_addr *unix_addr)
{
    if (!c->is_unix) {
        char op[sizeof c->where + 16];
        snprintf(op, sizeof op, "connect to %s", c->where);
        int rc = sockit__check_port(op, port, false);
        if (rc < 0)
            return rc;
        int fam = source != NULL ? sockit_addr_family(source) : AF_UNSPEC;
        if (source != NULL && fam != AF_INET && fam != AF_INET6)
            return sockit__failf(SOCKIT_EBADADDR, "connect to %s: source is not an IP address",
                                 c->where);
        /* A numeric host of the other family can never be reached from this source:
         * said now, rather than by the resolver later. */
        sockit_addr numeric;
        if (source != NULL && host != NULL && sockit_addr_ip(&numeric, host, port) == 0 &&
            sockit_addr_family(&numeric) != fam)
            return sockit__failf(SOCKIT_EBADADDR,
                                 "connect to %s: the source is an IPv%c address, the host IPv%c",
                                 c->where, fam == AF_INET ? '4' : '6', fam == AF_INET ? '6' : '4');
        return 0;
    }
    if (port != 0)
        return sockit__failf(SOCKIT_EBADPORT,
                             "connect to %s: port %d given for a Unix socket (use 0)", host, port);
    int rc = sockit_addr_parse(unix_addr, host);
    if (rc < 0 || sockit_addr_family(unix_addr) != AF_UNIX)
        return sockit__failf(rc < 0 ? rc : SOCKIT_EBADADDR, "connect to %s", host);
    if (source != NULL && sockit_addr_family(source) != AF_UNIX)
        return sockit__failf(SOCKIT_EBADADDR, "connect to %s: source address is not a Unix address",
                             host);
    return 0;
}

sockit_connector *sockit_stream_connect(sockit_loop *loop, const char *host, int port,
                                        double timeout, const sockit_addr *source,
                                        const sockit_stream_callbacks *cb, sockit_connector_fn done,
                                        void *user)
{
    if (loop == NULL || isnan(timeout)) {
        sockit__failf(-EINVAL, "stream_connect: %s", loop == NULL ? "no loop" : "timeout is NaN");
        return NULL;
    }
    if (cb != NULL && sockit__table_check(cb, SOCKIT__BASE_STREAM_CALLBACKS, sizeof *cb,
                                          "stream_connect: callbacks") < 0)
        return NULL;
    sockit_connector *c = sockit__calloc(1, sizeof *c);
    if (c == NULL) {
        sockit__failf(-ENOMEM, "stream_connect");
        return NULL;
    }
    c->loop = loop;
    c->cb = cb;
    c->done = done;
    c->user = user;
    c->is_unix = host != NULL && strncmp(host, "unix:", 5) == 0;
    sockit__hostport(c->where, sizeof c->where, host, port);
    if (c->is_unix)
        snprintf(c->where, sizeof c->where, "%s", host);
    sockit_addr unix_addr;
    if (check_args(c, host, port, source, &unix_addr) < 0) {
        sockit__free(c);
        return NULL;
    }
    if (source != NULL)
        c->source = *source;
    c->deadline = sockit__deadline(timeout);
    c->timer = sockit_timer_new(loop, timer_fired, c);
    /* Scheduled now, so every later move is free of allocation (see arm). A Unix
     * race starts from the timer, so that done never runs inside this call. */
    int rc = c->timer != NULL ? sockit_timer_start(c->timer, c->is_unix ? 0 : 1e10, 0)
                              : sockit_errcode();
    if (rc == 0 && c->is_unix) {
        sockit_addrinfo one = {.family = AF_UNIX, .type = SOCK_STREAM, .addr = unix_addr};
        sockit__race_init(&c->race, &one, 1, source != NULL ? &c->source : NULL);
    } else if (rc == 0) {
        char service[8];
        snprintf(service, sizeof service, "%d", port);
        int family = source != NULL ? sockit_addr_family(source) : AF_UNSPEC;
        c->resolve = sockit__resolve_start(loop, host, service, family, SOCK_STREAM, AI_NUMERICSERV,
                                           c->deadline, resolved, c);
        if (c->resolve == NULL)
            rc = sockit_errcode();
    }
    if (rc < 0) {
        /* The message is the failed call's own (timer_start, the resolver's). */
        sockit_timer_close(c->timer);
        sockit__free(c);
        return NULL;
    }
    return c;
}

void sockit_connector_cancel(sockit_connector *c)
{
    if (c == NULL || c->finished || c->cancelled)
        return;
    c->cancelled = true;
    if (c->tunneling != NULL) {
        /* At once and for good: an end reported later (the stream's on_close is
         * deferred) could find c freed by the cancel's timer. */
        sockit_stream *st = c->tunneling;
        c->tunneling = NULL;
        sockit__stream_tunnel_abort(st);
    }
    if (c->handshaking != NULL) {
        sockit_stream *st = c->handshaking;
        c->handshaking = NULL;
        sockit_stream_set_user(st, NULL);
        sockit__stream_tls_forget(st);
        sockit_stream_abort(st);
    }
    close_watches(c);
    for (size_t i = 0; i < c->race.next; i++)
        if (c->race.at[i].fd >= 0)
            sockit__race_finish(&c->race, &c->race.at[i], -ECANCELED);
    sockit__resolve_discard(c->resolve);
    c->resolve = NULL;
    arm(c, c->loop->now);
}

sockit_connector *sockit_stream_connect_tls(sockit_loop *loop, const char *host, int port,
                                            double timeout, const sockit_addr *source,
                                            sockit_tls_ctx *ctx, const sockit_stream_callbacks *cb,
                                            sockit_connector_fn done, void *user)
{
    return sockit__stream_connect_tls_named(loop, host, port, timeout, source, ctx, NULL, cb, done,
                                            user);
}

sockit_connector *sockit__stream_connect_tls_named(sockit_loop *loop, const char *host, int port,
                                                   double timeout, const sockit_addr *source,
                                                   sockit_tls_ctx *ctx, const char *tls_name,
                                                   const sockit_stream_callbacks *cb,
                                                   sockit_connector_fn done, void *user)
{
    if (!sockit_has_tls()) {
        sockit__failf(SOCKIT_ENOTLS, "stream_connect_tls: this sockit was built without OpenSSL");
        return NULL;
    }
    if (ctx == NULL || sockit__tls_ctx_is_server(ctx)) {
        sockit__failf(-EINVAL, "stream_connect_tls: %s",
                      ctx == NULL ? "no context" : "a server context (use SOCKIT_TLS_CLIENT)");
        return NULL;
    }
    bool is_unix = host != NULL && strncmp(host, "unix:", 5) == 0;
    const char *name = tls_name != NULL ? tls_name
                       : is_unix        ? NULL
                       : host != NULL   ? host
                                        : "localhost";
    size_t n = name != NULL ? strlen(name) + 1 : 0;
    char *copy = n > 0 ? sockit__malloc(n) : NULL;
    if (n > 0 && copy == NULL) {
        sockit__fail(-ENOMEM, "stream_connect_tls");
        return NULL;
    }
    if (copy != NULL)
        memcpy(copy, name, n);
    sockit_connector *c = sockit_stream_connect(loop, host, port, timeout, source, cb, done, user);
    if (c == NULL) {
        sockit__free(copy);
        return NULL;
    }
    c->tls = sockit__tls_ctx_ref(ctx);
    c->tls_host = copy;
    return c;
}

sockit_connector *sockit_stream_connect_via(sockit_loop *loop, const char *proxy, const char *host,
                                            int port, double timeout, const sockit_addr *source,
                                            const sockit_stream_callbacks *cb,
                                            sockit_connector_fn done, void *user)
{
    if (proxy == NULL || proxy[0] == '\0')
        return sockit_stream_connect(loop, host, port, timeout, source, cb, done, user);
    sockit__proxy_url url;
    if (sockit__proxy_url_parse(proxy, &url) < 0)
        return NULL;
    if (host == NULL || host[0] == '\0' || strncmp(host, "unix:", 5) == 0) {
        sockit__failf(-EINVAL, "stream_connect_via: %s",
                      host == NULL || host[0] == '\0' ? "no target host"
                                                      : "a Unix socket cannot be reached that way");
        return NULL;
    }
    if (port < 1 || port > 65535) {
        sockit__failf(SOCKIT_EBADPORT, "connect to %s through a proxy: port %d not in 1-65535",
                      host, port);
        return NULL;
    }
    size_t n = strlen(host) + 1;
    sockit__proxy_url *copy = sockit__malloc(sizeof *copy);
    char *target = sockit__malloc(n);
    if (copy == NULL || target == NULL) {
        sockit__free(copy);
        sockit__free(target);
        sockit__fail(-ENOMEM, "stream_connect_via");
        return NULL;
    }
    *copy = url;
    memcpy(target, host, n);
    sockit_connector *c =
        sockit_stream_connect(loop, url.host, url.port, timeout, source, cb, done, user);
    if (c == NULL) {
        sockit__free(copy);
        sockit__free(target);
        return NULL;
    }
    c->via = copy;
    c->via_host = target;
    c->via_port = port;
    return c;
}
