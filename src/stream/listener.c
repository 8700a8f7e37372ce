/* Accepting on a loop: each connection becomes a stream. verify runs before a stream
 * is made; max_connections stops watching the listener (clients wait in the
 * kernel's backlog) until one of its streams ends. Running out of descriptors is
 * handled as the blocking server does (shed.c, shared with it): the spare descriptor is
 * given up to accept and close every pending client, so they read end of stream at
 * once and the listener goes quiet instead of staying readable and spinning the
 * loop; other resource errors stop accepting for a back-off that doubles. */
#include "../abi.h"
#include "sockit_tls.h"
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
    int depth;       /* inside its own accept loop (callbacks may close it) */
    bool doomed;     /* accepts no more: closed, or let go by its server */
    bool free_asked; /* closed while in use (a callback, the kernel's accept): freed
                        when that ends */
    /* A server's listener (socketserver_events.c): the socket stays the server's,
     * clients beyond max_connections are refused rather than left waiting when
     * refuse is set, and the count is mirrored for sockit_server_active. */
    bool borrowed, refuse;
    atomic_int *mirror;
    void *owner;
    /* On a completion backend: a multishot accept is in flight (it keeps the
     * listener's memory until its last completion), its cancel was asked; clients
     * the kernel accepted while a pause or max_connections was on its way wait here
     * for accepting to resume (admit_waiting, a deferred call). */
    bool ring, accept_on, accept_stop, waiting_scheduled, released;
    bool starved; /* ring: out of descriptors, accepting by readiness meanwhile */
    int *waiting;
    size_t nwaiting, waiting_cap;
};

static void free_listener(sockit_listener *l);
static void admit(sockit_listener *l, int fd, const sockit_addr *peer);
static void admit_waiting(sockit_loop *loop, void *arg);
static void accept_failed(sockit_listener *l, int code);

/* Injected accept faults (test builds) reach a completion where accept4 would have
 * failed: the client, which the kernel has accepted already, waits for the retry
 * as it would have waited in the backlog. */
static int accept_fault(void)
{
    size_t z = 0;
    return sockit__sys_ring_fault(SOCKIT__SYS_ACCEPT, &z);
}

static bool wants_accepting(const sockit_listener *l)
{
    return !(l->paused || l->held || l->backing_off || l->doomed);
}

static void on_readable(sockit_io *io, int events, void *arg);
static void back_off(sockit_listener *l);

static void update_ring(sockit_listener *l)
{
    sockit__backend *b = &l->loop->backend;
    uint64_t tag = sockit__tag(l, SOCKIT__TAG_ACCEPT);
    /* Out of descriptors, an accept the kernel runs fails at once, client or not
     * (it takes the descriptor first): readiness and accept4 wait for a client
     * instead, until one is accepted again. */
    bool want = wants_accepting(l) && !l->starved;
    if (want && l->nwaiting > 0) {
        /* Those the kernel accepted already go first, from the loop. */
        if (!l->waiting_scheduled && sockit_loop_call_soon(l->loop, admit_waiting, l) == 0)
            l->waiting_scheduled = true;
        return;
    }
    if (want && !l->accept_on) {
        if (b->ops->accept(b, sockit_fileno(l->sock), tag) == 0) {
            l->accept_on = true;
            l->loop->ops_pending++;
        } else {
            /* Not taken (a submission queue the kernel would not empty): tried again
             * after a back-off, not left silent. (At creation the caller is told.) */
            back_off(l);
        }
    } else if (!want && l->accept_on && !l->accept_stop) {
        /* At once: a listener let go must stop taking clients before its socket is
         * closed, not at the next wait. */
        if (b->ops->cancel(b, tag, true) == 0)
            l->accept_stop = true;
    }
}

static void update_io(sockit_listener *l)
{
    if (l->ring) {
        update_ring(l);
        if (l->starved && l->io == NULL && !l->doomed &&
            (l->io = sockit_io_new(l->loop, sockit_fileno(l->sock), on_readable, l)) == NULL)
            l->starved = false; /* no watcher: the kernel's accept it is, backing off */
        if (!l->starved) {
            if (l->io != NULL && sockit_io_events(l->io) != 0)
                sockit_io_stop(l->io);
            return;
        }
    }
    if (l->io == NULL)
        return;
    int want = wants_accepting(l) ? SOCKIT_EVENT_READ : 0;
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

/* Everything but the memory: the socket closes now (a client is refused at once),
 * the streams are unlinked, the kernel's accept is cancelled. */
static void release(sockit_listener *l)
{
    l->doomed = true;
    update_io(l);
    l->released = true;
    for (size_t i = 0; i < l->nwaiting; i++)
        close(l->waiting[i]);
    l->nwaiting = 0;
    if (l->count > 0)
        for (sockit_stream *st = sockit__stream_first(l->loop); st != NULL;
             st = sockit__stream_next(st))
            if (st->listener == l)
                st->listener = NULL;
    sockit_io_close(l->io);
    l->io = NULL;
    sockit_timer_close(l->backoff);
    l->backoff = NULL;
    if (l->reserve_fd >= 0)
        close(l->reserve_fd);
    l->reserve_fd = -1;
    if (!l->borrowed)
        sockit_close(l->sock);
    l->sock = NULL;
    if (l->ring)
        l->loop->open[SOCKIT__IO]--;
}

static void free_listener(sockit_listener *l)
{
    if (!l->released)
        release(l);
    if (l->accept_on || l->waiting_scheduled) {
        /* The kernel still has its accept, or the loop a call for it: the memory
         * goes with the last of them. */
        l->free_asked = true;
        return;
    }
    sockit__free(l->waiting);
    sockit_tls_ctx_free(l->cfg.tls);
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
    if (c->tls != NULL &&
        sockit__stream_tls(st, c->tls, NULL, c->tls_handshake_timeout, NULL, NULL) < 0) {
        report(l, sockit_errcode());
        sockit_stream_abort(st);
        return;
    }
    if (c->on_accept != NULL)
        c->on_accept(l, st, peer, c->user);
}

/* A client's address, which a multishot accept does not give. */
static void admit_fd(sockit_listener *l, int fd)
{
    sockit_addr peer;
    socklen_t len = sizeof peer.u;
    if (getpeername(fd, &peer.u.sa, &len) < 0)
        len = 0;
    peer.len = len;
    admit(l, fd, &peer);
}

static void admit_waiting(sockit_loop *loop, void *arg)
{
    (void)loop;
    sockit_listener *l = arg;
    l->waiting_scheduled = false;
    if (l->free_asked) {
        free_listener(l);
        return;
    }
    l->depth++;
    size_t i = 0;
    while (i < l->nwaiting && wants_accepting(l)) {
        int fault = accept_fault();
        if (fault < 0) {
            accept_failed(l, fault); /* it stays first in line */
            break;
        }
        admit_fd(l, l->waiting[i++]);
    }
    memmove(l->waiting, l->waiting + i, (l->nwaiting - i) * sizeof *l->waiting);
    l->nwaiting -= i;
    l->depth--;
    if (l->free_asked && l->depth == 0)
        free_listener(l);
    else
        update_io(l);
}

static void keep_waiting(sockit_listener *l, int fd)
{
    if (l->nwaiting == l->waiting_cap) {
        size_t cap = l->waiting_cap ? l->waiting_cap * 2 : 16;
        int *a = sockit__realloc(l->waiting, cap * sizeof *a);
        if (a == NULL) {
            close(fd); /* the client reads end of stream at once */
            return;
        }
        l->waiting = a;
        l->waiting_cap = cap;
    }
    l->waiting[l->nwaiting++] = fd;
}

static void accept_failed(sockit_listener *l, int code)
{
    report(l, code);
    if ((code == -EMFILE || code == -ENFILE) &&
        sockit__shed_backlog(sockit_fileno(l->sock), &l->reserve_fd)) {
        l->starved = true; /* the backlog is empty: readiness waits for the next */
        update_io(l);
        return;
    }
    back_off(l);
}

void sockit__listener_accept_done(sockit_listener *l, int res, bool more)
{
    if (!more)
        l->accept_on = l->accept_stop = false;
    l->depth++;
    if (res >= 0) {
        int fault;
        if (l->doomed) {
            close(res);
        } else if (!wants_accepting(l) || l->nwaiting > 0) {
            keep_waiting(l, res);
        } else if ((fault = accept_fault()) < 0) {
            keep_waiting(l, res);
            accept_failed(l, fault);
        } else {
            l->backoff_ns = 0;
            admit_fd(l, res);
        }
    } else if (res != -ECANCELED && res != -EINTR && res != -ECONNABORTED && !l->doomed) {
        accept_failed(l, res);
    }
    l->depth--;
    if (l->free_asked) {
        if (l->depth == 0 && !more)
            free_listener(l);
        return;
    }
    if (!more)
        update_io(l); /* ended by the kernel or by a cancel: again if still wanted */
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
        if (l->starved) {
            /* Descriptors again: back to the kernel's accept after this client. */
            l->starved = false;
            update_io(l);
        }
        admit(l, fd, &peer);
    }
    l->depth--;
    if (l->free_asked && l->depth == 0)
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
    sockit_listener_config own;
    if (sockit__struct_copy(&own, sizeof own, cfg, SOCKIT__BASE_LISTENER_CONFIG,
                            "listener_new: config") < 0)
        return NULL;
    cfg = &own;
    if (cfg->callbacks != NULL &&
        sockit__table_check(cfg->callbacks, SOCKIT__BASE_STREAM_CALLBACKS, sizeof *cfg->callbacks,
                            "listener_new: callbacks") < 0)
        return NULL;
    if (cfg->tls != NULL && !sockit__tls_ctx_is_server(cfg->tls)) {
        sockit__failf(-EINVAL, "listener_new: tls is a client context (use SOCKIT_TLS_SERVER)");
        return NULL;
    }
    if (!(cfg->tls_handshake_timeout >= 0 && cfg->tls_handshake_timeout <= SOCKIT__IDLE_MAX_S)) {
        sockit__failf(-EINVAL, "listener_new: tls_handshake_timeout is not a number of seconds "
                               "up to 4e6");
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
    if (l->cfg.tls != NULL)
        sockit__tls_ctx_ref(l->cfg.tls);
    l->reserve_fd = -1;
    double old_timeout = sockit_gettimeout(listening);
    int rc = sockit_settimeout(listening, 0.0);
    l->ring = sockit__loop_completes(loop);
    if (l->ring) {
        l->sock = listening;
        update_ring(l);
        loop->open[SOCKIT__IO]++; /* an open watcher, as the readiness one is */
        if (!l->accept_on) {
            sockit_timer_close(l->backoff);
            loop->open[SOCKIT__IO]--;
            sockit__failf(-ENOMEM, "listener_new (fd %d): starting to accept", listening->fd);
            sockit_settimeout(listening, old_timeout);
            sockit_tls_ctx_free(l->cfg.tls);
            sockit__free(l);
            return NULL;
        }
        sockit__reserve_fd(&l->reserve_fd);
        return l;
    }
    l->io = rc == 0 ? sockit_io_new(loop, listening->fd, on_readable, l) : NULL;
    rc = l->io != NULL ? sockit_io_start(l->io, SOCKIT_EVENT_READ) : sockit_errcode();
    if (rc < 0) {
        sockit_io_close(l->io);
        sockit_settimeout(listening, old_timeout);
        sockit_tls_ctx_free(l->cfg.tls);
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
    update_io(l); /* on a completion backend, the accept is cancelled now */
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
        l->doomed = l->free_asked = true;
        update_io(l);
        return;
    }
    free_listener(l);
}
