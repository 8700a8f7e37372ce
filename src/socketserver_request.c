/* Running one request: admitting it (verify_request, the idle timeout), handing it
 * to the concurrency mode or serving it inline (SOCKIT_SEQUENTIAL), running the
 * handler, and the bookkeeping when it ends (the running list close shuts down, the
 * in-hand count, the "slot freed" wakeup). The serving loop in socketserver.c calls
 * sockit__srv_serve_inline or sockit__srv_dispatch once per accepted connection or
 * received datagram. */
#include "socketserver.h"

#include "sockit_tls.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

void sockit__srv_job_free(sockit__job *job)
{
    if (job == NULL)
        return;
    sockit_close(job->conn);
    sockit__free(job->data);
    sockit__free(job);
}

void sockit__srv_track(sockit_server *srv, sockit__job *job, bool add)
{
    pthread_mutex_lock(&srv->mu);
    if (add) {
        job->prev = NULL;
        job->next = srv->running_jobs;
        if (srv->running_jobs != NULL)
            srv->running_jobs->prev = job;
        srv->running_jobs = job;
    } else {
        if (job->prev != NULL)
            job->prev->next = job->next;
        else
            srv->running_jobs = job->next;
        if (job->next != NULL)
            job->next->prev = job->prev;
    }
    pthread_mutex_unlock(&srv->mu);
}

/* A TLS server's handshake, here in the handler's thread so that a slow client
 * holds only its own; then the connection is back in the idle timeout's mode. */
static int tls_accept(sockit_server *srv, sockit *conn)
{
    double mode = sockit_gettimeout(conn);
    int rc = sockit_settimeout(conn, srv->cfg.tls_handshake_timeout);
    if (rc == 0)
        rc = sockit_tls_wrap(conn, srv->cfg.tls, NULL);
    if (rc == 0)
        rc = sockit_settimeout(conn, mode);
    return rc;
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
    if (srv->cfg.tls != NULL && job->conn != NULL) {
        int rc = tls_accept(srv, job->conn);
        if (rc < 0) {
            sockit__srv_report(srv, &req, rc);
            return rc;
        }
    }
    int rc = srv->cfg.handler(&req);
    if (rc < 0)
        sockit__srv_report(srv, &req, rc);
    return rc;
}

void sockit__srv_run_job(sockit_server *srv, sockit__job *job, bool track)
{
    sockit__srv_handle(srv, job);
    /* Unlisted before the close, so close never shuts down a descriptor
     * number that a close here already gave back to the system. */
    if (track)
        sockit__srv_track(srv, job, false);
    sockit__srv_job_free(job);
}

void sockit__srv_slot_freed(sockit_server *srv)
{
    /* Sequentially consistent with the loop raising want_slot and then looking at
     * the counts again: either it sees the room, or this sees it waiting. */
    if (!atomic_exchange(&srv->want_slot, false))
        return;
    uint64_t one = 1;
    ssize_t rc = write(srv->slot_fd, &one, sizeof one);
    (void)rc; /* a full counter already means "look again" */
}

void sockit__srv_job_finished(sockit_server *srv)
{
    atomic_fetch_sub(&srv->inhand, 1);
    sockit__srv_slot_freed(srv);
}

bool sockit__srv_wait_idle(sockit_server *srv, int64_t deadline)
{
    if (deadline == SOCKIT__NEVER) {
        pthread_cond_wait(&srv->idle_cv, &srv->mu);
        return true;
    }
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000LL),
                          .tv_nsec = (long)(deadline % 1000000000LL)};
    return pthread_cond_timedwait(&srv->idle_cv, &srv->mu, &ts) == 0;
}

/* verify_request, then the idle timeout: what every request goes through before a
 * handler runs. False when the client was rejected (the caller drops it). */
static bool admit(sockit_server *srv, sockit__job *job)
{
    const sockit_server_config *c = &srv->cfg;
    if (c->verify_request != NULL && !c->verify_request(srv, &job->peer, c->user))
        return false;
    if (job->conn != NULL && c->idle_timeout > 0)
        sockit_settimeout(job->conn, c->idle_timeout);
    return true;
}

/* SOCKIT_SEQUENTIAL: the request is handled here and now, so the job lives on the
 * caller's stack and a datagram stays in the receive buffer: nothing is allocated
 * or copied per request. Closes the connection, if any. */
void sockit__srv_serve_inline(sockit_server *srv, sockit__job *job)
{
    if (admit(srv, job)) {
        atomic_fetch_add(&srv->inhand, 1);
        atomic_fetch_add(&srv->running, 1);
        if (job->conn != NULL)
            atomic_store(&srv->current_fd, sockit_fileno(job->conn));
        sockit__srv_handle(srv, job);
        /* Forgotten before the close, and not closed while a shutdown may still be
         * shutting it: the number could be another socket's by then. */
        atomic_store(&srv->current_fd, -1);
        while (atomic_load(&srv->shutting) > 0)
            continue;
        atomic_fetch_sub(&srv->running, 1);
        atomic_fetch_sub(&srv->inhand, 1);
    }
    if (job->conn != NULL)
        sockit__unwrap(job->conn);
}

/* Hands a job to the threads, the pool or a child (never SOCKIT_SEQUENTIAL, which
 * serves inline). Takes the job. */
void sockit__srv_dispatch(sockit_server *srv, sockit__job *job)
{
    const sockit_server_config *c = &srv->cfg;
    if (!admit(srv, job)) {
        sockit__srv_job_free(job);
        return;
    }
    atomic_fetch_add(&srv->inhand, 1);
    int rc = 0;
    switch (c->mode) {
    case SOCKIT_SEQUENTIAL:
    case SOCKIT_EVENTS: /* neither dispatches: served inline, or by the loop */
        break;
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
}
