/* The socketserver equivalent: configuration, the serving loop, accepting and
 * receiving datagrams. Running one request lives in socketserver_request.c; the
 * concurrency modes in socketserver_threads.c, _pool.c and _fork.c; closing in
 * _close.c; EMFILE shedding and the back-off in _shed.c; the default error report in
 * _report.c.
 *
 * The serving loop accepts (or receives) until the socket has nothing more, and only
 * then polls: the wake descriptor (shutdown), the slot descriptor (only while it
 * waits for capacity), the listening socket (only when there is capacity and no
 * back-off is running), and the children's pidfds. So a busy server makes no call
 * per request beyond the request's own. */
#include "socketserver.h"
#include "abi.h"

#include "sockit_tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define SRV_DEFAULT_THREADS     8
#define SRV_DEFAULT_QUEUE       64
#define SRV_DEFAULT_CHILDREN    40 /* Python's ForkingMixIn.max_children */
#define SRV_DEFAULT_DATAGRAM    65536
#define SRV_DEFAULT_CLOSE_GRACE 5.0 /* seconds */
#define SRV_DEFAULT_TLS_HANDSHAKE                                                                  \
    10.0 /* seconds: a client that never finishes holds a thread no longer */
/* Children without a pidfd are reaped by looking this often. */
#define SRV_REAP_TICK_MS 100

/* What one attempt gave: a request, nothing (the deadline, or a failure already
 * reported and backed off), a stop, or an empty socket (poll before trying again). */
enum { SERVED = 1, TIMED_OUT = 0, STOPPED = 2, EMPTY = 3 };

static int bad_config(const char *field, const char *why)
{
    sockit__failf(-EINVAL, "sockit_server_new: %s %s", field, why);
    return -EINVAL;
}

static int validate(int type, const sockit_server_config *cfg)
{
    if (cfg->stream != NULL &&
        sockit__table_check(cfg->stream, SOCKIT__BASE_STREAM_CALLBACKS, sizeof *cfg->stream,
                            "sockit_server_new: stream callbacks") < 0)
        return -EINVAL;
    if (cfg->datagram != NULL &&
        sockit__table_check(cfg->datagram, SOCKIT__BASE_DATAGRAM_CALLBACKS, sizeof *cfg->datagram,
                            "sockit_server_new: datagram callbacks") < 0)
        return -EINVAL;
    if (cfg->mode < SOCKIT_SEQUENTIAL || cfg->mode > SOCKIT_EVENTS)
        return bad_config("mode", "is not a sockit_server_mode");
    if (cfg->mode == SOCKIT_EVENTS) {
        if (type == SOCK_STREAM && cfg->stream == NULL && cfg->on_connect == NULL)
            return bad_config("stream", "is NULL (SOCKIT_EVENTS needs stream callbacks)");
        if (type == SOCK_DGRAM && cfg->datagram == NULL)
            return bad_config("datagram",
                              "is NULL (a SOCKIT_EVENTS datagram server needs its callbacks)");
        if (cfg->loops < 0 || cfg->loops > 256)
            return bad_config("loops", "must be 0 to 256");
        if (cfg->max_datagram > 65536)
            return bad_config("max_datagram", "is over 65536 (SOCKIT_EVENTS receives into "
                                              "64 KiB buffers)");
        if (cfg->idle_timeout > 4e6)
            return bad_config("idle_timeout", "is over 4e6 s (SOCKIT_EVENTS keeps it in ms)");
    } else if (cfg->handler == NULL) {
        return bad_config("handler", "is NULL");
    } else if (cfg->loops > 1 || cfg->loops < 0) {
        return bad_config("loops", "applies to SOCKIT_EVENTS only");
    }
    if (type != SOCK_STREAM && type != SOCK_DGRAM)
        return bad_config("type", "must be SOCK_STREAM or SOCK_DGRAM");
    if (cfg->tls != NULL) {
        if (type != SOCK_STREAM)
            return bad_config("tls", "applies to stream servers (no DTLS)");
        if (!sockit__tls_ctx_is_server(cfg->tls))
            return bad_config("tls", "is a client context (use SOCKIT_TLS_SERVER)");
    }
    if (!(cfg->tls_handshake_timeout >= 0 && cfg->tls_handshake_timeout < 4e6))
        return bad_config("tls_handshake_timeout",
                          "must be 0 (10 s) or a positive number of seconds");
    if (cfg->threads < 0)
        return bad_config("threads", "must not be negative");
    if (cfg->queue < 0)
        return bad_config("queue", "must not be negative");
    if (cfg->max_children < 0)
        return bad_config("max_children", "must not be negative");
    if (cfg->max_connections < 0)
        return bad_config("max_connections", "must not be negative");
    if (cfg->overflow != SOCKIT_OVERFLOW_WAIT && cfg->overflow != SOCKIT_OVERFLOW_REFUSE)
        return bad_config("overflow", "is not a sockit_overflow");
    if (cfg->idle_timeout != cfg->idle_timeout)
        return bad_config("idle_timeout", "is NaN");
    if (cfg->close_grace != cfg->close_grace)
        return bad_config("close_grace", "is NaN");
    return 0;
}

static void apply_defaults(sockit_server_config *c)
{
    if (c->threads == 0)
        c->threads = SRV_DEFAULT_THREADS;
    if (c->queue == 0)
        c->queue = SRV_DEFAULT_QUEUE;
    if (c->max_children == 0)
        c->max_children = SRV_DEFAULT_CHILDREN;
    if (c->max_datagram == 0)
        c->max_datagram = SRV_DEFAULT_DATAGRAM;
    if (c->close_grace == 0)
        c->close_grace = SRV_DEFAULT_CLOSE_GRACE;
    if (c->tls_handshake_timeout == 0)
        c->tls_handshake_timeout = SRV_DEFAULT_TLS_HANDSHAKE;
}

static void free_server(sockit_server *srv)
{
    sockit__srv_events_free(srv);
    sockit_close(srv->sock);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    if (srv->slot_fd >= 0)
        close(srv->slot_fd);
    if (srv->reserve_fd >= 0)
        close(srv->reserve_fd);
    if (srv->shared != NULL)
        munmap(srv->shared, sizeof *srv->shared);
    pthread_cond_destroy(&srv->idle_cv);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    sockit__free(srv->dgram_buf);
    if (srv->conn != NULL)
        sockit__free_parts(srv->conn);
    sockit__free(srv->conn);
    sockit__free(srv->pfd);
    sockit__free(srv->children);
    sockit__free(srv->workers);
    sockit_tls_ctx_free(srv->cfg.tls);
    sockit__free(srv);
}

void sockit__srv_unref(sockit_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    bool last = --srv->refs == 0;
    pthread_mutex_unlock(&srv->mu);
    if (last)
        free_server(srv);
}

sockit_server *sockit_server_new(const char *host, int port, int type,
                                 const sockit_server_config *cfg)
{
    sockit_server_config own;
    if (cfg == NULL) {
        bad_config("config", "is NULL");
        return NULL;
    }
    if (sockit__struct_copy(&own, sizeof own, cfg, SOCKIT__BASE_SERVER_CONFIG,
                            "sockit_server_new: config") < 0)
        return NULL;
    cfg = &own;
    if (validate(type, cfg) < 0)
        return NULL;
    sockit_server *srv = sockit__calloc(1, sizeof *srv);
    if (srv == NULL) {
        sockit__fail(-ENOMEM, "sockit_server_new");
        return NULL;
    }
    srv->wake_fd = srv->slot_fd = srv->reserve_fd = -1;
    srv->cfg = *cfg;
    apply_defaults(&srv->cfg);
    if (srv->cfg.tls != NULL)
        sockit__tls_ctx_ref(srv->cfg.tls);
    srv->type = type;
    srv->refs = 1;
    atomic_store(&srv->current_fd, -1);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    /* close waits on it against a monotonic deadline. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->idle_cv, &attr);
    pthread_condattr_destroy(&attr);
    void *shared =
        mmap(NULL, sizeof *srv->shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        sockit__failf(-errno, "sockit_server_new: mmap");
        goto fail_quiet;
    }
    srv->shared = shared; /* zeroed by the kernel */

    sockit_server_options opts = cfg->listen;
    /* Embedded in the config, it has the config's layout: its own size says nothing. */
    opts.size = 0;
    opts.type = type;
    /* Several loops each bind their own socket to this address (socketserver_events.c). */
    if (cfg->mode == SOCKIT_EVENTS && cfg->loops > 1)
        opts.reuse_port = true;
    srv->sock = sockit_create_server(host, port, &opts);
    if (srv->sock == NULL)
        goto fail_quiet;
    /* The loop polls before accepting or receiving, so the socket itself never waits. */
    if (sockit_settimeout(srv->sock, 0.0) < 0)
        goto fail_quiet;
    srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->slot_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->wake_fd < 0 || srv->slot_fd < 0) {
        sockit__failf(-errno, "sockit_server_new: eventfd");
        goto fail_quiet;
    }
    sockit__srv_reserve(srv);
    srv->pfd_cap = 3 + (srv->cfg.mode == SOCKIT_PROCESSES ? srv->cfg.max_children : 0);
    srv->pfd = sockit__calloc((size_t)srv->pfd_cap, sizeof *srv->pfd);
    if (type == SOCK_DGRAM && srv->cfg.mode != SOCKIT_EVENTS)
        srv->dgram_buf = sockit__malloc(srv->cfg.max_datagram);
    if (type == SOCK_STREAM && srv->cfg.mode == SOCKIT_SEQUENTIAL) {
        srv->conn = sockit__calloc(1, sizeof *srv->conn);
        if (srv->conn == NULL) {
            sockit__fail(-ENOMEM, "sockit_server_new");
            goto fail_quiet;
        }
        srv->conn->fd = -1;
    }
    if (srv->cfg.mode == SOCKIT_PROCESSES)
        srv->children = sockit__calloc((size_t)srv->cfg.max_children, sizeof *srv->children);
    if (srv->pfd == NULL ||
        (type == SOCK_DGRAM && srv->cfg.mode != SOCKIT_EVENTS && srv->dgram_buf == NULL) ||
        (srv->cfg.mode == SOCKIT_PROCESSES && srv->children == NULL)) {
        sockit__fail(-ENOMEM, "sockit_server_new");
        goto fail_quiet;
    }
    if (srv->cfg.mode == SOCKIT_POOL && sockit__srv_pool_start(srv) < 0)
        goto fail_quiet;
    if (srv->cfg.mode == SOCKIT_EVENTS && sockit__srv_events_prepare(srv) < 0)
        goto fail_quiet;
    return srv;

fail_quiet:
    /* The failing call wrote the message; keep it through the clean-up. */
    free_server(srv);
    return NULL;
}

int sockit_server_address(const sockit_server *srv, sockit_addr *out)
{
    if (srv == NULL || srv->sock == NULL)
        return sockit__fail(-EBADF, "sockit_server_address");
    return sockit_getsockname(srv->sock, out);
}

const char *sockit_server_backend(const sockit_server *srv)
{
    return srv != NULL && srv->cfg.mode == SOCKIT_EVENTS ? srv->ev_backend : NULL;
}

const char *sockit_server_backend_fallback(const sockit_server *srv)
{
    return sockit_server_backend(srv) != NULL && srv->ev_fallback[0] != '\0' ? srv->ev_fallback
                                                                             : NULL;
}

int sockit_server_active(const sockit_server *srv)
{
    return srv == NULL ? 0 : atomic_load(&((sockit_server *)srv)->running);
}

int sockit_server_waiting(const sockit_server *srv)
{
    return srv == NULL ? 0 : atomic_load(&((sockit_server *)srv)->queued);
}

bool sockit_server_stopping(const sockit_server *srv)
{
    return srv != NULL && atomic_load(&srv->shared->stopping);
}

void sockit_server_shutdown(sockit_server *srv)
{
    if (srv == NULL)
        return;
    /* Async-signal-safe: an atomic store and write(2); errno is the interrupted
     * code's and is put back. */
    int saved = errno;
    atomic_store(&srv->shared->stopping, true);
    atomic_store(&srv->stop, 1);
    if (srv->cfg.mode == SOCKIT_SEQUENTIAL)
        sockit__srv_shut_current(srv);
    uint64_t one = 1;
    ssize_t rc = write(srv->wake_fd, &one, sizeof one);
    (void)rc; /* a full eventfd counter still wakes the loop */
    errno = saved;
}

static void drain(int fd)
{
    uint64_t n;
    ssize_t rc = read(fd, &n, sizeof n);
    (void)rc; /* EAGAIN: nothing was pending */
}

static bool has_capacity(sockit_server *srv)
{
    const sockit_server_config *c = &srv->cfg;
    /* At the limit, REFUSE accepts only to close: whether the pool's queue or the
     * children's table is full too does not matter (they may fill at the same count). */
    if (c->max_connections > 0 && atomic_load(&srv->inhand) >= c->max_connections)
        return c->overflow == SOCKIT_OVERFLOW_REFUSE;
    if (c->mode == SOCKIT_POOL && !sockit__srv_pool_has_room(srv))
        return false;
    if (c->mode == SOCKIT_PROCESSES && srv->nchildren >= c->max_children)
        return false;
    return true;
}

static int accept_one(sockit_server *srv)
{
    sockit__job *job;
    sockit_addr peer;
    int fd = sockit__accept_fd(srv->sock, &peer);
    if (fd < 0) {
        int code = fd;
        if (code == SOCKIT_EWOULDBLOCK)
            return EMPTY;
        /* With the backlog emptied the listener stays quiet until the next client
         * comes: waiting for it is not spinning, so no back-off is needed. */
        if ((code == -EMFILE || code == -ENFILE) && sockit__srv_shed(srv)) {
            if (!srv->resource_reported)
                sockit__srv_report(srv, NULL, code);
            srv->resource_reported = true;
            return EMPTY;
        }
        sockit__srv_back_off(srv, code);
        return TIMED_OUT;
    }
    sockit__srv_resource_ok(srv);
    if (srv->cfg.max_connections > 0 && srv->cfg.overflow == SOCKIT_OVERFLOW_REFUSE &&
        atomic_load(&srv->inhand) >= srv->cfg.max_connections) {
        close(fd);
        return SERVED;
    }
    if (srv->cfg.mode == SOCKIT_SEQUENTIAL) {
        sockit__rewrap(srv->conn, fd, srv->sock->family, srv->type);
        sockit__job inline_job = {.conn = srv->conn, .peer = peer};
        sockit__srv_serve_inline(srv, &inline_job);
        return SERVED;
    }
    sockit *c = sockit__wrap(fd, srv->sock->family, srv->type, SOCKIT_BLOCKING);
    job = c != NULL ? sockit__calloc(1, sizeof *job) : NULL;
    if (job == NULL) {
        if (c != NULL)
            sockit_close(c);
        else
            close(fd);
        sockit__srv_back_off(srv, -ENOMEM);
        return TIMED_OUT;
    }
    job->conn = c;
    job->peer = peer;
    sockit__srv_dispatch(srv, job);
    return SERVED;
}

static int receive_one(sockit_server *srv)
{
    sockit_addr peer = {0};
    ssize_t n = sockit_recvfrom(srv->sock, srv->dgram_buf, srv->cfg.max_datagram, 0, &peer);
    if (n == SOCKIT_EWOULDBLOCK)
        return EMPTY;
    if (n < 0) {
        /* A datagram too big for max_datagram is reported, never served cut. */
        sockit_request req = {.peer = peer, .server = srv, .user = srv->cfg.user};
        sockit__srv_report(srv, n == SOCKIT_ETRUNCATED ? &req : NULL, (int)n);
        if (n != SOCKIT_ETRUNCATED)
            sockit__srv_back_off(srv, (int)n);
        return TIMED_OUT;
    }
    if (srv->cfg.max_connections > 0 && srv->cfg.overflow == SOCKIT_OVERFLOW_REFUSE &&
        atomic_load(&srv->inhand) >= srv->cfg.max_connections)
        return SERVED; /* dropped, as a datagram server can refuse */
    if (srv->cfg.mode == SOCKIT_SEQUENTIAL) {
        sockit__job inline_job = {.data = srv->dgram_buf, .len = (size_t)n, .peer = peer};
        sockit__srv_serve_inline(srv, &inline_job);
        return SERVED;
    }
    sockit__job *job = sockit__calloc(1, sizeof *job);
    char *data = sockit__malloc(n > 0 ? (size_t)n : 1);
    if (job == NULL || data == NULL) {
        sockit__free(job);
        sockit__free(data);
        sockit__srv_back_off(srv, -ENOMEM);
        return TIMED_OUT;
    }
    memcpy(data, srv->dgram_buf, (size_t)n);
    job->data = data;
    job->len = (size_t)n;
    job->peer = peer;
    sockit__srv_dispatch(srv, job);
    return SERVED;
}

/* Waits until one request is dispatched, the deadline passes or shutdown is asked. */
static int serve_one(sockit_server *srv, int64_t deadline)
{
    for (;;) {
        if (atomic_exchange(&srv->stop, 0)) {
            drain(srv->wake_fd);
            return STOPPED;
        }
        if (srv->cfg.mode == SOCKIT_THREADS)
            sockit__srv_thread_reap(srv);
        if (srv->cfg.mode == SOCKIT_PROCESSES)
            sockit__srv_fork_reap(srv, false, false);
        sockit__srv_reserve(srv);

        /* The clock is read only while a back-off runs, or before waiting. */
        bool capacity = has_capacity(srv);
        bool backing_off = srv->backoff_until != 0 && sockit__now_ns() < srv->backoff_until;
        if (capacity && !backing_off && !srv->drained) {
            int rc = srv->type == SOCK_STREAM ? accept_one(srv) : receive_one(srv);
            /* A forked child's shutdown reaches this process only through the wake
             * descriptor, so a process server polls between requests; a fork costs
             * far more than the poll. */
            if (rc == EMPTY || (rc == SERVED && srv->cfg.mode == SOCKIT_PROCESSES))
                srv->drained = true;
            if (rc == SERVED)
                return SERVED;
            continue;
        }
        if (deadline != SOCKIT__NEVER && sockit__now_ns() >= deadline)
            return TIMED_OUT;
        struct pollfd *pfd = srv->pfd;
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = srv->wake_fd, .events = POLLIN};
        int listen_at = -1, slot_at = -1;
        if (capacity && !backing_off) {
            listen_at = n;
            pfd[n++] = (struct pollfd){.fd = sockit_fileno(srv->sock), .events = POLLIN};
        }
        if (!capacity) {
            atomic_store(&srv->want_slot, true);
            if (has_capacity(srv)) {
                atomic_store(&srv->want_slot, false);
                continue;
            }
            slot_at = n;
            pfd[n++] = (struct pollfd){.fd = srv->slot_fd, .events = POLLIN};
        }
        bool tick = false;
        if (srv->cfg.mode == SOCKIT_PROCESSES)
            n += sockit__srv_fork_pollfds(srv, pfd + n, srv->pfd_cap - n, &tick);

        int64_t wake = deadline;
        if (capacity && backing_off && srv->backoff_until < wake)
            wake = srv->backoff_until;
        int ms = sockit__remaining_ms(wake);
        if (tick && (ms < 0 || ms > SRV_REAP_TICK_MS))
            ms = SRV_REAP_TICK_MS;
        int ready = sockit__sys_poll(pfd, (nfds_t)n, ms);
        int err = errno;
        atomic_store(&srv->want_slot, false);
        if (ready < 0) {
            if (err == EINTR)
                continue;
            return sockit__failf(-err, "sockit_server: poll");
        }
        /* The eventfd is the shutdown request that reaches us from anywhere: a
         * forked child's handler shares the descriptor but not our stop flag. */
        if (pfd[0].revents & POLLIN) {
            drain(srv->wake_fd);
            atomic_store(&srv->stop, 0);
            return STOPPED;
        }
        if (slot_at >= 0 && pfd[slot_at].revents & POLLIN)
            drain(srv->slot_fd);
        if (listen_at >= 0 && pfd[listen_at].revents != 0)
            srv->drained = false;
    }
}

/* A new run of serving: a handler asking sockit_server_stopping hears about this
 * run's shutdown, not a past one's. */
static void start_run(sockit_server *srv)
{
    if (atomic_load(&srv->stop) == 0)
        atomic_store(&srv->shared->stopping, false);
}

int sockit_server_serve_forever(sockit_server *srv)
{
    if (srv == NULL || srv->sock == NULL)
        return sockit__fail(-EBADF, "sockit_server_serve_forever");
    start_run(srv);
    if (srv->cfg.mode == SOCKIT_EVENTS)
        return sockit__srv_events_serve(srv, -1, false);
    for (;;) {
        int rc = serve_one(srv, SOCKIT__NEVER);
        if (rc == STOPPED)
            return 0;
        if (rc < 0)
            return rc;
    }
}

int sockit_server_handle_request(sockit_server *srv, double timeout)
{
    if (srv == NULL || srv->sock == NULL)
        return sockit__fail(-EBADF, "sockit_server_handle_request");
    if (timeout != timeout)
        return sockit__failf(-EINVAL, "sockit_server_handle_request: timeout is NaN");
    start_run(srv);
    if (srv->cfg.mode == SOCKIT_EVENTS)
        return sockit__srv_events_serve(srv, timeout, true);
    int rc = serve_one(srv, sockit__deadline(timeout));
    if (rc == SERVED)
        return 1;
    if (rc == TIMED_OUT && srv->cfg.handle_timeout != NULL)
        srv->cfg.handle_timeout(srv, srv->cfg.user);
    return rc < 0 ? rc : 0;
}
