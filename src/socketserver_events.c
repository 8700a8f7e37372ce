/* SOCKIT_EVENTS: the event-driven server. The serving thread runs one loop; the
 * server's listening socket is watched by a listener (src/stream/listener.c) that
 * makes each connection a stream with config.stream's callbacks. Shutdown reaches
 * the loop through the server's wake descriptor, so it stays async-signal-safe and
 * callable from any thread; close stops accepting and gives every stream the grace
 * period to drain its queued bytes before it is aborted. A datagram server is one
 * datagram endpoint on the loop, borrowing the server's socket. */
#include "socketserver.h"
#include "stream/datagram_internal.h"
#include "stream/stream_internal.h"

#include <errno.h>
#include <unistd.h>

static void on_wake(sockit_io *io, int events, void *arg)
{
    (void)io;
    (void)events;
    sockit_server *srv = arg;
    uint64_t n;
    while (read(srv->wake_fd, &n, sizeof n) > 0)
        continue;
    if (atomic_load(&srv->stop))
        sockit_loop_stop(srv->ev_loop);
}

static bool verify(sockit_listener *l, const sockit_addr *peer, void *user)
{
    sockit_server *srv = sockit__listener_owner(l);
    return srv->cfg.verify_request(srv, peer, user);
}

static void accepted(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    sockit_server *srv = sockit__listener_owner(l);
    if (srv->cfg.on_connect != NULL)
        srv->cfg.on_connect(srv, st, peer, user);
}

static void serving_failed(sockit_listener *l, int code, void *user)
{
    (void)user;
    sockit__srv_report(sockit__listener_owner(l), NULL, code);
}

static bool verify_datagram(void *ctx, const sockit_addr *from)
{
    sockit_server *srv = ctx;
    return srv->cfg.verify_request(srv, from, srv->cfg.user);
}

/* A datagram server's endpoint borrows the server's socket, which stays the
 * server's to close. */
static int start_datagram(sockit_server *srv)
{
    const sockit_server_config *c = &srv->cfg;
    sockit_datagram *d =
        sockit__datagram_make(srv->ev_loop, sockit_fileno(srv->sock), false, c->datagram, c->user);
    if (d == NULL)
        return sockit_errcode();
    sockit_datagram_set_max_size(d, c->max_datagram);
    if (c->verify_request != NULL) {
        d->verify = verify_datagram;
        d->verify_ctx = srv;
    }
    srv->ev_datagram = d;
    return 0;
}

/* The loop and the listener are made on the first serve and kept until close. */
static int start(sockit_server *srv)
{
    if (srv->ev_loop != NULL)
        return 0;
    sockit_loop_options lo = SOCKIT_LOOP_OPTIONS_INIT;
    lo.spin_us = srv->cfg.spin_us;
    srv->ev_loop = sockit_loop_new(&lo);
    if (srv->ev_loop == NULL)
        return sockit_errcode();
    srv->ev_wake = sockit_io_new(srv->ev_loop, srv->wake_fd, on_wake, srv);
    int rc =
        srv->ev_wake != NULL ? sockit_io_start(srv->ev_wake, SOCKIT_EVENT_READ) : sockit_errcode();
    if (rc == 0)
        /* Only the listener, the streams or the endpoint keep the loop running. */
        sockit_io_keepalive(srv->ev_wake, false);
    if (rc == 0 && srv->type == SOCK_DGRAM) {
        rc = start_datagram(srv);
    } else if (rc == 0) {
        const sockit_server_config *c = &srv->cfg;
        sockit_listener_config lc = {
            .on_accept = accepted,
            .callbacks = c->stream,
            .user = c->user,
            .verify = c->verify_request != NULL ? verify : NULL,
            .on_error = serving_failed,
            .max_connections = c->max_connections,
            .idle_timeout = c->idle_timeout,
        };
        srv->ev_listener =
            sockit__listener_borrow(srv->ev_loop, srv->sock, &lc,
                                    c->overflow == SOCKIT_OVERFLOW_REFUSE, &srv->running, srv);
        if (srv->ev_listener == NULL)
            rc = sockit_errcode();
    }
    if (rc < 0) {
        sockit_io_close(srv->ev_wake);
        srv->ev_wake = NULL;
        sockit_loop_close(srv->ev_loop);
        srv->ev_loop = NULL;
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
        return 0;
    }
    if (once) {
        rc = sockit_loop_run_once(srv->ev_loop, timeout);
        if (rc < 0)
            return rc;
        return atomic_exchange(&srv->stop, 0) ? 0 : 1;
    }
    rc = sockit_loop_run(srv->ev_loop);
    atomic_store(&srv->stop, 0);
    return rc;
}

void sockit__srv_events_stop_accepting(sockit_server *srv)
{
    if (srv->ev_listener != NULL)
        sockit__listener_let_go(srv->ev_listener);
    if (srv->ev_datagram != NULL) {
        /* Replies still queued get this one chance; on_close runs below. */
        sockit_datagram_close(srv->ev_datagram);
        srv->ev_datagram = NULL;
    }
}

void sockit__srv_events_close(sockit_server *srv, int64_t grace_end, bool abandon)
{
    if (srv->ev_loop == NULL)
        return;
    sockit_loop *loop = srv->ev_loop;
    sockit_listener *l = srv->ev_listener;
    if (srv->ev_datagram != NULL) {
        sockit_datagram_close(srv->ev_datagram);
        srv->ev_datagram = NULL;
    }
    if (l != NULL) {
        int64_t left = grace_end - sockit__now_ns();
        bool now = abandon || left <= 0;
        sockit__listener_close_streams(l, now, now ? 0.0 : (double)left / 1e9);
        /* Each stream drains and closes, or is aborted when its linger ends; the loop
         * runs until the last on_close has run. */
        while (sockit_listener_count(l) > 0 && sockit_loop_run_once(loop, 0.1) >= 0)
            continue;
    }
    while (sockit_loop_run_once(loop, 0) > 0)
        continue;
    if (l != NULL)
        sockit__listener_free(l);
    sockit_io_close(srv->ev_wake);
    sockit_loop_run_once(loop, 0);
    sockit_loop_close(loop);
    srv->ev_loop = NULL;
    srv->ev_listener = NULL;
    srv->ev_wake = NULL;
}
