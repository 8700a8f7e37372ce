/* The work pool: a few threads shared by every loop of the process, for calls that
 * cannot be made non-blocking (getaddrinfo). Threads start when work is queued and
 * none is idle, up to SOCKIT__WORK_THREADS, and exit when the queue is empty, so an
 * idle process has none. One lock guards the queue, every work's state and every
 * loop's list of finished work; a thread wakes a loop while holding it, which is
 * what lets loop_close (which takes it too) free the loop safely. */
#include "loop_internal.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

/* As libuv's default pool: enough for lookups to overlap, few enough that a burst
 * of names does not become a burst of threads. */
#define SOCKIT__WORK_THREADS 4

enum { WORK_QUEUED = 1, WORK_RUNNING, WORK_FINISHED };

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static sockit__work *queue_head, *queue_tail;
static int threads, idle, queued;

/* Takes the next queued work, waiting a little for one. Under the lock. */
static sockit__work *next_work(void)
{
    for (int waits = 0; queue_head == NULL; waits++) {
        if (waits > 0)
            return NULL;
        /* A short linger lets a burst of lookups reuse a thread instead of starting
         * one each, and still leaves no thread behind in an idle process. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        idle++;
        pthread_cond_timedwait(&pool_cv, &pool_lock, &until);
        idle--;
    }
    sockit__work *w = queue_head;
    queued--;
    queue_head = w->next;
    if (queue_head == NULL)
        queue_tail = NULL;
    w->next = NULL;
    return w;
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool_lock);
    for (sockit__work *w; (w = next_work()) != NULL;) {
        if (w->abandoned) {
            pthread_mutex_unlock(&pool_lock);
            w->drop(w);
            pthread_mutex_lock(&pool_lock);
            continue;
        }
        w->state = WORK_RUNNING;
        pthread_mutex_unlock(&pool_lock);
        w->run(w);
        pthread_mutex_lock(&pool_lock);
        if (w->abandoned) {
            pthread_mutex_unlock(&pool_lock);
            w->drop(w);
            pthread_mutex_lock(&pool_lock);
            continue;
        }
        w->state = WORK_FINISHED;
        sockit_loop *loop = w->loop;
        w->next = loop->work_done;
        loop->work_done = w;
        /* Under the lock: the loop cannot be closed (and freed) before this returns,
         * since its close takes the lock. */
        sockit__loop_wake(loop);
    }
    threads--;
    pthread_mutex_unlock(&pool_lock);
    return NULL;
}

/* Under the lock. */
static int start_thread(void)
{
    int rc = sockit__thread_create(NULL, true, worker_main, NULL);
    if (rc == 0)
        threads++;
    return rc;
}

/* A forked child has only the thread that forked: the pool's threads, its queue and
 * maybe its lock stayed in the parent. The child starts with an empty pool (work
 * queued in the parent is the parent's). */
static void child_after_fork(void)
{
    pthread_mutex_init(&pool_lock, NULL);
    pthread_cond_init(&pool_cv, NULL);
    queue_head = queue_tail = NULL;
    threads = idle = queued = 0;
}

static void register_fork_handler(void) { pthread_atfork(NULL, NULL, child_after_fork); }

int sockit__work_submit(sockit_loop *loop, sockit__work *w)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_handler);
    w->loop = loop;
    w->next = NULL;
    w->abandoned = false;
    w->state = WORK_QUEUED;
    pthread_mutex_lock(&pool_lock);
    int rc = 0;
    /* A thread more unless the idle ones can take everything queued, this too: a
     * burst must not line up behind one lingering thread. */
    if (idle <= queued && threads < SOCKIT__WORK_THREADS) {
        rc = start_thread();
        /* Another thread will get to it; only with none at all is it an error. */
        if (rc < 0 && threads > 0)
            rc = 0;
    }
    if (rc == 0) {
        if (queue_tail != NULL)
            queue_tail->next = w;
        else
            queue_head = w;
        queue_tail = w;
        queued++;
        pthread_cond_signal(&pool_cv);
    }
    pthread_mutex_unlock(&pool_lock);
    if (rc == 0)
        loop->work_pending++;
    return rc;
}

void sockit__work_abandon(sockit__work *w)
{
    sockit_loop *loop = w->loop;
    pthread_mutex_lock(&pool_lock);
    w->abandoned = true;
    pthread_mutex_unlock(&pool_lock);
    /* A finished work on the loop's list is dropped there (run_done or forget). */
    loop->work_pending--;
}

/* Takes the loop's finished list, oldest first. */
static sockit__work *take_done(sockit_loop *loop)
{
    pthread_mutex_lock(&pool_lock);
    sockit__work *list = loop->work_done;
    loop->work_done = NULL;
    pthread_mutex_unlock(&pool_lock);
    sockit__work *rev = NULL;
    while (list != NULL) {
        sockit__work *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    return rev;
}

void sockit__work_run_done(sockit_loop *loop)
{
    for (sockit__work *w = take_done(loop); w != NULL;) {
        sockit__work *next = w->next;
        if (w->abandoned) {
            w->drop(w);
        } else {
            loop->work_pending--;
            w->after(w);
        }
        w = next;
    }
}

void sockit__work_forget(sockit_loop *loop)
{
    for (sockit__work *w = take_done(loop); w != NULL;) {
        sockit__work *next = w->next;
        w->drop(w);
        w = next;
    }
}
