/* Accepting on a loop: each connection becomes a stream. verify runs before a stream
 * is made; max_connections stops watching the listener (clients wait in the
 * kernel's backlog) until one of its streams ends. Running out of descriptors is
 * handled as the blocking server does (shed.c, shared with it): the spare descriptor is
 * given up to accept and close every pending client, so they read end of stream at
 * once and the listener goes quiet instead of staying readable and spinning the
 * loop; other resource errors stop accepting for a back-off that doubles. */
#include "stream_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ACCEPT_BATCH       64 /* per readiness, so one busy listener cannot starve the loop */
#define DEFAULT_IDLE_S     300.0
#define REPORT_INTERVAL_NS 1000000000LL

struct sockit_listener {
    sockit_loop *loop;
    sockit *sock;
    sockit_io *io;
    sockit_timer *backoff;
    sockit_listener_config cfg;
    size_t count;
    int reserve_fd;
    int64_t backoff_ns;
    int64_t last_report;
    unsigned unreported;
    bool paused, held, backing_off;
    int depth;   /* inside its own accept loop (callbacks may close it) */
    bool doomed; /* closed from inside a callback: freed when the loop unwinds */
    /* A server's listener (socketserver_events.c): the socket stays the server's,
     * clients beyond max_connections are refused rather than left waiting when
     * refuse is set, and the count is mirrored for sockit_server_active. */
    bool borrowed, refuse;
    atomic_int *mirror;
    void *owner;
};

static void update_io(sockit_listener *l)
{
    if (l->io == NULL)
        return;
    int want = (l->paused || l->held || l->backing_off || l->doomed) ? 0 : SOCKIT_EVENT_READ;
    if (sockit_io_events(l->io) != want)
        sockit_io_start(l->io, want);
}

static void report(sockit_listener *l, int code)
{
    if (l->cfg.on_error != NULL) {
        l->cfg.on_error(l, code, l->cfg.user);
        return;
    }
    int64_t now = l->loop->now;
    if (l->last_report != 0 && now - l->last_report < REPORT_INTERVAL_NS) {
        l->unreported++;
        return;
    }
    char addr[SOCKIT_ADDRSTRLEN] = "?";
    sockit_addr a;
    if (sockit_getsockname(l->sock, &a) == 0)
        sockit_addr_format(&a, addr, sizeof addr);
    if (l->unreported > 0)
        fprintf(stderr, "sockit listener on %s: %s (and %u more failures in the last second)\n",
                addr, sockit_strerror(code), l->unreported);
    else
        fprintf(stderr, "sockit listener on %s: %s\n", addr, sockit_strerror(code));
    l->unreported = 0;
    l->last_report = now;
}

static void backoff_over(sockit_timer *t, void *arg)
{
    (void)t;
    sockit_listener *l = arg;
    l->backing_off = false;
    update_io(l);
}

static void back_off(sockit_listener *l)
{
    if (l->backoff == NULL) {
        l->backoff = sockit_timer_new(l->loop, backoff_over, l);
        if (l->backoff == NULL)
            return; /* stays watched: the next readiness tries again */
    }
    l->backoff_ns = sockit__backoff_next(l->backoff_ns);
    l->backing_off = true;
    sockit_timer_start(l->backoff, (double)l->backoff_ns / 1e9, 0.0);
    update_io(l);
}

static void link_stream(sockit_listener *l, sockit_stream *st)
{
    st->listener = l;
    l->count++;
    if (l->mirror != NULL)
        atomic_fetch_add(l->mirror, 1);
}

void sockit__listener_stream_ended(sockit_listener *l, sockit_stream *st)
{
    st->listener = NULL;
    l->count--;
    if (l->mirror != NULL)
        atomic_fetch_sub(l->mirror, 1);
    if (l->held && (size_t)l->cfg.max_connections > l->count) {
        l->held = false;
        update_io(l);
    }
}

static void free_listener(sockit_listener *l)
{
    if (l->count > 0)
        for (sockit_stream *st = sockit__stream_first(l->loop); st != NULL;
             st = sockit__stream_next(st))
            if (st->listener == l)
                st->listener = NULL;
    sockit_io_close(l->io);
    sockit_timer_close(l->backoff);
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    if (!l->borrowed)
        sockit_close(l->sock);
    sockit__free(l);
}

/* One accepted client: verify, then a stream. */
static void admit(sockit_listener *l, int fd, const sockit_addr *peer)
{
    const sockit_listener_config *c = &l->cfg;
    if (c->verify != NULL && !c->verify(l, peer, c->user)) {
        close(fd);
        return;
    }
    if (l->refuse && c->max_connections > 0 && l->count >= (size_t)c->max_connections) {
        close(fd); /* the client reads end of stream at once */
        return;
    }
    sockit_stream *st = sockit__stream_make(l->loop, fd, true, true, c->callbacks, c->user);
    if (st == NULL) {
        int code = sockit_errcode();
        close(fd);
        report(l, code);
        return;
    }
    sockit__stream_set_peer(st, peer);
    link_stream(l, st);
    if (!l->refuse && c->max_connections > 0 && l->count >= (size_t)c->max_connections) {
        l->held = true;
        update_io(l);
    }
    double idle = c->idle_timeout == 0 ? DEFAULT_IDLE_S : c->idle_timeout;
    if (idle > 0 && sockit_stream_set_idle_timeout(st, idle) < 0) {
        /* No bucket for one more timeout value: the client is not served without
         * the timeout it was promised. */
        report(l, sockit_errcode());
        sockit_stream_abort(st);
        return;
    }
    if (c->on_accept != NULL)
        c->on_accept(l, st, peer, c->user);
}

static void on_readable(sockit_io *io, int events, void *arg)
{
    (void)io;
    (void)events;
    sockit_listener *l = arg;
    int lfd = sockit_fileno(l->sock);
    l->depth++;
    for (int i = 0; i < ACCEPT_BATCH && !l->paused && !l->held && !l->doomed; i++) {
        sockit_addr peer;
        socklen_t len = sizeof peer.u;
        int fd = sockit__sys_accept4(lfd, &peer.u.sa, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                break;
            report(l, -err);
            if ((err == EMFILE || err == ENFILE) &&
                sockit__shed_backlog(sockit_fileno(l->sock), &l->reserve_fd))
                break; /* the backlog is empty: the listener is quiet until a client */
            back_off(l);
            break;
        }
        l->backoff_ns = 0;
        peer.len = len;
        admit(l, fd, &peer);
    }
    l->depth--;
    if (l->doomed && l->depth == 0)
        free_listener(l);
}

sockit_listener *sockit_listener_new(sockit_loop *loop, sockit *listening,
                                     const sockit_listener_config *cfg)
{
    if (loop == NULL || listening == NULL || cfg == NULL) {
        sockit__failf(-EINVAL, "listener_new: no %s",
                      loop == NULL        ? "loop"
                      : listening == NULL ? "socket"
                                          : "config");
        return NULL;
    }
    if (listening->type != SOCK_STREAM) {
        sockit__failf(-EINVAL, "listener_new (fd %d): not a stream socket", listening->fd);
        return NULL;
    }
    if (cfg->max_connections < 0 || !(cfg->idle_timeout <= SOCKIT__IDLE_MAX_S)) {
        sockit__failf(-EINVAL, "listener_new: %s",
                      cfg->max_connections < 0
                          ? "max_connections is negative"
                          : "idle_timeout is not a number of seconds up to 4e6");
        return NULL;
    }
    int accepting = 0;
    socklen_t alen = sizeof accepting;
    if (getsockopt(listening->fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &alen) < 0 || !accepting) {
        sockit__failf(-EINVAL, "listener_new (fd %d): the socket is not listening", listening->fd);
        return NULL;
    }
    sockit_listener *l = sockit__calloc(1, sizeof *l);
    if (l == NULL) {
        sockit__fail(-ENOMEM, "listener_new");
        return NULL;
    }
    l->loop = loop;
    l->cfg = *cfg;
    l->reserve_fd = -1;
    double old_timeout = sockit_gettimeout(listening);
    int rc = sockit_settimeout(listening, 0.0);
    l->io = rc == 0 ? sockit_io_new(loop, listening->fd, on_readable, l) : NULL;
    rc = l->io != NULL ? sockit_io_start(l->io, SOCKIT_EVENT_READ) : sockit_errcode();
    if (rc < 0) {
        sockit_io_close(l->io);
        sockit_settimeout(listening, old_timeout);
        sockit__free(l);
        return NULL;
    }
    l->sock = listening;
    sockit__reserve_fd(&l->reserve_fd);
    return l;
}

sockit_listener *sockit__listener_borrow(sockit_loop *loop, sockit *listening,
                                         const sockit_listener_config *cfg, bool refuse,
                                         atomic_int *mirror, void *owner)
{
    sockit_listener *l = sockit_listener_new(loop, listening, cfg);
    if (l != NULL) {
        l->borrowed = true;
        l->refuse = refuse;
        l->mirror = mirror;
        l->owner = owner;
    }
    return l;
}

void *sockit__listener_owner(const sockit_listener *l) { return l->owner; }

void sockit__listener_let_go(sockit_listener *l)
{
    sockit_io_close(l->io);
    l->io = NULL;
    l->doomed = true;
}

void sockit__listener_close_streams(sockit_listener *l, bool abort, double linger)
{
    /* Closing one may end it at once (nothing queued), which unlinks it: the next is
     * taken first. Streams are walked on the loop's lists, those of l picked. */
    sockit_stream *st = sockit__stream_first(l->loop);
    while (st != NULL) {
        sockit_stream *next = sockit__stream_next(st);
        if (st->listener != l) {
            st = next;
            continue;
        }
        if (abort)
            sockit_stream_abort(st);
        else
            sockit_stream_close(st, linger);
        st = next;
    }
}

void sockit__listener_free(sockit_listener *l) { free_listener(l); }

size_t sockit_listener_count(const sockit_listener *l) { return l != NULL ? l->count : 0; }

int sockit_listener_pause(sockit_listener *l)
{
    if (l == NULL)
        return sockit__fail(-EINVAL, "listener_pause");
    l->paused = true;
    update_io(l);
    return 0;
}

int sockit_listener_resume(sockit_listener *l)
{
    if (l == NULL)
        return sockit__fail(-EINVAL, "listener_resume");
    l->paused = false;
    update_io(l);
    return 0;
}

int sockit_listener_address(const sockit_listener *l, sockit_addr *out)
{
    if (l == NULL)
        return sockit__fail(-EINVAL, "listener_address");
    return sockit_getsockname(l->sock, out);
}

void sockit_listener_close(sockit_listener *l)
{
    if (l == NULL || l->doomed)
        return;
    if (l->depth > 0) {
        l->doomed = true;
        update_io(l);
        return;
    }
    free_listener(l);
}
