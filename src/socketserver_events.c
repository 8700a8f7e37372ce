/* SOCKIT_EVENTS: the event-driven server. Each of config.loops loops (one by
 * default) is a shard: its own loop, and on it a listener that makes each
 * connection a stream with config.stream's callbacks, or, for a datagram server,
 * one datagram endpoint. Shard 0 runs in the serving thread; the others in threads
 * of their own, started by the first serve and stopped when serving stops.
 *
 * With several loops, TCP and UDP shards each have their own socket bound to the
 * server's address with SO_REUSEPORT, so the kernel spreads connections (or
 * senders) over them and no loop hands work to another; Unix sockets cannot be
 * spread so, and there every shard watches the one socket (whichever is free
 * accepts). bench/results/loops.md compares this with one acceptor handing
 * connections out (bench/peers/handoff.c).
 *
 * Shutdown reaches shard 0 through the server's wake descriptor (async-signal-safe,
 * any thread), and shard 0 stops the others. close stops accepting and gives every
 * stream the grace period to drain its queued bytes before it is aborted, every
 * shard draining at once in a thread of its own. */
#include "socketserver.h"
#include "stream/datagram_internal.h"
#include "stream/stream_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <unistd.h>

struct sockit__ev_shard {
    sockit_server *srv;
    sockit_loop *loop;
    sockit_listener *listener;
    sockit_datagram *datagram;
    sockit *sock; /* shard 0 and Unix shards: the server's own */
    bool own_sock;
    pthread_t thread;
    bool thread_running;
    int rc;            /* what its loop_run returned */
    int64_t grace_end; /* close: the drain's deadline */
    bool abandon;
};

static void on_wake(sockit_io *io, int events, void *arg)
{
    (void)io;
    (void)events;
    sockit_server *srv = arg;
    uint64_t n;
    while (read(srv->wake_fd, &n, sizeof n) > 0)
        continue;
    if (atomic_load(&srv->stop))
        sockit_loop_stop(srv->ev_shards[0].loop);
}

static bool verify(sockit_listener *l, const sockit_addr *peer, void *user)
{
    sockit__ev_shard *sh = sockit__listener_owner(l);
    return sh->srv->cfg.verify_request(sh->srv, peer, user);
}

static void accepted(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    sockit__ev_shard *sh = sockit__listener_owner(l);
    if (sh->srv->cfg.on_connect != NULL)
        sh->srv->cfg.on_connect(sh->srv, st, peer, user);
}

static void serving_failed(sockit_listener *l, int code, void *user)
{
    (void)user;
    sockit__ev_shard *sh = sockit__listener_owner(l);
    sockit__srv_report(sh->srv, NULL, code);
}

static bool verify_datagram(void *ctx, const sockit_addr *from)
{
    sockit_server *srv = ctx;
    return srv->cfg.verify_request(srv, from, srv->cfg.user);
}

/* A socket for one more shard: bound to the server's address with SO_REUSEPORT,
 * with the server socket's IPV6_V6ONLY, listening with its backlog. */
static sockit *reuseport_socket(sockit_server *srv, int *err)
{
    sockit_addr a;
    int rc = sockit_getsockname(srv->sock, &a);
    sockit *s = rc == 0 ? sockit_socket(sockit_addr_family(&a), srv->type) : NULL;
    if (s == NULL) {
        *err = sockit_errcode();
        return NULL;
    }
    int one = 1, v6only = 0;
    socklen_t len = sizeof v6only;
    int fd = sockit_fileno(srv->sock);
    if (setsockopt(sockit_fileno(s), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        (sockit_addr_family(&a) == AF_INET6 &&
         (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) < 0 ||
          setsockopt(sockit_fileno(s), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0)))
        rc = sockit__failf(-errno, "sockit_server: SO_REUSEPORT socket for another loop");
    if (rc == 0)
        rc = sockit_bind_addr(s, &a);
    if (rc == 0 && srv->type == SOCK_STREAM) {
        int backlog = srv->cfg.listen.backlog > 0 ? srv->cfg.listen.backlog : SOMAXCONN;
        rc = sockit_listen(s, backlog);
    }
    if (rc == 0)
        rc = sockit_settimeout(s, 0.0);
    if (rc < 0) {
        *err = rc;
        sockit_close(s);
        return NULL;
    }
    return s;
}

/* max_connections shared out between the loops: each gets its part, the first ones
 * the remainder, so the total is never passed. */
static int shard_max(const sockit_server *srv, int i)
{
    int total = srv->cfg.max_connections, n = srv->ev_nshards;
    if (total == 0)
        return 0;
    return total / n + (i < total % n ? 1 : 0);
}

static int start_shard(sockit_server *srv, int i)
{
    sockit__ev_shard *sh = &srv->ev_shards[i];
    const sockit_server_config *c = &srv->cfg;
    sockit_loop_options lo = SOCKIT_LOOP_OPTIONS_INIT;
    lo.spin_us = c->spin_us;
    sh->loop = sockit_loop_new(&lo);
    if (sh->loop == NULL)
        return sockit_errcode();
    if (srv->type == SOCK_DGRAM) {
        sockit_datagram *d =
            sockit__datagram_make(sh->loop, sockit_fileno(sh->sock), false, c->datagram, c->user);
        if (d == NULL)
            return sockit_errcode();
        sockit_datagram_set_max_size(d, c->max_datagram);
        if (c->verify_request != NULL) {
            d->verify = verify_datagram;
            d->verify_ctx = srv;
        }
        sh->datagram = d;
        d->owner_slot = &sh->datagram; /* a callback may close it before the server does */
        return 0;
    }
    sockit_listener_config lc = {
        .on_accept = accepted,
        .callbacks = c->stream,
        .user = c->user,
        .verify = c->verify_request != NULL ? verify : NULL,
        .on_error = serving_failed,
        .max_connections = shard_max(srv, i),
        .idle_timeout = c->idle_timeout,
        .tls = c->tls,
        .tls_handshake_timeout = c->tls_handshake_timeout,
    };
    sh->listener = sockit__listener_borrow(
        sh->loop, sh->sock, &lc, c->overflow == SOCKIT_OVERFLOW_REFUSE, &srv->running, sh);
    return sh->listener != NULL ? 0 : sockit_errcode();
}

/* Frees what serving made: the listener or endpoint and the loop. */
static void stop_loop(sockit__ev_shard *sh)
{
    if (sh->listener != NULL)
        sockit__listener_free(sh->listener);
    sh->listener = NULL;
    if (sh->datagram != NULL)
        sockit_datagram_close(sh->datagram);
    sh->datagram = NULL;
    if (sh->loop != NULL) {
        while (sockit_loop_run_once(sh->loop, 0) > 0)
            continue;
        sockit_loop_close(sh->loop);
    }
    sh->loop = NULL;
}

static void close_socket(sockit__ev_shard *sh)
{
    if (sh->own_sock)
        sockit_close(sh->sock);
    sh->sock = NULL;
    sh->own_sock = false;
}

static void stop_loops(sockit_server *srv)
{
    /* The wake watcher is on shard 0's loop: it goes first. */
    sockit_io_close(srv->ev_wake);
    srv->ev_wake = NULL;
    for (int i = srv->ev_nshards - 1; i >= 0; i--)
        stop_loop(&srv->ev_shards[i]);
}

static void free_shards(sockit_server *srv)
{
    if (srv->ev_shards == NULL)
        return;
    stop_loops(srv);
    for (int i = 0; i < srv->ev_nshards; i++)
        close_socket(&srv->ev_shards[i]);
    sockit__free(srv->ev_shards);
    srv->ev_shards = NULL;
    srv->ev_nshards = 0;
}

int sockit__srv_events_prepare(sockit_server *srv)
{
    int n = srv->cfg.loops > 1 ? srv->cfg.loops : 1;
    if (srv->type == SOCK_STREAM && srv->cfg.max_connections > 0 && srv->cfg.max_connections < n)
        n = srv->cfg.max_connections; /* a loop allowed no connection would have no limit */
    int rc = sockit_getsockname(srv->sock, &srv->bound);
    if (rc < 0)
        return rc;
    srv->ev_shards = sockit__calloc((size_t)n, sizeof *srv->ev_shards);
    if (srv->ev_shards == NULL)
        return sockit__fail(-ENOMEM, "sockit_server_new: loops");
    srv->ev_nshards = n;
    /* The sockets are made with the server, so connections that come before the
     * first serve are already spread over them. */
    for (int i = 0; i < n && rc == 0; i++) {
        sockit__ev_shard *sh = &srv->ev_shards[i];
        sh->srv = srv;
        sh->sock = srv->sock;
        if (i > 0 && sockit_addr_family(&srv->bound) != AF_UNIX) {
            sh->sock = reuseport_socket(srv, &rc);
            sh->own_sock = sh->sock != NULL;
        }
    }
    if (rc < 0)
        return rc;
    /* Which backend the loops will have is asked now, of a loop made and closed, so
     * sockit_server_backend can say it before the first serve and while another
     * thread makes the loops; and a backend named that cannot start fails here. The
     * loops themselves are made by the first serve, in the process that serves (a
     * program may fork after making the server). */
    sockit_loop_options lo = SOCKIT_LOOP_OPTIONS_INIT;
    sockit_loop *probe = sockit_loop_new(&lo);
    if (probe == NULL)
        return sockit_errcode();
    srv->ev_backend = sockit_loop_backend(probe);
    const char *why = sockit_loop_backend_fallback(probe);
    if (why != NULL)
        snprintf(srv->ev_fallback, sizeof srv->ev_fallback, "%s", why);
    sockit_loop_close(probe);
    return 0;
}

void sockit__srv_events_free(sockit_server *srv) { free_shards(srv); }

/* The loops are made on the first serve and kept until close. */
static int start(sockit_server *srv)
{
    if (srv->ev_shards[0].loop != NULL)
        return 0;
    int rc = 0;
    for (int i = 0; i < srv->ev_nshards && rc == 0; i++)
        rc = start_shard(srv, i);
    if (rc == 0) {
        srv->ev_wake = sockit_io_new(srv->ev_shards[0].loop, srv->wake_fd, on_wake, srv);
        rc = srv->ev_wake != NULL ? sockit_io_start(srv->ev_wake, SOCKIT_EVENT_READ)
                                  : sockit_errcode();
    }
    if (rc < 0) {
        stop_loops(srv);
        return rc;
    }
    /* Only the listeners, the streams or the endpoints keep a loop running. */
    sockit_io_keepalive(srv->ev_wake, false);
    return 0;
}

static void *shard_main(void *arg)
{
    sockit__ev_shard *sh = arg;
    sh->rc = sockit_loop_run(sh->loop);
    return NULL;
}

/* Runs shards 1.. in their threads (sockit__thread_create: signals blocked there,
 * as they are the program's, for the threads it knows). Returns 0 or a code. */
static int start_threads(sockit_server *srv)
{
    int rc = 0;
    for (int i = 1; i < srv->ev_nshards && rc == 0; i++) {
        sockit__ev_shard *sh = &srv->ev_shards[i];
        if (sh->thread_running)
            continue;
        rc = sockit__thread_create(&sh->thread, false, shard_main, sh);
        if (rc < 0)
            sockit__failf(rc, "sockit_server: a thread for loop %d", i);
        else
            sh->thread_running = true;
    }
    return rc;
}

static int stop_threads(sockit_server *srv)
{
    int rc = 0;
    for (int i = 1; i < srv->ev_nshards; i++) {
        sockit__ev_shard *sh = &srv->ev_shards[i];
        if (!sh->thread_running)
            continue;
        /* A loop that ran out of work returned by itself; one still running is
         * asked to stop (a stop asked of a loop that has returned is consumed by the
         * next run, which then returns at once). */
        sockit_loop_stop(sh->loop);
        pthread_join(sh->thread, NULL);
        sh->thread_running = false;
        /* Had it returned before the stop, the stop would end its next run at once. */
        atomic_store(&sh->loop->stop_asked, false);
        if (sh->rc < 0 && rc == 0)
            rc = sh->rc;
    }
    return rc;
}

int sockit__srv_events_serve(sockit_server *srv, double timeout, bool once)
{
    int rc = start(srv);
    if (rc < 0)
        return rc;
    if (atomic_exchange(&srv->stop, 0)) {
        uint64_t n;
        while (read(srv->wake_fd, &n, sizeof n) > 0)
            continue;
        return stop_threads(srv);
    }
    rc = start_threads(srv);
    sockit_loop *loop = srv->ev_shards[0].loop;
    if (rc == 0 && once) {
        rc = sockit_loop_run_once(loop, timeout);
        if (rc < 0)
            return rc;
        if (!atomic_exchange(&srv->stop, 0))
            return 1;
        return stop_threads(srv);
    }
    if (rc == 0)
        rc = sockit_loop_run(loop);
    atomic_store(&srv->stop, 0);
    int trc = stop_threads(srv);
    return rc < 0 ? rc : trc;
}

void sockit__srv_events_stop_accepting(sockit_server *srv)
{
    /* The other loops may still run (handle_request leaves them running): they
     * stop before anything of theirs is touched from this thread. */
    stop_threads(srv);
    /* The other loops' sockets close now, as the server's does: a client that
     * connected in the grace period would otherwise wait in a backlog nobody serves. */
    for (int i = 0; i < srv->ev_nshards; i++) {
        sockit__ev_shard *sh = &srv->ev_shards[i];
        if (sh->listener != NULL)
            sockit__listener_let_go(sh->listener);
        close_socket(sh);
    }
}

/* Closes a shard's streams, draining until grace_end, and runs its loop until the
 * last on_close has run. */
static void drain_shard(sockit__ev_shard *sh)
{
    sockit_listener *l = sh->listener;
    if (sh->datagram != NULL) {
        sockit_datagram_close(sh->datagram);
        sh->datagram = NULL;
    }
    if (l != NULL) {
        int64_t left = sh->grace_end - sockit__now_ns();
        bool now = sh->abandon || left <= 0;
        sockit__listener_close_streams(l, now, now ? 0.0 : (double)left / 1e9);
        /* Each stream drains and closes, or is aborted when its linger ends. */
        while (sockit_listener_count(l) > 0 && sockit_loop_run_once(sh->loop, 0.1) >= 0)
            continue;
    }
    while (sockit_loop_run_once(sh->loop, 0) > 0)
        continue;
}

static void *drain_main(void *arg)
{
    drain_shard(arg);
    return NULL;
}

void sockit__srv_events_close(sockit_server *srv, int64_t grace_end, bool abandon)
{
    if (srv->ev_shards == NULL || srv->ev_shards[0].loop == NULL)
        return;
    stop_threads(srv);
    /* Every shard drains at once: one after another, the last would find its
     * streams' lingers spent while the first drained. */
    int n = srv->ev_nshards;
    for (int i = 0; i < n; i++) {
        srv->ev_shards[i].grace_end = grace_end;
        srv->ev_shards[i].abandon = abandon;
    }
    for (int i = 1; i < n; i++) {
        sockit__ev_shard *sh = &srv->ev_shards[i];
        sh->thread_running = sockit__thread_create(&sh->thread, false, drain_main, sh) == 0;
        if (!sh->thread_running)
            drain_shard(sh); /* no thread: drained here, in turn */
    }
    drain_shard(&srv->ev_shards[0]);
    for (int i = 1; i < n; i++) {
        sockit__ev_shard *sh = &srv->ev_shards[i];
        if (sh->thread_running)
            pthread_join(sh->thread, NULL);
        sh->thread_running = false;
    }
    free_shards(srv);
}
