/* Internal interface between the socketserver's serving loop (socketserver.c) and
 * its parts: running one request (socketserver_request.c), the concurrency modes
 * (socketserver_threads.c, socketserver_pool.c, socketserver_fork.c), the graceful
 * close (socketserver_close.c), the EMFILE shedding and back-off
 * (socketserver_shed.c) and the rate-limited error report (socketserver_report.c).
 * Never installed. */
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
    bool detached; /* abandoned: the thread frees this record itself */
    /* On the live list (both links) until the handler ends, then on the finished
     * list (next only), where the serving loop joins it. */
    struct sockit__thread *next, *prev;
} sockit__thread;

typedef struct sockit__child {
    pid_t pid;
    int pidfd;   /* -1 where pidfd_open is not available */
    int conn_fd; /* the parent's copy of the connection, for close to shut down; or -1 */
} sockit__child;

/* The default error report's budget: at most SOCKIT__LOG_BURST lines a window. */
typedef struct sockit__errlog {
    _Atomic int64_t window; /* index of the current window */
    atomic_int shown;       /* lines printed in it */
    atomic_int suppressed;  /* lines not printed since the last summary */
} sockit__errlog;

/* What the serving process and its children (SOCKIT_PROCESSES) share: a MAP_SHARED
 * page, so a child sees the parent stopping and its error lines count against the
 * same budget. Lock-free atomics only, which work across processes. */
typedef struct sockit__srv_shared {
    atomic_bool stopping; /* shutdown or close was asked */
    sockit__errlog log;
} sockit__srv_shared;

typedef struct sockit__ev_shard sockit__ev_shard;

struct sockit_server {
    sockit *sock; /* the listening socket, or the datagram socket */
    int type;
    sockit_server_config cfg;
    sockit__srv_shared *shared;

    /* sockit_server_shutdown writes wake_fd and sets stop; both are safe in a signal
     * handler. When the serving loop waits for capacity it raises want_slot, and the
     * handler that frees a slot writes slot_fd; otherwise finishing costs no call. */
    int wake_fd;
    int slot_fd;
    atomic_int stop;
    atomic_bool want_slot;
    /* SOCKIT_SEQUENTIAL: the connection being served, whose reading side shutdown
     * shuts; shutting counts shutdowns between reading it and shutting it. */
    atomic_int current_fd;
    atomic_int shutting;

    int reserve_fd;         /* spare descriptor, given up to shed connections on EMFILE */
    int64_t backoff_ns;     /* current accept back-off after a resource error */
    int64_t backoff_until;  /* no accepting before this time */
    bool resource_reported; /* the error of the current back-off streak was reported */
    bool drained;           /* the last accept or receive found nothing: poll first */
    char *dgram_buf;        /* datagram servers: max_datagram bytes */
    sockit *conn;           /* SOCKIT_SEQUENTIAL streams: the one object every
                             * connection is served with (no allocation per accept) */
    struct pollfd *pfd;     /* the serving loop's poll set */
    int pfd_cap;

    atomic_int inhand;  /* requests accepted and not yet finished (max_connections) */
    atomic_int running; /* of those, handlers running (sockit_server_active) */
    atomic_int queued;  /* of those, waiting for a pool worker (sockit_server_waiting) */

    /* SOCKIT_EVENTS (socketserver_events.c): one shard per loop (shard 0 is the
     * serving thread's), the watcher of wake_fd on shard 0, the bound address.
     * Made by the first serve. */
    struct sockit__ev_shard *ev_shards;
    int ev_nshards;
    const char *ev_backend; /* the loops' backend, and why not the default ("": it is) */
    char ev_fallback[160];
    sockit_io *ev_wake;
    sockit_addr bound;

    pthread_mutex_t mu;     /* guards everything below */
    pthread_cond_t cv;      /* the pool's queue changed */
    pthread_cond_t idle_cv; /* a handler finished while closing (monotonic clock) */
    int refs;               /* 1 for the owner + 1 per thread that may touch the server */
    bool closing;
    sockit__job *running_jobs; /* jobs being handled, for close to shut down */
    sockit__thread *live;      /* SOCKIT_THREADS: handlers running */
    sockit__thread *finished;  /* SOCKIT_THREADS: handlers ended, to be joined */
    int nlive;
    unsigned long reap_visits; /* thread records reaping looked at (for the tests) */
    pthread_t *workers;        /* SOCKIT_POOL */
    int nworkers;
    sockit__job *queue_head, *queue_tail;
    sockit__child *children; /* SOCKIT_PROCESSES */
    int nchildren;
};

/* socketserver.c */
/* Drops a reference; the last one frees the server. */
void sockit__srv_unref(sockit_server *srv);

/* socketserver_events.c */
/* Serves in SOCKIT_EVENTS mode until shutdown (once: one loop iteration waiting up
 * to timeout seconds). Returns 0 when stopped, 1 after an iteration (once), or a
 * code. */
int sockit__srv_events_serve(sockit_server *srv, double timeout, bool once);
/* From sockit_server_new: the shards and their sockets (SO_REUSEPORT). 0 or a code. */
int sockit__srv_events_prepare(sockit_server *srv);
/* Frees the shards (from freeing the server). */
void sockit__srv_events_free(sockit_server *srv);
/* Stops watching the listening sockets and closes the shards' own, before close
 * closes the server's. */
void sockit__srv_events_stop_accepting(sockit_server *srv);
/* Closes every stream (draining until grace_end, then aborting; abandon: at once)
 * and frees the loop. */
void sockit__srv_events_close(sockit_server *srv, int64_t grace_end, bool abandon);

/* socketserver_request.c */
/* SOCKIT_SEQUENTIAL: admits and handles job here and now (job may live on the
 * caller's stack, and a datagram in the receive buffer), then closes its
 * connection. */
void sockit__srv_serve_inline(sockit_server *srv, sockit__job *job);
/* The other modes: admits job and hands it to a thread, the pool or a child; takes
 * the job. A failure to hand it over is reported and the client dropped. */
void sockit__srv_dispatch(sockit_server *srv, sockit__job *job);
/* Runs the handler on job and reports its failure. Returns the handler's code. */
int sockit__srv_handle(sockit_server *srv, sockit__job *job);
/* Lists (add) or unlists a job among the running ones that close shuts down.
 * Threads and pool jobs are listed when dispatched. */
void sockit__srv_track(sockit_server *srv, sockit__job *job, bool add);
/* Runs the handler for job, reports its failure, closes the connection and frees
 * the job. Does not touch the counts. track: the job was listed, unlist it before
 * closing. */
void sockit__srv_run_job(sockit_server *srv, sockit__job *job, bool track);
/* A job finished: drops the in-hand count and wakes a loop waiting for capacity. */
void sockit__srv_job_finished(sockit_server *srv);
/* Room for one more request appeared: wakes the serving loop if it waits for it. */
void sockit__srv_slot_freed(sockit_server *srv);
void sockit__srv_job_free(sockit__job *job);
/* Waits on idle_cv (mu held) until woken or deadline; false when it passed. */
bool sockit__srv_wait_idle(sockit_server *srv, int64_t deadline);

/* socketserver_report.c */
/* Reports a failure through handle_error, or prints it within the line budget. */
void sockit__srv_report(sockit_server *srv, sockit_request *req, int code);
/* Prints the summary of the lines the budget held back, if any. */
void sockit__srv_report_flush(sockit_server *srv);

/* socketserver_shed.c */
/* Reopens the spare descriptor if it was given up. */
void sockit__srv_reserve(sockit_server *srv);
/* Out of descriptors (EMFILE/ENFILE): accepts and closes every pending connection
 * with the spare descriptor. True when the backlog was emptied. */
bool sockit__srv_shed(sockit_server *srv);
/* Reports code once per streak and pauses accepting, doubling each time. */
void sockit__srv_back_off(sockit_server *srv, int code);
/* An accept or receive succeeded: the streak is over. */
void sockit__srv_resource_ok(sockit_server *srv);

/* socketserver_close.c: sockit_server_close, and the SOCKIT_SEQUENTIAL shutdown of
 * the connection being served. */
void sockit__srv_shut_current(sockit_server *srv);
/* Shuts down every running connection (SHUT_RDWR) so their handlers wake. */
void sockit__srv_shut_running(sockit_server *srv);

/* socketserver_threads.c: SOCKIT_THREADS */
int sockit__srv_thread_dispatch(sockit_server *srv, sockit__job *job);
/* Joins the threads that finished; costs O(1) per finished thread, whatever the
 * number still running. */
void sockit__srv_thread_reap(sockit_server *srv);
/* Waits until no handler thread runs or deadline passes; true if none runs. */
bool sockit__srv_thread_wait(sockit_server *srv, int64_t deadline);
/* Detaches every thread (abandon_on_close): each keeps a server reference. */
void sockit__srv_thread_abandon(sockit_server *srv);

/* socketserver_pool.c: SOCKIT_POOL */
int sockit__srv_pool_start(sockit_server *srv);
int sockit__srv_pool_dispatch(sockit_server *srv, sockit__job *job);
bool sockit__srv_pool_has_room(sockit_server *srv);
/* Stops the workers: lets them drain the queue and finish until grace_end, then
 * drops what is still queued and shuts the running connections down, and joins
 * them. abandon: drops the queue and detaches them at once. */
void sockit__srv_pool_stop(sockit_server *srv, int64_t grace_end, bool abandon);

/* socketserver_fork.c: SOCKIT_PROCESSES */
int sockit__srv_fork_dispatch(sockit_server *srv, sockit__job *job);
/* Reaps children that ended; with wait, all of them (after SIGKILL when kill). */
void sockit__srv_fork_reap(sockit_server *srv, bool wait, bool kill);
/* Reaps children as they end until none is left or deadline; true if none is. */
bool sockit__srv_fork_wait(sockit_server *srv, int64_t deadline);
/* Shuts down the connection of every child still running. */
void sockit__srv_fork_shut(sockit_server *srv);
/* Adds a pollfd per child pidfd; returns how many. *need_tick is set when some
 * child has no pidfd and must be reaped by polling. */
int sockit__srv_fork_pollfds(sockit_server *srv, struct pollfd *pfd, int max, bool *need_tick);

#endif
