/* SOCKIT_THREADS: a thread per request, as Python's ThreadingMixIn. Threads are
 * joinable and listed, so close can wait for them (block_on_close) and the serving
 * loop joins finished ones as it goes: nothing grows with the number served. */
#include "socketserver.h"

#include <signal.h>
#include <stdlib.h>

static void *thread_main(void *arg)
{
    sockit__thread *t = arg;
    sockit_server *srv = t->server;
    sockit__srv_run_job(srv, t->job, true);
    sockit__srv_job_finished(srv);
    pthread_mutex_lock(&srv->mu);
    /* Abandoned threads are detached and own their record; listed ones leave it to
     * the joiner, and must not touch it once marked done. */
    bool owns_record = t->detached;
    if (!owns_record)
        t->done = true;
    pthread_mutex_unlock(&srv->mu);
    if (owns_record)
        free(t);
    sockit__srv_unref(srv);
    return NULL;
}

int sockit__srv_thread_dispatch(sockit_server *srv, sockit__job *job)
{
    sockit__thread *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->server = srv;
    t->job = job;
    pthread_mutex_lock(&srv->mu);
    srv->refs++;
    t->next = srv->threads;
    srv->threads = t;
    /* Handlers run with every signal blocked, so the program's signal handlers run
     * on the threads it made (sockit_server_shutdown works from any of them). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t tid;
    int rc = pthread_create(&tid, NULL, thread_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        t->tid = tid;
    else {
        srv->threads = t->next;
        srv->refs--;
    }
    pthread_mutex_unlock(&srv->mu);
    if (rc != 0) {
        free(t);
        return -rc;
    }
    return 0;
}

/* Takes the finished threads (all of them with all) off the list, under the lock. */
static sockit__thread *take(sockit_server *srv, bool all)
{
    sockit__thread *taken = NULL, **link = &srv->threads;
    pthread_mutex_lock(&srv->mu);
    while (*link != NULL) {
        sockit__thread *t = *link;
        if (all || t->done) {
            *link = t->next;
            t->next = taken;
            taken = t;
        } else {
            link = &t->next;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return taken;
}

void sockit__srv_thread_reap(sockit_server *srv, bool wait)
{
    sockit__thread *t = take(srv, wait);
    while (t != NULL) {
        sockit__thread *next = t->next;
        pthread_join(t->tid, NULL);
        free(t);
        t = next;
    }
}

void sockit__srv_thread_abandon(sockit_server *srv)
{
    sockit__thread *done = NULL;
    pthread_mutex_lock(&srv->mu);
    sockit__thread *t = srv->threads;
    srv->threads = NULL;
    while (t != NULL) {
        sockit__thread *next = t->next;
        if (t->done) {
            t->next = done;
            done = t;
        } else {
            pthread_detach(t->tid);
            t->detached = true;
        }
        t = next;
    }
    pthread_mutex_unlock(&srv->mu);
    while (done != NULL) {
        sockit__thread *next = done->next;
        pthread_join(done->tid, NULL);
        free(done);
        done = next;
    }
}
