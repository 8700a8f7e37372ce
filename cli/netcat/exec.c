/* The commands of --exec on the loop. A job is one connection's command: it is
 * done when the command has been reaped and its pump (if any) has ended, and only
 * then is its -m slot given back. SIGCHLD's watcher reaps every child that ended
 * (signals coalesce, so one callback may stand for many), and is started before
 * the first spawn, so an exit that comes at once is not missed. */
#include "exec.h"

#include "accepter.h"
#include "child.h"
#include "netlog.h"
#include "pump.h"

#include <sockit_tls.h>

#include <signal.h>
#include <stdlib.h>
#include <time.h>

/* Seconds to reap the children SIGKILL was sent to, before exiting regardless. */
#define EXEC_REAP 0.3

typedef struct session session;
typedef struct job job;

struct job {
    session *x;
    pid_t pid;   /* 0 once reaped */
    int status;  /* the command's, once reaped */
    pump *pump;  /* NULL when the command has the socket itself, or the pump ended */
    bool failed; /* the pump's network side failed */
    job *prev, *next;
    char name[CLI_PEER_NAME_MAX];
};

struct session {
    const exec_cmd *cmd;
    sockit_loop *loop;
    sockit_signal *sigint, *sigterm, *sigchld;
    sockit_timer *grace; /* stopping: SIGKILL for what is left when it fires */
    sockit_timer *first; /* -k -w: a client must have come by then */
    accepter *acc;       /* -k only */
    double wait;         /* -k -w, for the message */
    bool keep;           /* -k */
    bool stopping;       /* SIGINT or SIGTERM came */
    bool failed;
    job *jobs;
    int status;      /* alone: the exit status to return, -1 before the job ended */
    const char *why; /* why the loop was stopped; NULL while it runs */
};

static void end(session *x, const char *why)
{
    if (x->why == NULL)
        x->why = why;
    sockit_loop_stop(x->loop);
}

/* Unlinks and frees j (its pump already gone); alone, its status is the session's. */
static void job_remove(job *j)
{
    session *x = j->x;
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        x->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    if (!x->keep)
        x->status = j->status == 0 && j->failed ? CLI_FAIL : j->status;
    free(j);
}

/* j may be done: then its slot is free again, and alone the session is over. */
static void job_check(job *j)
{
    session *x = j->x;
    if (j->pid != 0 || j->pump != NULL)
        return;
    job_remove(j);
    if (x->acc != NULL)
        accepter_release(x->acc);
    if (!x->keep)
        end(x, x->stopping ? "signal" : "done");
    else if (x->stopping && x->jobs == NULL)
        end(x, "signal");
}

static void on_pump_done(bool failed, void *user)
{
    job *j = user;
    j->pump = NULL;
    j->failed = failed;
    job_check(j);
}

/* Starts the command for conn (taken). false when it could not (said; conn closed). */
static bool job_start(session *x, sockit *conn, const char *name)
{
    job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        netlog_warn("out of memory for a connection (%s)", name);
        sockit_close(conn);
        return false;
    }
    j->x = x;
    snprintf(j->name, sizeof j->name, "%s", name);
    /* TLS, or bytes a proxy's answer brought along, live in the sockit, not in the
     * descriptor: the command gets a socketpair, and the pump does the rest. */
    bool pumped = sockit_is_tls(conn) || sockit_pending(conn) > 0;
    sockit *pair[2] = {NULL, NULL};
    if (pumped && sockit_socketpair(AF_UNIX, SOCK_STREAM, pair) < 0) {
        netlog_warn("%s (%s)", sockit_errmsg(), name);
        sockit_close(conn);
        free(j);
        return false;
    }
    if (child_start(x->cmd->text, x->cmd->shell, sockit_fileno(pumped ? pair[1] : conn), &j->pid) <
        0) {
        sockit_close(conn);
        sockit_close(pair[0]);
        sockit_close(pair[1]);
        free(j);
        return false;
    }
    j->next = x->jobs;
    if (x->jobs != NULL)
        x->jobs->prev = j;
    x->jobs = j;
    netlog_exec(j->name, x->cmd->text, (long)j->pid);
    if (pumped) {
        sockit_close(pair[1]); /* the command's end is the command's alone */
        /* Out of memory: both ends are closed, and the command reads end of input. */
        j->pump = pump_new(x->loop, conn, pair[0], name, on_pump_done, j);
    } else {
        sockit_close(conn); /* the command holds the connection now */
    }
    return true;
}

static void on_sigchld(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    (void)signum;
    (void)count;
    session *x = user;
    pid_t pid;
    int status;
    while ((status = child_reap(&pid)) >= 0) {
        job *j = x->jobs;
        while (j != NULL && j->pid != pid)
            j = j->next;
        if (j == NULL)
            continue; /* not a command of ours */
        j->pid = 0;
        j->status = status;
        netlog_exec_exit(j->name, (long)pid, status);
        job_check(j);
    }
}

static void on_grace(sockit_timer *t, void *user)
{
    (void)t;
    session *x = user;
    for (job *j = x->jobs; j != NULL; j = j->next)
        if (j->pid != 0)
            child_kill(j->pid, SIGKILL);
    end(x, "signal");
}

/* SIGINT or SIGTERM: no more clients, no more bytes, and every command is asked to
 * end. A second signal does not wait for the grace. */
static void on_stop(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    (void)signum;
    (void)count;
    session *x = user;
    if (x->stopping) {
        on_grace(x->grace, x);
        return;
    }
    x->stopping = true;
    accepter_close(x->acc);
    x->acc = NULL;
    sockit_timer_stop(x->first);
    for (job *j = x->jobs, *next; j != NULL; j = next) {
        next = j->next;
        if (j->pid != 0)
            child_kill(j->pid, SIGTERM);
        pump_close(j->pump);
        j->pump = NULL;
        job_check(j);
    }
    if (x->jobs != NULL)
        sockit_timer_start(x->grace, EXEC_GRACE, 0);
    else
        end(x, "signal");
}

static void on_first_timeout(sockit_timer *t, void *user)
{
    (void)t;
    session *x = user;
    x->failed = true;
    cli_fail("no client within %g s (-w)", x->wait);
    end(x, "timeout");
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* After the loop: the commands still there were sent SIGKILL (the grace ran out)
 * or, after a failure of the loop, are sent it now; each is reaped within one
 * shared EXEC_REAP, so that stopping stays prompt. */
static void reap_rest(session *x)
{
    double until = mono_now() + EXEC_REAP;
    while (x->jobs != NULL) {
        job *j = x->jobs;
        pump_close(j->pump);
        j->pump = NULL;
        if (j->pid != 0) {
            child_kill(j->pid, SIGKILL);
            double left = until - mono_now();
            int status = child_wait(j->pid, left > 0 ? left : 0);
            j->status = status >= 0 ? status : 128 + SIGKILL;
            netlog_exec_exit(j->name, (long)j->pid, j->status);
        }
        job_remove(j);
    }
}

static session *session_new(const exec_cmd *cmd, bool keep)
{
    session *x = calloc(1, sizeof *x);
    if (x == NULL) {
        cli_fail("out of memory");
        return NULL;
    }
    x->cmd = cmd;
    x->keep = keep;
    x->status = -1;
    x->loop = sockit_loop_new(NULL);
    if (x->loop != NULL) {
        x->sigint = sockit_signal_new(x->loop, on_stop, x);
        x->sigterm = sockit_signal_new(x->loop, on_stop, x);
        x->sigchld = sockit_signal_new(x->loop, on_sigchld, x);
        x->grace = sockit_timer_new(x->loop, on_grace, x);
        x->first = sockit_timer_new(x->loop, on_first_timeout, x);
    }
    if (x->loop == NULL || x->sigint == NULL || x->sigterm == NULL || x->sigchld == NULL ||
        x->grace == NULL || x->first == NULL || sockit_signal_start(x->sigint, SIGINT) < 0 ||
        sockit_signal_start(x->sigterm, SIGTERM) < 0 ||
        sockit_signal_start(x->sigchld, SIGCHLD) < 0) {
        cli_fail_lib();
        x->failed = true;
        x->why = "error";
        return x;
    }
    /* Alone, a command that has the socket itself leaves nothing else to wait on. */
    sockit_signal_keepalive(x->sigchld, true);
    return x;
}

static int finish(session *x)
{
    if (x->why == NULL && sockit_loop_run(x->loop) < 0) {
        netlog_warn("%s", sockit_errmsg());
        x->failed = true;
        x->why = "error";
    }
    const char *why = x->why != NULL ? x->why : "done";
    accepter_close(x->acc);
    reap_rest(x);
    netlog_exit(why, 0, 0, -1);
    int status = x->keep || x->status < 0 ? (x->failed ? CLI_FAIL : CLI_OK) : x->status;
    sockit_timer_close(x->grace);
    sockit_timer_close(x->first);
    sockit_signal_close(x->sigint);
    sockit_signal_close(x->sigterm);
    sockit_signal_close(x->sigchld);
    sockit_loop_close(x->loop);
    free(x);
    return status;
}

int exec_one(sockit *conn, const char *peer, const exec_cmd *cmd)
{
    session *x = session_new(cmd, false);
    if (x == NULL) {
        sockit_close(conn);
        return CLI_FAIL;
    }
    if (x->why != NULL) {
        sockit_close(conn);
    } else if (!job_start(x, conn, peer)) {
        x->failed = true;
        x->why = "error";
    }
    return finish(x);
}

static void on_accept(sockit *conn, const sockit_addr *peer, void *user)
{
    session *x = user;
    char name[CLI_PEER_NAME_MAX];
    cli_peer_name(conn, peer, name, sizeof name);
    sockit_timer_stop(x->first);
    netlog_connected(name, true, conn);
    if (!job_start(x, conn, name))
        accepter_release(x->acc);
}

int exec_serve(sockit *listener, const relay_config *cfg, const exec_cmd *cmd)
{
    session *x = session_new(cmd, true);
    if (x == NULL)
        return CLI_FAIL;
    x->wait = cfg->wait;
    if (x->why == NULL) {
        x->acc = accepter_new(x->loop, listener, cfg->max_clients, on_accept, x);
        if (x->acc == NULL) {
            cli_fail("out of memory");
            x->failed = true;
            x->why = "error";
        } else {
            if (cfg->tls != NULL)
                accepter_tls(x->acc, cfg->tls, cfg->tls_timeout);
            accepter_gate(x->acc, cfg->gate);
            if (cfg->wait >= 0)
                sockit_timer_start(x->first, cfg->wait, 0);
        }
    }
    return finish(x);
}
