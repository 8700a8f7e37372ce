/* SOCKIT_THREADS: a thread per request, as Python's ThreadingMixIn. Threads are
 * joinable, so close can wait for them (block_on_close). A thread whose handler
 * ends moves its own record from the live list to the finished list, and the
 * serving loop joins whatever is on the finished list: reaping costs O(1) per
 * finished thread, however many connections the live threads hold, and nothing
 * grows with the number served. */
#include "socketserver.h"

#include <stdlib.h>

static void unlink_live(sockit_server *srv, sockit__thread *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        srv->live = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    srv->nlive--;
}

static void *thread_main(void *arg)
{
    sockit__thread *t = arg;
    sockit_server *srv = t->server;
    sockit__srv_run_job(srv, t->job, true);
    atomic_fetch_sub(&srv->running, 1);
    sockit__srv_job_finished(srv);
    pthread_mutex_lock(&srv->mu);
    /* Abandoned threads are detached and own their record; listed ones hand it to
     * the joiner, and must not touch it once it is on the finished list. */
    bool owns_record = t->detached;
    if (!owns_record) {
        unlink_live(srv, t);
        t->prev = NULL;
        t->next = srv->finished;
        srv->finished = t;
        if (srv->closing)
            pthread_cond_broadcast(&srv->idle_cv);
    }
    pthread_mutex_unlock(&srv->mu);
    if (owns_record)
        sockit__free(t);
    sockit__srv_unref(srv);
    return NULL;
}

int sockit__srv_thread_dispatch(sockit_server *srv, sockit__job *job)
{
    sockit__thread *t = sockit__calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->server = srv;
    t->job = job;
    atomic_fetch_add(&srv->running, 1);
    pthread_mutex_lock(&srv->mu);
    srv->refs++;
    t->next = srv->live;
    if (srv->live != NULL)
        srv->live->prev = t;
    srv->live = t;
    srv->nlive++;
    /* Handlers run with every signal blocked, so the program's signal handlers run
     * on the threads it made (sockit_server_shutdown works from any of them). */
    pthread_t tid;
    int rc = sockit__thread_create(&tid, false, thread_main, t);
    if (rc == 0) {
        t->tid = tid;
    } else {
        unlink_live(srv, t);
        srv->refs--;
    }
    pthread_mutex_unlock(&srv->mu);
    if (rc != 0) {
        atomic_fetch_sub(&srv->running, 1);
        sockit__free(t);
        return rc;
    }
    return 0;
}

static void join_all(sockit_server *srv, sockit__thread *t)
{
    while (t != NULL) {
        sockit__thread *next = t->next;
        srv->reap_visits++;
        pthread_join(t->tid, NULL);
        sockit__free(t);
        t = next;
    }
}

void sockit__srv_thread_reap(sockit_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    sockit__thread *done = srv->finished;
    srv->finished = NULL;
    pthread_mutex_unlock(&srv->mu);
    join_all(srv, done);
}

bool sockit__srv_thread_wait(sockit_server *srv, int64_t deadline)
{
    pthread_mutex_lock(&srv->mu);
    while (srv->nlive > 0 && sockit__srv_wait_idle(srv, deadline))
        continue;
    bool none = srv->nlive == 0;
    pthread_mutex_unlock(&srv->mu);
    return none;
}

void sockit__srv_thread_abandon(sockit_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    for (sockit__thread *t = srv->live; t != NULL; t = t->next) {
        pthread_detach(t->tid);
        t->detached = true;
    }
    srv->live = NULL;
    srv->nlive = 0;
    sockit__thread *done = srv->finished;
    srv->finished = NULL;
    pthread_mutex_unlock(&srv->mu);
    join_all(srv, done);
}
