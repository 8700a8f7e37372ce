/* SOCKIT_POOL: a fixed set of worker threads fed by a bounded queue. When the queue
 * is full the serving loop stops accepting, so load beyond the pool waits in the
 * kernel's backlog instead of in memory. */
#include "socketserver.h"

#include <stdlib.h>

static void *worker_main(void *arg)
{
    sockit_server *srv = arg;
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        /* Just finished a job, or starting: close may be waiting for the pool to
         * go idle. */
        if (srv->closing)
            pthread_cond_broadcast(&srv->idle_cv);
        while (srv->queue_head == NULL && !srv->closing)
            pthread_cond_wait(&srv->cv, &srv->mu);
        sockit__job *job = srv->queue_head;
        if (job != NULL) {
            srv->queue_head = job->queue_next;
            if (srv->queue_head == NULL)
                srv->queue_tail = NULL;
            /* Under the lock, so a reader never sees it neither queued nor running. */
            atomic_fetch_add(&srv->running, 1);
            atomic_fetch_sub(&srv->queued, 1);
        }
        pthread_mutex_unlock(&srv->mu);
        if (job == NULL)
            break; /* closing, and the queue has drained */
        sockit__srv_slot_freed(srv);
        sockit__srv_run_job(srv, job, true);
        atomic_fetch_sub(&srv->running, 1);
        sockit__srv_job_finished(srv);
    }
    sockit__srv_unref(srv);
    return NULL;
}

int sockit__srv_pool_start(sockit_server *srv)
{
    srv->workers = sockit__calloc((size_t)srv->cfg.threads, sizeof *srv->workers);
    if (srv->workers == NULL)
        return sockit__fail(-ENOMEM, "sockit_server_new: pool");
    int rc = 0;
    for (int i = 0; i < srv->cfg.threads && rc == 0; i++) {
        pthread_mutex_lock(&srv->mu);
        srv->refs++;
        pthread_mutex_unlock(&srv->mu);
        rc = sockit__thread_create(&srv->workers[i], false, worker_main, srv);
        if (rc == 0) {
            srv->nworkers++;
        } else {
            pthread_mutex_lock(&srv->mu);
            srv->refs--;
            pthread_mutex_unlock(&srv->mu);
        }
    }
    if (rc != 0) {
        sockit__srv_pool_stop(srv, sockit__now_ns(), false);
        return sockit__failf(rc, "sockit_server_new: starting %d pool threads", srv->cfg.threads);
    }
    return 0;
}

bool sockit__srv_pool_has_room(sockit_server *srv)
{
    return atomic_load(&srv->queued) < srv->cfg.queue;
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
    atomic_fetch_add(&srv->queued, 1);
    pthread_cond_signal(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

/* Takes the queue, whose requests will never start, under the lock. */
static sockit__job *take_queue(sockit_server *srv)
{
    sockit__job *q = srv->queue_head;
    srv->queue_head = srv->queue_tail = NULL;
    atomic_store(&srv->queued, 0);
    return q;
}

/* Requests accepted but never started: their clients read end of stream. */
static void drop(sockit_server *srv, sockit__job *dropped)
{
    while (dropped != NULL) {
        sockit__job *next = dropped->queue_next;
        sockit__srv_track(srv, dropped, false);
        sockit__srv_job_free(dropped);
        sockit__srv_job_finished(srv);
        dropped = next;
    }
}

void sockit__srv_pool_stop(sockit_server *srv, int64_t grace_end, bool abandon)
{
    pthread_mutex_lock(&srv->mu);
    srv->closing = true;
    pthread_cond_broadcast(&srv->cv);
    /* Workers drain the queue and finish, until the grace period is over. */
    bool busy = true;
    while (!abandon && (busy = srv->queue_head != NULL || atomic_load(&srv->running) > 0) &&
           sockit__srv_wait_idle(srv, grace_end))
        continue;
    sockit__job *dropped = abandon || busy ? take_queue(srv) : NULL;
    pthread_mutex_unlock(&srv->mu);
    drop(srv, dropped);
    if (abandon || busy)
        sockit__srv_shut_running(srv);
    for (int i = 0; i < srv->nworkers; i++) {
        if (abandon)
            pthread_detach(srv->workers[i]);
        else
            pthread_join(srv->workers[i], NULL);
    }
    srv->nworkers = 0;
}
