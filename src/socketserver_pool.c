/* SOCKIT_POOL: a fixed set of worker threads fed by a bounded queue. When the queue
 * is full the serving loop stops accepting, so load beyond the pool waits in the
 * kernel's backlog instead of in memory. */
#include "socketserver.h"

#include <signal.h>
#include <stdlib.h>

static void *worker_main(void *arg)
{
    sockit_server *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        while (srv->queue_head == NULL && !srv->closing)
            pthread_cond_wait(&srv->cv, &srv->mu);
        sockit__job *job = srv->queue_head;
        if (job != NULL) {
            srv->queue_head = job->queue_next;
            if (srv->queue_head == NULL)
                srv->queue_tail = NULL;
            srv->queued--;
        }
        pthread_mutex_unlock(&srv->mu);
        if (job == NULL)
            break; /* closing, and the queue has drained */
        sockit__srv_run_job(srv, job, true);
        sockit__srv_job_finished(srv);
    }
    sockit__srv_unref(srv);
    return NULL;
}

int sockit__srv_pool_start(sockit_server *srv)
{
    srv->workers = calloc((size_t)srv->cfg.threads, sizeof *srv->workers);
    if (srv->workers == NULL)
        return sockit__fail(-ENOMEM, "sockit_server_new: pool");
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int i = 0; i < srv->cfg.threads && rc == 0; i++) {
        pthread_mutex_lock(&srv->mu);
        srv->refs++;
        pthread_mutex_unlock(&srv->mu);
        rc = pthread_create(&srv->workers[i], NULL, worker_main, srv);
        if (rc == 0) {
            srv->nworkers++;
        } else {
            pthread_mutex_lock(&srv->mu);
            srv->refs--;
            pthread_mutex_unlock(&srv->mu);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        sockit__srv_pool_stop(srv, false);
        return sockit__failf(-rc, "sockit_server_new: starting %d pool threads", srv->cfg.threads);
    }
    return 0;
}

bool sockit__srv_pool_has_room(sockit_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    bool room = srv->queued < srv->cfg.queue;
    pthread_mutex_unlock(&srv->mu);
    return room;
}

int sockit__srv_pool_dispatch(sockit_server *srv, sockit__job *job)
{
    job->queue_next = NULL;
    pthread_mutex_lock(&srv->mu);
    if (srv->queue_tail != NULL)
        srv->queue_tail->queue_next = job;
    else
        srv->queue_head = job;
    srv->queue_tail = job;
    srv->queued++;
    pthread_cond_signal(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

void sockit__srv_pool_stop(sockit_server *srv, bool abandon)
{
    sockit__job *dropped = NULL;
    pthread_mutex_lock(&srv->mu);
    srv->closing = true;
    if (abandon) {
        dropped = srv->queue_head;
        srv->queue_head = srv->queue_tail = NULL;
        srv->queued = 0;
    }
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    /* Requests accepted but never started: their clients read end of stream. */
    while (dropped != NULL) {
        sockit__job *next = dropped->queue_next;
        sockit__srv_track(srv, dropped, false);
        sockit__srv_job_free(dropped);
        sockit__srv_job_finished(srv);
        dropped = next;
    }
    for (int i = 0; i < srv->nworkers; i++) {
        if (abandon)
            pthread_detach(srv->workers[i]);
        else
            pthread_join(srv->workers[i], NULL);
    }
    srv->nworkers = 0;
}
