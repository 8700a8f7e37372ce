/* Signal watchers. Signals belong to the process, so this is the one place with
 * process-wide state: the list of loops that watch any signal, how many watchers
 * each signal has across all loops, and the dispositions to restore. sockit's
 * handler counts the signal in every loop that watches it and wakes those loops;
 * the callbacks then run in each loop's own thread.
 *
 * The list is guarded by a spinlock that the handler takes too. Code outside the
 * handler blocks every signal in its thread while it holds the lock, so the handler
 * can never interrupt the holder in the same thread and spin forever; a handler
 * running in another thread waits for a critical section of a few instructions. */
#include "loop_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static atomic_flag registry_lock = ATOMIC_FLAG_INIT;
static sockit_loop *registry_loops;         /* linked through sig_next */
static int registry_watchers[SOCKIT__NSIG]; /* started watchers, all loops */
static struct sigaction registry_old[SOCKIT__NSIG];

static void lock_registry(sigset_t *saved)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, saved);
    while (atomic_flag_test_and_set_explicit(&registry_lock, memory_order_acquire))
        continue;
}

static void unlock_registry(const sigset_t *saved)
{
    atomic_flag_clear_explicit(&registry_lock, memory_order_release);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static void on_signal(int signum)
{
    int saved_errno = errno;
    while (atomic_flag_test_and_set_explicit(&registry_lock, memory_order_acquire))
        continue;
    for (sockit_loop *loop = registry_loops; loop != NULL; loop = loop->sig_next) {
        if (loop->sig_watchers[signum] > 0) {
            atomic_fetch_add(&loop->sig_pending[signum], 1);
            sockit__loop_wake(loop);
        }
    }
    atomic_flag_clear_explicit(&registry_lock, memory_order_release);
    errno = saved_errno;
}

static bool watchable(int signum)
{
    switch (signum) {
    case SIGKILL:
    case SIGSTOP:
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
        return false;
    default:
        return signum > 0 && signum < SOCKIT__NSIG;
    }
}

static bool registered(const sockit_loop *loop)
{
    for (sockit_loop *l = registry_loops; l != NULL; l = l->sig_next)
        if (l == loop)
            return true;
    return false;
}

/* Under the lock: counts one more (delta 1) or one fewer (-1) watcher of signum in
 * loop, installing or restoring the process's handler at the first and last. */
static int count_watcher(sockit_loop *loop, int signum, int delta)
{
    if (delta > 0 && registry_watchers[signum] == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigfillset(&sa.sa_mask);
        /* SA_RESTART: the program's own blocking calls go on undisturbed. */
        sa.sa_flags = SA_RESTART;
        if (sigaction(signum, &sa, &registry_old[signum]) < 0)
            return -errno;
    }
    registry_watchers[signum] += delta;
    loop->sig_watchers[signum] += delta;
    if (delta < 0 && registry_watchers[signum] == 0)
        sigaction(signum, &registry_old[signum], NULL);
    if (delta > 0 && !registered(loop)) {
        loop->sig_next = registry_loops;
        registry_loops = loop;
    }
    return 0;
}

sockit_signal *sockit_signal_new(sockit_loop *loop, sockit_signal_fn cb, void *user)
{
    if (loop == NULL || cb == NULL) {
        sockit__failf(-EINVAL, "signal_new: %s", loop == NULL ? "no loop" : "no callback");
        return NULL;
    }
    sockit_signal *w = sockit__calloc(1, sizeof *w);
    if (w == NULL) {
        sockit__failf(-ENOMEM, "signal_new");
        return NULL;
    }
    sockit__watcher_init(&w->base, loop, SOCKIT__SIGNAL, user, false);
    w->cb = cb;
    return w;
}

int sockit_signal_start(sockit_signal *w, int signum)
{
    if (w == NULL || w->base.closing)
        return sockit__failf(-EINVAL, "signal_start: %s", w ? "watcher is closed" : "no watcher");
    if (!watchable(signum))
        return sockit__failf(-EINVAL, "signal_start: signal %d cannot be watched", signum);
    if (w->signum == signum)
        return 0;
    sockit_signal_stop(w);
    sockit_loop *loop = w->base.loop;
    sigset_t saved;
    lock_registry(&saved);
    int rc = count_watcher(loop, signum, 1);
    unlock_registry(&saved);
    if (rc < 0)
        return sockit__failf(rc, "signal_start: installing a handler for signal %d", signum);
    w->signum = signum;
    w->prev = NULL;
    w->next = loop->signals;
    if (loop->signals != NULL)
        loop->signals->prev = w;
    loop->signals = w;
    sockit__watcher_set_active(&w->base, true);
    return 0;
}

int sockit_signal_stop(sockit_signal *w)
{
    if (w == NULL)
        return sockit__failf(-EINVAL, "signal_stop: no watcher");
    if (w->signum == 0)
        return 0;
    sockit_loop *loop = w->base.loop;
    sigset_t saved;
    lock_registry(&saved);
    count_watcher(loop, w->signum, -1);
    unlock_registry(&saved);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        loop->signals = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->signum = 0;
    sockit__watcher_set_active(&w->base, false);
    return 0;
}

void sockit_signal_keepalive(sockit_signal *w, bool on)
{
    if (w != NULL)
        sockit__watcher_set_keepalive(&w->base, on);
}

void sockit_signal_close(sockit_signal *w)
{
    if (w == NULL || w->base.closing)
        return;
    sockit_signal_stop(w);
    sockit__watcher_release(&w->base);
}

void sockit__signal_free(sockit_signal *w) { sockit__free(w); }

void sockit__signals_run(sockit_loop *loop)
{
    for (int signum = 1; signum < SOCKIT__NSIG; signum++) {
        if (loop->sig_watchers[signum] == 0)
            continue;
        unsigned count = atomic_exchange(&loop->sig_pending[signum], 0);
        if (count == 0)
            continue;
        /* A callback may stop or close any watcher, the next one included: a stopped
         * watcher keeps its links and its memory until the end of the iteration, so
         * the walk stays on valid watchers and skips stopped ones by their signum. */
        for (sockit_signal *w = loop->signals; w != NULL;) {
            sockit_signal *next = w->next;
            if (w->signum == signum && !w->base.closing)
                w->cb(w, signum, (int)count, w->base.user);
            w = next;
        }
    }
}

void sockit__signals_forget_loop(sockit_loop *loop)
{
    sigset_t saved;
    lock_registry(&saved);
    for (int signum = 1; signum < SOCKIT__NSIG; signum++)
        while (loop->sig_watchers[signum] > 0)
            count_watcher(loop, signum, -1);
    for (sockit_loop **p = &registry_loops; *p != NULL; p = &(*p)->sig_next) {
        if (*p == loop) {
            *p = loop->sig_next;
            break;
        }
    }
    unlock_registry(&saved);
}
