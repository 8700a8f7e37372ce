/* sockit_loop: creating, running, stopping and closing a loop, and what every
 * watcher shares (active/keepalive counting, deferred freeing). The phases of one
 * iteration are listed in sockit.h, section 8, and run in iterate() below. */
#include "../abi.h"
#include "loop_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define DEFAULT_MAX_POSTS 65536

void sockit__watcher_init(sockit__watcher *w, sockit_loop *loop, sockit__kind kind, void *user,
                          bool keepalive)
{
    memset(w, 0, sizeof *w);
    w->loop = loop;
    w->kind = kind;
    w->user = user;
    w->keepalive = keepalive;
    loop->open[kind]++;
}

void sockit__watcher_set_active(sockit__watcher *w, bool active)
{
    if (w->active == active)
        return;
    w->active = active;
    if (w->keepalive)
        w->loop->alive += active ? 1 : -1;
}

void sockit__watcher_set_keepalive(sockit__watcher *w, bool on)
{
    if (w->keepalive == on)
        return;
    w->keepalive = on;
    if (w->active)
        w->loop->alive += on ? 1 : -1;
}

static void free_watcher(sockit__watcher *w)
{
    switch (w->kind) {
    case SOCKIT__IO:
        sockit__io_free((sockit_io *)w);
        break;
    case SOCKIT__TIMER:
        sockit__timer_free((sockit_timer *)w);
        break;
    case SOCKIT__SIGNAL:
        sockit__signal_free((sockit_signal *)w);
        break;
    case SOCKIT__WAKEUP:
    case SOCKIT__KINDS:
        sockit__free(w);
        break;
    }
}

void sockit__watcher_release(sockit__watcher *w)
{
    sockit_loop *loop = w->loop;
    loop->open[w->kind]--;
    /* During an iteration a report for w may still be on its way (a batch of events
     * already collected): w stays allocated, marked closing, until the end. */
    if (loop->running) {
        w->closing = true;
        w->next_closing = loop->closing;
        loop->closing = w;
        return;
    }
    free_watcher(w);
}

void sockit__loop_wake(sockit_loop *loop)
{
    if (atomic_exchange(&loop->wake_pending, true))
        return;
    uint64_t one = 1;
    /* EAGAIN means the counter is full, i.e. a wake is pending anyway. */
    ssize_t n = write(loop->wakefd, &one, sizeof one);
    (void)n;
}

static void wake_ready(void *ctx, uint64_t token, int events)
{
    sockit_loop *loop = ctx;
    if (token == SOCKIT__WAKE_TOKEN) {
        loop->woken = true;
        return;
    }
    /* Callbacks see the time after the wait, not before it: a timeout a callback
     * starts (a stream's idle clock) must not count the wait it just ended. */
    if (!loop->time_fresh) {
        loop->now = sockit__now_ns();
        loop->time_fresh = true;
    }
    sockit__io_ready(loop, token, events);
}

static void complete(void *ctx, uint64_t tag, int res, const char *data, bool more)
{
    sockit_loop *loop = ctx;
    if (!loop->time_fresh) {
        loop->now = sockit__now_ns();
        loop->time_fresh = true;
    }
    if (!more)
        loop->ops_pending--;
    void *obj = (void *)(uintptr_t)(tag & ~(uint64_t)SOCKIT__TAG_KIND);
    switch (tag & SOCKIT__TAG_KIND) {
    case SOCKIT__TAG_STREAM_RECV:
        sockit__stream_recv_done(obj, res, data, more);
        break;
    case SOCKIT__TAG_STREAM_SEND:
        sockit__stream_send_done(obj, res);
        break;
    case SOCKIT__TAG_ACCEPT:
        sockit__listener_accept_done(obj, res, more);
        break;
    default:
        break;
    }
}

sockit_loop *sockit_loop_new(const sockit_loop_options *opts)
{
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    if (opts != NULL &&
        sockit__struct_copy(&o, sizeof o, opts, SOCKIT__BASE_LOOP_OPTIONS, "loop_new: options") < 0)
        return NULL;
    sockit_loop *loop = sockit__calloc(1, sizeof *loop);
    if (loop == NULL) {
        sockit__failf(-ENOMEM, "loop_new");
        return NULL;
    }
    loop->pid = getpid();
    if (o.spin_us > 1000000) {
        sockit__failf(-EINVAL, "loop_new: spin_us %u (at most 1000000)", o.spin_us);
        sockit__free(loop);
        return NULL;
    }
    loop->spin_ns = (int64_t)o.spin_us * 1000;
    loop->max_posts = o.max_posts ? o.max_posts : DEFAULT_MAX_POSTS;
    loop->next_gen = 1;
    atomic_init(&loop->stop_asked, false);
    atomic_init(&loop->wake_pending, false);
    atomic_init(&loop->posts_waiting, 0);
    for (int i = 0; i < SOCKIT__NSIG; i++)
        atomic_init(&loop->sig_pending[i], 0);
    int rc = pthread_mutex_init(&loop->post_lock, NULL);
    if (rc != 0) {
        sockit__free(loop);
        sockit__failf(-rc, "loop_new: mutex");
        return NULL;
    }
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wakefd < 0) {
        rc = sockit__failf(-errno, "loop_new: eventfd");
        goto fail_mutex;
    }
    rc = sockit__backend_open(&loop->backend, o.backend);
    if (rc < 0)
        goto fail_wakefd;
    loop->backend.complete = complete;
    loop->backend.complete_ctx = loop;
    rc = loop->backend.ops->watch(&loop->backend, loop->wakefd, SOCKIT__WAKE_TOKEN, 0,
                                  SOCKIT_EVENT_READ);
    if (rc < 0) {
        sockit__failf(rc, "loop_new: watching its wakeup descriptor (%s)", loop->backend.ops->name);
        loop->backend.ops->close(&loop->backend, false);
        goto fail_wakefd;
    }
    loop->now = sockit__now_ns();
    return loop;
fail_wakefd:
    close(loop->wakefd);
fail_mutex:
    pthread_mutex_destroy(&loop->post_lock);
    sockit__free(loop);
    (void)rc;
    return NULL;
}

static void free_closing(sockit_loop *loop)
{
    while (loop->closing != NULL) {
        sockit__watcher *w = loop->closing;
        loop->closing = w->next_closing;
        free_watcher(w);
    }
}

static bool has_work_now(sockit_loop *loop)
{
    return atomic_load(&loop->stop_asked) || loop->nsoon > 0 || loop->late_head != NULL ||
           loop->nsend > 0 || sockit__io_read_ahead_waiting(loop);
}

static bool is_alive(sockit_loop *loop)
{
    return loop->alive > 0 || loop->nsoon > 0 || loop->late_head != NULL ||
           atomic_load(&loop->posts_waiting) > 0 || loop->work_pending > 0 || loop->ops_pending > 0;
}

static void handle_wake(sockit_loop *loop)
{
    loop->woken = false;
    /* Drained first, then the flag cleared, then the queues read. A wake asked after
     * the clear writes again and stays in the counter for the next wait; one asked
     * before it wrote nothing, but its work was queued before it asked, so the
     * reading below sees it. (Clearing before draining would let the drain swallow
     * the write of a wake whose work is queued after the reading: a lost wake.) */
    uint64_t count;
    ssize_t n = read(loop->wakefd, &count, sizeof count);
    (void)n;
    atomic_store(&loop->wake_pending, false);
    sockit__wakeups_run(loop);
    sockit__signals_run(loop);
    sockit__posts_run(loop);
    sockit__work_run_done(loop);
}

/* One iteration; timeout_ns < 0 waits as long as needed. Returns 0 or a code. */
static int iterate(sockit_loop *loop, int64_t timeout_ns)
{
    loop->iteration++;
    loop->now = sockit__now_ns();
    sockit__timers_run(loop);

    /* Sends written since the last wait go with this one (completion backends);
     * one that could not be submitted is listed again and the wait does not sleep. */
    if (loop->nsend > 0)
        sockit__stream_submit_sends(loop);
    int64_t wait = timeout_ns;
    if (has_work_now(loop) || !is_alive(loop)) {
        wait = 0;
    } else {
        int64_t next = sockit__timers_next(loop);
        if (next >= 0 && (wait < 0 || next < wait))
            wait = next;
    }
    loop->time_fresh = false;
    int rc;
    if (loop->spin_ns > 0 && wait != 0) {
        /* Poll without sleeping for up to spin_ns (never past the wait's own end);
         * block for the rest only if nothing came. */
        int64_t start = sockit__now_ns(), spent = 0;
        int64_t budget = wait > 0 && wait < loop->spin_ns ? wait : loop->spin_ns;
        do {
            rc = loop->backend.ops->wait(&loop->backend, 0, wake_ready, loop);
            if (rc != 0 || loop->woken)
                break;
            spent = sockit__now_ns() - start;
        } while (spent < budget);
        if (rc == 0 && !loop->woken)
            rc = loop->backend.ops->wait(&loop->backend,
                                         wait < 0 ? -1 : (wait > spent ? wait - spent : 0),
                                         wake_ready, loop);
    } else {
        rc = loop->backend.ops->wait(&loop->backend, wait, wake_ready, loop);
    }
    if (rc < 0)
        return sockit__failf(rc, "loop: waiting for events (%s)", loop->backend.ops->name);
    loop->now = sockit__now_ns();
    if (loop->woken)
        handle_wake(loop);
    sockit__io_run_read_ahead(loop);
    sockit__soon_run(loop);
    sockit__late_run(loop);
    return 0;
}

static int enter(sockit_loop *loop, const char *op)
{
    if (loop == NULL)
        return sockit__failf(-EINVAL, "%s: no loop", op);
    if (loop->running)
        return sockit__failf(-EBUSY, "%s: the loop is already running", op);
    if (getpid() != loop->pid)
        return sockit__failf(-ECHILD,
                             "%s: the loop belongs to process %ld (this is a forked child)", op,
                             (long)loop->pid);
    loop->running = true;
    return 0;
}

static void leave(sockit_loop *loop)
{
    free_closing(loop);
    loop->running = false;
}

int sockit_loop_run(sockit_loop *loop)
{
    int rc = enter(loop, "loop_run");
    if (rc < 0)
        return rc;
    for (;;) {
        rc = iterate(loop, -1);
        free_closing(loop);
        if (rc < 0 || atomic_exchange(&loop->stop_asked, false) || !is_alive(loop))
            break;
    }
    leave(loop);
    return rc;
}

int sockit_loop_run_once(sockit_loop *loop, double timeout)
{
    if (isnan(timeout))
        return sockit__failf(-EINVAL, "loop_run_once: timeout is NaN");
    int rc = enter(loop, "loop_run_once");
    if (rc < 0)
        return rc;
    int64_t ns = timeout < 0 ? -1 : timeout > 9.0e9 ? INT64_MAX : (int64_t)(timeout * 1e9);
    rc = iterate(loop, ns);
    atomic_store(&loop->stop_asked, false);
    leave(loop);
    if (rc < 0)
        return rc;
    return is_alive(loop) ? 1 : 0;
}

void sockit_loop_stop(sockit_loop *loop)
{
    if (loop == NULL)
        return;
    atomic_store(&loop->stop_asked, true);
    sockit__loop_wake(loop);
}

int sockit_loop_close(sockit_loop *loop)
{
    if (loop == NULL)
        return 0;
    /* A forked child cannot use the watchers (closing one would touch the parent's
     * registrations), so there the loop is freed whatever is open. */
    bool forked = getpid() != loop->pid;
    if (loop->running && !forked)
        return sockit__failf(-EBUSY, "loop_close: the loop is running");
    int *o = loop->open;
    if (!forked && o[SOCKIT__IO] + o[SOCKIT__TIMER] + o[SOCKIT__SIGNAL] + o[SOCKIT__WAKEUP] > 0)
        return sockit__failf(-EBUSY,
                             "loop_close: watchers still open: %d io, %d timer, %d signal, "
                             "%d wakeup (close them first)",
                             o[SOCKIT__IO], o[SOCKIT__TIMER], o[SOCKIT__SIGNAL], o[SOCKIT__WAKEUP]);
    if (!forked && loop->ops_pending > 0)
        return sockit__failf(-EBUSY,
                             "loop_close: %d I/O operations still completing (run the loop "
                             "until it returns)",
                             loop->ops_pending);
    if (!forked && loop->on_close_pending > 0)
        return sockit__failf(-EBUSY,
                             "loop_close: %d streams or endpoints still closing (run the loop "
                             "until it returns)",
                             loop->on_close_pending);
    if (!forked && loop->work_pending > 0)
        return sockit__failf(-EBUSY,
                             "loop_close: %d name lookups still pending (cancel them first)",
                             loop->work_pending);
    sockit__work_forget(loop);
    sockit__signals_forget_loop(loop);
    loop->backend.ops->close(&loop->backend, forked);
    close(loop->wakefd);
    pthread_mutex_destroy(&loop->post_lock);
    sockit__free(loop->slots);
    sockit__free(loop->ra_scratch);
    sockit__free(loop->heap);
    sockit__free(loop->soon);
    sockit__free(loop->posts);
    sockit__free(loop->posts_spare);
    sockit__free(loop->stream_buf);
    sockit__free(loop->filter_buf);
    sockit__stream_buckets_free(loop);
    sockit__datagram_batch_free(loop);
    sockit__free(loop->spare_ext);
    sockit__free(loop->spare_chunk);
    sockit__stream_caches_free(loop);
    sockit__free(loop->send_list);
    sockit__free(loop);
    return 0;
}

double sockit_loop_now(const sockit_loop *loop) { return loop ? (double)loop->now / 1e9 : 0.0; }

void sockit_loop_update_time(sockit_loop *loop)
{
    if (loop != NULL)
        loop->now = sockit__now_ns();
}

const char *sockit_loop_backend(const sockit_loop *loop)
{
    return loop ? loop->backend.ops->name : "none";
}

const char *sockit_loop_backend_fallback(const sockit_loop *loop)
{
    return loop != NULL && loop->backend.fallback[0] != '\0' ? loop->backend.fallback : NULL;
}

const char *sockit_loop_backends(void) { return sockit__backend_names(); }
