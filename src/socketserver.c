/* The socketserver equivalent: configuration, the serving loop, accepting (with
 * EMFILE shedding and back-off), receiving datagrams, and running one request. The
 * concurrency modes live in socketserver_threads.c, _pool.c and _fork.c.
 *
 * The serving loop polls: the wake descriptor (shutdown), the slot descriptor (a
 * request finished, so there may be capacity again), the listening socket (only
 * when there is capacity and no back-off is running), and the children's pidfds. */
#include "socketserver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SRV_DEFAULT_THREADS  8
#define SRV_DEFAULT_QUEUE    64
#define SRV_DEFAULT_CHILDREN 40 /* Python's ForkingMixIn.max_children */
#define SRV_DEFAULT_DATAGRAM 65536
/* After a resource error (EMFILE, ENOBUFS...) accepting pauses, doubling from the
 * minimum to the maximum while the errors go on: the listener stays readable, and
 * polling it at once again is what makes other servers spin at 100% CPU. */
#define SRV_BACKOFF_MIN_NS (10 * 1000000LL)
#define SRV_BACKOFF_MAX_NS (1000 * 1000000LL)
/* Children without a pidfd are reaped by looking this often. */
#define SRV_REAP_TICK_MS 100

enum { SERVED = 1, TIMED_OUT = 0, STOPPED = 2 };

static int bad_config(const char *field, const char *why)
{
    sockit__failf(-EINVAL, "sockit_server_new: %s %s", field, why);
    return -EINVAL;
}

static int validate(int type, const sockit_server_config *cfg)
{
    if (cfg == NULL)
        return bad_config("config", "is NULL");
    if (cfg->handler == NULL)
        return bad_config("handler", "is NULL");
    if (type != SOCK_STREAM && type != SOCK_DGRAM)
        return bad_config("type", "must be SOCK_STREAM or SOCK_DGRAM");
    if (cfg->mode < SOCKIT_SEQUENTIAL || cfg->mode > SOCKIT_POOL)
        return bad_config("mode", "is not a sockit_server_mode");
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
}

static void free_server(sockit_server *srv)
{
    sockit_close(srv->sock);
    if (srv->wake_fd >= 0)
        close(srv->wake_fd);
    if (srv->slot_fd >= 0)
        close(srv->slot_fd);
    if (srv->reserve_fd >= 0)
        close(srv->reserve_fd);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->dgram_buf);
    free(srv->pfd);
    free(srv->children);
    free(srv->workers);
    free(srv);
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
    if (validate(type, cfg) < 0)
        return NULL;
    sockit_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        sockit__fail(-ENOMEM, "sockit_server_new");
        return NULL;
    }
    srv->wake_fd = srv->slot_fd = srv->reserve_fd = -1;
    srv->cfg = *cfg;
    apply_defaults(&srv->cfg);
    srv->type = type;
    srv->refs = 1;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);

    sockit_server_options opts = cfg->listen;
    opts.type = type;
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
    srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    srv->pfd_cap = 3 + (srv->cfg.mode == SOCKIT_PROCESSES ? srv->cfg.max_children : 0);
    srv->pfd = calloc((size_t)srv->pfd_cap, sizeof *srv->pfd);
    if (type == SOCK_DGRAM)
        srv->dgram_buf = malloc(srv->cfg.max_datagram);
    if (srv->cfg.mode == SOCKIT_PROCESSES)
        srv->children = calloc((size_t)srv->cfg.max_children, sizeof *srv->children);
    if (srv->pfd == NULL || (type == SOCK_DGRAM && srv->dgram_buf == NULL) ||
        (srv->cfg.mode == SOCKIT_PROCESSES && srv->children == NULL)) {
        sockit__fail(-ENOMEM, "sockit_server_new");
        goto fail_quiet;
    }
    if (srv->cfg.mode == SOCKIT_POOL && sockit__srv_pool_start(srv) < 0)
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

int sockit_server_active(const sockit_server *srv)
{
    return srv == NULL ? 0 : atomic_load(&((sockit_server *)srv)->active);
}

void sockit_server_shutdown(sockit_server *srv)
{
    if (srv == NULL)
        return;
    /* Async-signal-safe: an atomic store and write(2); errno is the interrupted
     * code's and is put back. */
    int saved = errno;
    atomic_store(&srv->stop, 1);
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

void sockit__srv_report(sockit_server *srv, sockit_request *req, int code)
{
    if (srv->cfg.handle_error != NULL) {
        srv->cfg.handle_error(req, code, srv->cfg.user);
        return;
    }
    /* The thread's last message explains the code when it is the code's own. */
    const char *why = sockit_errcode() == code ? sockit_errmsg() : sockit_strerror(code);
    if (req != NULL) {
        char peer[SOCKIT_ADDRSTRLEN];
        sockit__addr_text(&req->peer, peer, sizeof peer);
        fprintf(stderr, "sockit_server: request from %s failed: %s\n", peer, why);
    } else {
        fprintf(stderr, "sockit_server: %s\n", why);
    }
}

void sockit__srv_job_free(sockit__job *job)
{
    if (job == NULL)
        return;
    sockit_close(job->conn);
    free(job->data);
    free(job);
}

void sockit__srv_track(sockit_server *srv, sockit__job *job, bool add)
{
    pthread_mutex_lock(&srv->mu);
    if (add) {
        job->prev = NULL;
        job->next = srv->running;
        if (srv->running != NULL)
            srv->running->prev = job;
        srv->running = job;
    } else {
        if (job->prev != NULL)
            job->prev->next = job->next;
        else
            srv->running = job->next;
        if (job->next != NULL)
            job->next->prev = job->prev;
    }
    pthread_mutex_unlock(&srv->mu);
}

int sockit__srv_handle(sockit_server *srv, sockit__job *job)
{
    sockit_request req = {
        .sock = job->conn != NULL ? job->conn : srv->sock,
        .peer = job->peer,
        .data = job->data,
        .len = job->len,
        .server = srv,
        .user = srv->cfg.user,
    };
    int rc = srv->cfg.handler(&req);
    if (rc < 0)
        sockit__srv_report(srv, &req, rc);
    return rc;
}

void sockit__srv_run_job(sockit_server *srv, sockit__job *job, bool track)
{
    sockit__srv_handle(srv, job);
    /* Unlisted before the close, so abandon_on_close never shuts down a descriptor
     * number that a close here already gave back to the system. */
    if (track)
        sockit__srv_track(srv, job, false);
    sockit__srv_job_free(job);
}

void sockit__srv_job_finished(sockit_server *srv)
{
    atomic_fetch_sub(&srv->active, 1);
    uint64_t one = 1;
    ssize_t rc = write(srv->slot_fd, &one, sizeof one);
    (void)rc; /* a full counter already means "look again" */
}

static bool has_capacity(sockit_server *srv)
{
    const sockit_server_config *c = &srv->cfg;
    if (c->max_connections > 0 && c->overflow == SOCKIT_OVERFLOW_WAIT &&
        atomic_load(&srv->active) >= c->max_connections)
        return false;
    if (c->mode == SOCKIT_POOL && !sockit__srv_pool_has_room(srv))
        return false;
    if (c->mode == SOCKIT_PROCESSES && srv->nchildren >= c->max_children)
        return false;
    return true;
}

static int dispatch(sockit_server *srv, sockit__job *job)
{
    const sockit_server_config *c = &srv->cfg;
    if (c->verify_request != NULL && !c->verify_request(srv, &job->peer, c->user)) {
        sockit__srv_job_free(job);
        return SERVED;
    }
    if (job->conn != NULL && c->idle_timeout > 0)
        sockit_settimeout(job->conn, c->idle_timeout);
    atomic_fetch_add(&srv->active, 1);
    int rc = 0;
    switch (c->mode) {
    case SOCKIT_SEQUENTIAL:
        sockit__srv_run_job(srv, job, false);
        sockit__srv_job_finished(srv);
        return SERVED;
    case SOCKIT_THREADS:
        /* Listed before it is handed over: abandon_on_close must reach a request
         * whose thread has not started yet too. */
        sockit__srv_track(srv, job, true);
        rc = sockit__srv_thread_dispatch(srv, job);
        break;
    case SOCKIT_POOL:
        sockit__srv_track(srv, job, true);
        rc = sockit__srv_pool_dispatch(srv, job);
        break;
    case SOCKIT_PROCESSES:
        rc = sockit__srv_fork_dispatch(srv, job);
        break;
    }
    if (rc < 0) {
        /* Could not hand it over (no thread, no process): the client is dropped, the
         * server reports it and goes on. */
        sockit_request req = {.peer = job->peer, .server = srv, .user = c->user};
        sockit__srv_report(srv, &req, rc);
        if (c->mode == SOCKIT_THREADS || c->mode == SOCKIT_POOL)
            sockit__srv_track(srv, job, false);
        sockit__srv_job_free(job);
        sockit__srv_job_finished(srv);
    }
    return SERVED;
}

static void back_off(sockit_server *srv, int code)
{
    if (!srv->resource_reported) {
        sockit__srv_report(srv, NULL, code);
        srv->resource_reported = true;
    }
    int64_t b = srv->backoff_ns == 0 ? SRV_BACKOFF_MIN_NS : srv->backoff_ns * 2;
    srv->backoff_ns = b > SRV_BACKOFF_MAX_NS ? SRV_BACKOFF_MAX_NS : b;
    srv->backoff_until = sockit__now_ns() + srv->backoff_ns;
}

/* Out of descriptors: give up the spare one for a moment to accept the pending
 * connection and close it, so the client learns at once instead of hanging, and the
 * listener stops being readable. */
static void shed_one(sockit_server *srv)
{
    if (srv->reserve_fd < 0)
        return;
    close(srv->reserve_fd);
    int fd = accept4(sockit_fileno(srv->sock), NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static int accept_one(sockit_server *srv)
{
    sockit__job *job;
    sockit_addr peer;
    sockit *c = sockit_accept(srv->sock, &peer);
    if (c == NULL) {
        int code = sockit_errcode();
        if (code == SOCKIT_EWOULDBLOCK)
            return TIMED_OUT;
        if (code == -EMFILE || code == -ENFILE)
            shed_one(srv);
        back_off(srv, code);
        return TIMED_OUT;
    }
    srv->backoff_ns = 0;
    srv->resource_reported = false;
    if (srv->reserve_fd < 0)
        srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (srv->cfg.max_connections > 0 && srv->cfg.overflow == SOCKIT_OVERFLOW_REFUSE &&
        atomic_load(&srv->active) >= srv->cfg.max_connections) {
        sockit_close(c);
        return SERVED;
    }
    job = calloc(1, sizeof *job);
    if (job == NULL) {
        sockit_close(c);
        back_off(srv, -ENOMEM);
        return TIMED_OUT;
    }
    job->conn = c;
    job->peer = peer;
    return dispatch(srv, job);
}

static int receive_one(sockit_server *srv)
{
    sockit_addr peer = {0};
    ssize_t n = sockit_recvfrom(srv->sock, srv->dgram_buf, srv->cfg.max_datagram, 0, &peer);
    if (n == SOCKIT_EWOULDBLOCK)
        return TIMED_OUT;
    if (n < 0) {
        /* A datagram too big for max_datagram is reported, never served cut. */
        sockit_request req = {.peer = peer, .server = srv, .user = srv->cfg.user};
        sockit__srv_report(srv, n == SOCKIT_ETRUNCATED ? &req : NULL, (int)n);
        if (n != SOCKIT_ETRUNCATED)
            back_off(srv, (int)n);
        return TIMED_OUT;
    }
    if (srv->cfg.max_connections > 0 && srv->cfg.overflow == SOCKIT_OVERFLOW_REFUSE &&
        atomic_load(&srv->active) >= srv->cfg.max_connections)
        return SERVED; /* dropped, as a datagram server can refuse */
    sockit__job *job = calloc(1, sizeof *job);
    char *data = malloc(n > 0 ? (size_t)n : 1);
    if (job == NULL || data == NULL) {
        free(job);
        free(data);
        back_off(srv, -ENOMEM);
        return TIMED_OUT;
    }
    memcpy(data, srv->dgram_buf, (size_t)n);
    job->data = data;
    job->len = (size_t)n;
    job->peer = peer;
    return dispatch(srv, job);
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
            sockit__srv_thread_reap(srv, false);
        if (srv->cfg.mode == SOCKIT_PROCESSES)
            sockit__srv_fork_reap(srv, false, false);
        if (srv->reserve_fd < 0)
            srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        int64_t now = sockit__now_ns();
        if (deadline != SOCKIT__NEVER && now >= deadline)
            return TIMED_OUT;
        struct pollfd *pfd = srv->pfd;
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = srv->wake_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = srv->slot_fd, .events = POLLIN};
        bool capacity = has_capacity(srv);
        bool backing_off = now < srv->backoff_until;
        int listen_at = -1;
        if (capacity && !backing_off) {
            listen_at = n;
            pfd[n++] = (struct pollfd){.fd = sockit_fileno(srv->sock), .events = POLLIN};
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
        int ready = poll(pfd, (nfds_t)n, ms);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            return sockit__failf(-errno, "sockit_server: poll");
        }
        /* The eventfd is the shutdown request that reaches us from anywhere: a
         * forked child's handler shares the descriptor but not our stop flag. */
        if (pfd[0].revents & POLLIN) {
            drain(srv->wake_fd);
            atomic_store(&srv->stop, 0);
            return STOPPED;
        }
        if (pfd[1].revents & POLLIN)
            drain(srv->slot_fd);
        if (listen_at >= 0 && pfd[listen_at].revents != 0) {
            int rc = srv->type == SOCK_STREAM ? accept_one(srv) : receive_one(srv);
            if (rc == SERVED)
                return SERVED;
        }
    }
}

int sockit_server_serve_forever(sockit_server *srv)
{
    if (srv == NULL || srv->sock == NULL)
        return sockit__fail(-EBADF, "sockit_server_serve_forever");
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
    int rc = serve_one(srv, sockit__deadline(timeout));
    if (rc == SERVED)
        return 1;
    if (rc == TIMED_OUT && srv->cfg.handle_timeout != NULL)
        srv->cfg.handle_timeout(srv, srv->cfg.user);
    return rc < 0 ? rc : 0;
}

/* Shuts down every running connection so abandoned handlers end soon. */
static void shut_running(sockit_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    for (sockit__job *j = srv->running; j != NULL; j = j->next)
        if (j->conn != NULL)
            shutdown(sockit_fileno(j->conn), SHUT_RDWR);
    pthread_mutex_unlock(&srv->mu);
}

int sockit_server_close(sockit_server *srv)
{
    if (srv == NULL)
        return 0;
    bool abandon = srv->cfg.abandon_on_close;
    pthread_mutex_lock(&srv->mu);
    srv->closing = true;
    pthread_mutex_unlock(&srv->mu);
    /* A stream listener goes first, so no client waits in a backlog nobody serves;
     * a datagram socket stays until the last handler that may reply with it ends. */
    if (srv->type == SOCK_STREAM) {
        sockit_close(srv->sock);
        srv->sock = NULL;
    }
    if (abandon)
        shut_running(srv);
    switch (srv->cfg.mode) {
    case SOCKIT_SEQUENTIAL:
        break;
    case SOCKIT_THREADS:
        if (abandon)
            sockit__srv_thread_abandon(srv);
        else
            sockit__srv_thread_reap(srv, true);
        break;
    case SOCKIT_POOL:
        sockit__srv_pool_stop(srv, abandon);
        break;
    case SOCKIT_PROCESSES:
        sockit__srv_fork_reap(srv, true, abandon);
        break;
    }
    sockit__srv_unref(srv);
    return 0;
}
