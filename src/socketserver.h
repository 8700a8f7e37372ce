/* Internal interface between the socketserver's serving loop (socketserver.c) and
 * its concurrency modes (socketserver_threads.c, socketserver_pool.c,
 * socketserver_fork.c). Never installed. */
#ifndef SOCKIT_SOCKETSERVER_H
#define SOCKIT_SOCKETSERVER_H

#include "internal.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

/* One request: an accepted connection, or a received datagram. */
typedef struct sockit__job {
    sockit *conn; /* stream servers: the connection, owned by the job */
    sockit_addr peer;
    char *data; /* datagram servers: the datagram, owned by the job (NULL for streams) */
    size_t len;
    struct sockit__job *next, *prev; /* the list of running jobs */
    struct sockit__job *queue_next;  /* the pool's queue */
} sockit__job;

typedef struct sockit__thread {
    pthread_t tid;
    sockit_server *server;
    sockit__job *job;
    bool done;     /* the handler finished: join it */
    bool detached; /* abandoned: the thread frees this record itself */
    struct sockit__thread *next;
} sockit__thread;

typedef struct sockit__child {
    pid_t pid;
    int pidfd; /* -1 where pidfd_open is not available */
} sockit__child;

struct sockit_server {
    sockit *sock; /* the listening socket, or the datagram socket */
    int type;
    sockit_server_config cfg;

    /* sockit_server_shutdown writes wake_fd and sets stop; both are safe in a signal
     * handler. Handlers that finish write slot_fd so a serving loop waiting for
     * capacity notices at once. */
    int wake_fd;
    int slot_fd;
    atomic_int stop;

    int reserve_fd;         /* spare descriptor, given up to shed a connection on EMFILE */
    int64_t backoff_ns;     /* current accept back-off after a resource error */
    int64_t backoff_until;  /* no accepting before this time */
    bool resource_reported; /* the error of the current back-off streak was reported */
    char *dgram_buf;        /* datagram servers: max_datagram bytes */
    struct pollfd *pfd;     /* the serving loop's poll set */
    int pfd_cap;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* the pool's queue changed, or a job finished */
    atomic_int active;  /* requests accepted and not yet finished */
    int refs;           /* 1 for the owner + 1 per thread that may touch the server */
    bool closing;
    sockit__job *running;    /* jobs being handled, for abandon_on_close */
    sockit__thread *threads; /* SOCKIT_THREADS: live and finished-but-unjoined threads */
    pthread_t *workers;      /* SOCKIT_POOL */
    int nworkers;
    sockit__job *queue_head, *queue_tail;
    int queued;
    sockit__child *children; /* SOCKIT_PROCESSES */
    int nchildren;
};

/* socketserver.c */
/* Runs the handler on job and reports its failure. Returns the handler's code. */
int sockit__srv_handle(sockit_server *srv, sockit__job *job);
/* Lists (add) or unlists a job among the running ones that abandon_on_close shuts
 * down. Threads and pool jobs are listed when dispatched. */
void sockit__srv_track(sockit_server *srv, sockit__job *job, bool add);
/* Runs the handler for job, reports its failure, closes the connection and frees
 * the job. Does not touch the active count. track: the job was listed, unlist it
 * before closing. */
void sockit__srv_run_job(sockit_server *srv, sockit__job *job, bool track);
/* A job finished: drops the active count and wakes a loop waiting for capacity. */
void sockit__srv_job_finished(sockit_server *srv);
void sockit__srv_job_free(sockit__job *job);
void sockit__srv_report(sockit_server *srv, sockit_request *req, int code);
/* Drops a reference; the last one frees the server. */
void sockit__srv_unref(sockit_server *srv);

/* socketserver_threads.c: SOCKIT_THREADS */
int sockit__srv_thread_dispatch(sockit_server *srv, sockit__job *job);
/* Joins finished threads; with wait, every thread (they end on their own). */
void sockit__srv_thread_reap(sockit_server *srv, bool wait);
/* Detaches every thread (abandon_on_close): each keeps a server reference. */
void sockit__srv_thread_abandon(sockit_server *srv);

/* socketserver_pool.c: SOCKIT_POOL */
int sockit__srv_pool_start(sockit_server *srv);
int sockit__srv_pool_dispatch(sockit_server *srv, sockit__job *job);
bool sockit__srv_pool_has_room(sockit_server *srv);
/* Stops the workers: after the queue drains, or at once dropping it (abandon). */
void sockit__srv_pool_stop(sockit_server *srv, bool abandon);

/* socketserver_fork.c: SOCKIT_PROCESSES */
int sockit__srv_fork_dispatch(sockit_server *srv, sockit__job *job);
/* Reaps children that ended; with wait, all of them (after SIGKILL when kill). */
void sockit__srv_fork_reap(sockit_server *srv, bool wait, bool kill);
/* Adds a pollfd per child pidfd; returns how many. *need_tick is set when some
 * child has no pidfd and must be reaped by polling. */
int sockit__srv_fork_pollfds(sockit_server *srv, struct pollfd *pfd, int max, bool *need_tick);

#endif
