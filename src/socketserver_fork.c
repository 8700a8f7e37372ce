/* SOCKIT_PROCESSES: a child process per request, at most max_children alive, as
 * Python's ForkingMixIn. Children are watched through pidfds, so the serving loop
 * sleeps in poll until a child ends or a client comes: no SIGCHLD handler, no
 * polling interval. */
#include "socketserver.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* pidfd_open(2), Linux 5.3+. Without it children are reaped on a timer. */
static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

int sockit__srv_fork_dispatch(sockit_server *srv, sockit__job *job)
{
    /* Output still buffered in this process would otherwise be written again by
     * every child. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* The child serves this one request and leaves with _exit: no atexit
         * handlers, no locks; only what the handler printed is flushed. It lets go of
         * the listener at once, so closing the server frees the port even while
         * children still run. */
        if (srv->type == SOCK_STREAM)
            close(sockit_fileno(srv->sock));
        /* Nor may it hold its siblings' connections open past their own end. */
        for (int i = 0; i < srv->nchildren; i++)
            if (srv->children[i].conn_fd >= 0)
                close(srv->children[i].conn_fd);
        int rc = sockit__srv_handle(srv, job);
        /* The parent still holds the connection until it reaps this child: the
         * shutdown ends it for the client now, as this process's exit would have. */
        if (job->conn != NULL)
            shutdown(sockit_fileno(job->conn), SHUT_RDWR);
        fflush(NULL);
        _exit(rc < 0 ? 1 : 0);
    }
    sockit__child *c = &srv->children[srv->nchildren++];
    c->pid = pid;
    c->pidfd = open_pidfd(pid);
    /* The parent keeps its copy of the connection, so close can shut it down and
     * wake a child blocked on an idle client; max_children bounds what it holds. */
    c->conn_fd = job->conn != NULL ? sockit_detach(job->conn) : -1;
    job->conn = NULL;
    sockit__srv_job_free(job);
    atomic_fetch_add(&srv->running, 1);
    return 0;
}

void sockit__srv_fork_reap(sockit_server *srv, bool wait, bool kill_them)
{
    for (int i = 0; i < srv->nchildren;) {
        sockit__child *c = &srv->children[i];
        /* SIGKILL, not SIGTERM: a child inherits the program's handlers, and one that
         * catches SIGTERM (to call sockit_server_shutdown, say) would outlive it. */
        if (kill_them)
            kill(c->pid, SIGKILL);
        int status;
        pid_t r;
        do
            r = waitpid(c->pid, &status, wait ? 0 : WNOHANG);
        while (r < 0 && errno == EINTR);
        /* r == 0: still running. r < 0 (ECHILD): someone else reaped it; either way
         * a finished child leaves the table. */
        if (r == 0) {
            i++;
            continue;
        }
        if (c->pidfd >= 0)
            close(c->pidfd);
        if (c->conn_fd >= 0)
            close(c->conn_fd);
        srv->children[i] = srv->children[--srv->nchildren];
        atomic_fetch_sub(&srv->running, 1);
        sockit__srv_job_finished(srv);
    }
}

int sockit__srv_fork_pollfds(sockit_server *srv, struct pollfd *pfd, int max, bool *need_tick)
{
    int n = 0;
    for (int i = 0; i < srv->nchildren; i++) {
        if (srv->children[i].pidfd < 0) {
            *need_tick = true;
            continue;
        }
        if (n < max)
            pfd[n++] = (struct pollfd){.fd = srv->children[i].pidfd, .events = POLLIN};
    }
    return n;
}

bool sockit__srv_fork_wait(sockit_server *srv, int64_t deadline)
{
    for (;;) {
        sockit__srv_fork_reap(srv, false, false);
        if (srv->nchildren == 0)
            return true;
        if (sockit__now_ns() >= deadline)
            return false;
        bool tick = false;
        int n = sockit__srv_fork_pollfds(srv, srv->pfd, srv->pfd_cap, &tick);
        int ms = sockit__remaining_ms(deadline);
        if (tick && (ms < 0 || ms > 10))
            ms = 10;
        /* EINTR: a signal; look again. */
        sockit__sys_poll(srv->pfd, (nfds_t)n, ms);
    }
}

void sockit__srv_fork_shut(sockit_server *srv)
{
    for (int i = 0; i < srv->nchildren; i++)
        if (srv->children[i].conn_fd >= 0)
            shutdown(srv->children[i].conn_fd, SHUT_RDWR);
}
