/* Stopping: sockit_server_close with its grace period, and the SOCKIT_SEQUENTIAL
 * shutdown of the request being served.
 *
 * close shuts the listener first, raises the stopping flag handlers can ask about,
 * and gives the running handlers close_grace seconds to end by themselves. Then it
 * shuts down the connections still open, which wakes a handler blocked on an idle
 * client (its read returns end of stream, its write fails), and joins them: the
 * graceful close never waits forever on a client that says nothing. */
#include "socketserver.h"

#include <sys/socket.h>

void sockit__srv_shut_current(sockit_server *srv)
{
    /* Async-signal-safe: atomics and shutdown(2). The serving thread does not close
     * the descriptor while shutting is raised, so the number is still this
     * connection's. Only the reading side: the handler reads end of stream and can
     * still send its reply. */
    atomic_fetch_add(&srv->shutting, 1);
    int fd = atomic_load(&srv->current_fd);
    if (fd >= 0)
        shutdown(fd, SHUT_RD);
    atomic_fetch_sub(&srv->shutting, 1);
}

void sockit__srv_shut_running(sockit_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    for (sockit__job *j = srv->running_jobs; j != NULL; j = j->next)
        if (j->conn != NULL)
            shutdown(sockit_fileno(j->conn), SHUT_RDWR);
    pthread_mutex_unlock(&srv->mu);
}

static int64_t grace_deadline(const sockit_server *srv)
{
    return srv->cfg.close_grace < 0 ? sockit__now_ns() : sockit__deadline(srv->cfg.close_grace);
}

int sockit_server_close(sockit_server *srv)
{
    if (srv == NULL)
        return 0;
    bool abandon = srv->cfg.abandon_on_close;
    atomic_store(&srv->shared->stopping, true);
    pthread_mutex_lock(&srv->mu);
    srv->closing = true;
    pthread_mutex_unlock(&srv->mu);
    /* A stream listener goes first, so no client waits in a backlog nobody serves;
     * a datagram socket stays until the last handler that may reply with it ends. */
    if (srv->type == SOCK_STREAM) {
        if (srv->cfg.mode == SOCKIT_EVENTS)
            sockit__srv_events_stop_accepting(srv);
        sockit_close(srv->sock);
        srv->sock = NULL;
    }
    int64_t grace_end = abandon ? sockit__now_ns() : grace_deadline(srv);
    switch (srv->cfg.mode) {
    case SOCKIT_SEQUENTIAL:
        break;
    case SOCKIT_EVENTS:
        sockit__srv_events_close(srv, grace_end, abandon);
        break;
    case SOCKIT_THREADS:
        if (abandon) {
            sockit__srv_shut_running(srv);
            sockit__srv_thread_abandon(srv);
            break;
        }
        if (!sockit__srv_thread_wait(srv, grace_end)) {
            sockit__srv_shut_running(srv);
            sockit__srv_thread_wait(srv, SOCKIT__NEVER);
        }
        sockit__srv_thread_reap(srv);
        break;
    case SOCKIT_POOL:
        sockit__srv_pool_stop(srv, grace_end, abandon);
        break;
    case SOCKIT_PROCESSES:
        if (!abandon && !sockit__srv_fork_wait(srv, grace_end)) {
            /* A child that does not end once its connection is gone (it computes,
             * or waits on something else) gets one more grace period. */
            sockit__srv_fork_shut(srv);
            sockit__srv_fork_wait(srv, grace_deadline(srv));
        }
        sockit__srv_fork_reap(srv, true, true);
        break;
    }
    sockit__srv_report_flush(srv);
    sockit__srv_unref(srv);
    return 0;
}
