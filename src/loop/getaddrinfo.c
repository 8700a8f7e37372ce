/* sockit_loop_getaddrinfo: name resolution whose result comes back to the loop.
 *
 * A numeric host (or none) is resolved at once, in the caller's thread; a name goes
 * to the work pool (work.c). Each lookup has one timer, always started: it fires at
 * the deadline, and is moved to "now" whenever the result is to be delivered from
 * the loop rather than from where it became known (a numeric result, a cancel).
 * Restarting a timer that is already scheduled allocates nothing, so a cancel can
 * always be honoured. */
#include "loop_internal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* What the pool's thread works on: kept apart from the loop's side, so an abandoned
 * lookup frees only this when getaddrinfo finally returns. */
typedef struct resolve_job {
    sockit__work work;
    sockit_resolve *r; /* NULL once abandoned (read on the loop's thread only) */
    char *host;
    char service[32];
    struct addrinfo hints;
    ssize_t n; /* the count or a code */
    sockit_addrinfo *ai;
} resolve_job;

struct sockit_resolve {
    sockit_loop *loop;
    sockit_resolve_fn done;
    void *user;
    resolve_job *job; /* while the pool has it */
    sockit_timer *timer;
    ssize_t n; /* the result to deliver: the count or a code */
    sockit_addrinfo *ai;
    bool delivering; /* inside done: a cancel there has nothing left to do */
    char where[SOCKIT_ADDRSTRLEN + 40];
};

static void job_run(sockit__work *w)
{
    resolve_job *job = (resolve_job *)w;
    job->n = sockit__resolve_all(job->host, job->service, &job->hints, &job->ai);
}

static void job_free(resolve_job *job)
{
    sockit__free(job->ai);
    sockit__free(job->host);
    sockit__free(job);
}

static void job_drop(sockit__work *w) { job_free((resolve_job *)w); }

static void resolve_free(sockit_resolve *r)
{
    sockit_timer_close(r->timer);
    sockit__free(r->ai);
    sockit__free(r);
}

static void deliver(sockit_resolve *r)
{
    ssize_t n = r->n;
    if (n < 0 && n != SOCKIT_ETIMEOUT)
        sockit__failf((int)n, "getaddrinfo %s", r->where);
    else if (n == SOCKIT_ETIMEOUT)
        sockit__failf((int)n, "getaddrinfo %s: no answer before the deadline", r->where);
    r->delivering = true;
    r->done(r, n < 0 ? (int)n : 0, n > 0 ? r->ai : NULL, n > 0 ? (size_t)n : 0, r->user);
    resolve_free(r);
}

/* Leaves the result to the loop's next timer phase. */
static void deliver_soon(sockit_resolve *r, ssize_t n)
{
    r->n = n;
    sockit_timer_start(r->timer, 0, 0);
}

static void give_up_job(sockit_resolve *r)
{
    if (r->job != NULL) {
        r->job->r = NULL;
        sockit__work_abandon(&r->job->work);
        r->job = NULL;
    }
}

static void job_after(sockit__work *w)
{
    resolve_job *job = (resolve_job *)w;
    sockit_resolve *r = job->r;
    r->job = NULL;
    r->n = job->n;
    r->ai = job->ai;
    job->ai = NULL;
    job_free(job);
    deliver(r);
}

static void timer_fired(sockit_timer *t, void *arg)
{
    (void)t;
    sockit_resolve *r = arg;
    if (r->job != NULL) {
        give_up_job(r);
        r->n = SOCKIT_ETIMEOUT;
    }
    deliver(r);
}

static int start_job(sockit_resolve *r, const char *host, const char *service,
                     const struct addrinfo *hints)
{
    resolve_job *job = sockit__calloc(1, sizeof *job);
    if (job == NULL || (job->host = strdup(host)) == NULL) {
        sockit__free(job);
        return -ENOMEM;
    }
    snprintf(job->service, sizeof job->service, "%s", service);
    job->hints = *hints;
    job->r = r;
    job->work.run = job_run;
    job->work.after = job_after;
    job->work.drop = job_drop;
    int rc = sockit__work_submit(r->loop, &job->work);
    if (rc < 0) {
        job_free(job);
        return rc;
    }
    r->job = job;
    return 0;
}

sockit_resolve *sockit__resolve_start(sockit_loop *loop, const char *host, const char *port,
                                      int family, int type, int flags, int64_t deadline,
                                      sockit_resolve_fn done, void *user)
{
    sockit_resolve *r = sockit__calloc(1, sizeof *r);
    if (r == NULL) {
        sockit__failf(-ENOMEM, "getaddrinfo");
        return NULL;
    }
    r->loop = loop;
    r->done = done;
    r->user = user;
    sockit__join_hostport(r->where, sizeof r->where, host, port);
    r->timer = sockit_timer_new(loop, timer_fired, r);
    if (r->timer == NULL) {
        sockit__free(r);
        return NULL;
    }
    /* The timer counts from the loop's time, which is where the deadline is
     * measured too (both CLOCK_MONOTONIC). */
    double after = 1e10; /* no deadline: never fires before a result moves it (the
                            timer saturates past 9e9 s, so this cannot overflow) */
    if (deadline != SOCKIT__NEVER)
        after = deadline > loop->now ? (double)(deadline - loop->now) / 1e9 : 0;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = type;
    hints.ai_flags = flags;
    /* Numeric hosts and the loopback or wildcard never touch DNS: no thread. */
    const char *node = host != NULL && host[0] != '\0' ? host : NULL;
    ssize_t n;
    if (node == NULL) {
        n = sockit__resolve_all(NULL, port, &hints, &r->ai);
    } else {
        hints.ai_flags |= AI_NUMERICHOST;
        n = sockit__resolve_all(node, port, &hints, &r->ai);
        hints.ai_flags = flags;
    }
    bool known = node == NULL || (flags & AI_NUMERICHOST) || n != SOCKIT_EAI_NONAME;
    if (!known && deadline != SOCKIT__NEVER && sockit__now_ns() >= deadline) {
        n = SOCKIT_ETIMEOUT;
        known = true;
    }
    int rc;
    if (known) {
        r->n = n;
        rc = sockit_timer_start(r->timer, 0, 0);
    } else {
        rc = sockit_timer_start(r->timer, after, 0);
        if (rc == 0)
            rc = start_job(r, node, port, &hints);
    }
    if (rc < 0) {
        sockit__failf(rc, "getaddrinfo %s: %s", r->where,
                      rc == -ENOMEM ? "no memory" : "no resolver thread");
        resolve_free(r);
        return NULL;
    }
    return r;
}

sockit_resolve *sockit_loop_getaddrinfo(sockit_loop *loop, const char *host, const char *port,
                                        int family, int type, int flags, double timeout,
                                        sockit_resolve_fn done, void *user)
{
    const char *service = port != NULL ? port : "0";
    char where[SOCKIT_ADDRSTRLEN + 40];
    sockit__join_hostport(where, sizeof where, host, service);
    if (loop == NULL || done == NULL || isnan(timeout)) {
        sockit__failf(-EINVAL, "getaddrinfo %s: %s", where,
                      loop == NULL   ? "no loop"
                      : done == NULL ? "no done callback"
                                     : "timeout is NaN");
        return NULL;
    }
    char num[24];
    int kind = sockit__classify_port(service, num, sizeof num);
    if (kind < 0) {
        sockit__failf(kind, "getaddrinfo %s: port '%s' is not a number 0-65535", where, service);
        return NULL;
    }
    if (kind == 1) {
        service = num;
        flags |= AI_NUMERICSERV;
    }
    return sockit__resolve_start(loop, host, service, family, type, flags,
                                 sockit__deadline(timeout), done, user);
}

void sockit__resolve_discard(sockit_resolve *r)
{
    if (r == NULL)
        return;
    give_up_job(r);
    resolve_free(r);
}

void sockit_resolve_cancel(sockit_resolve *r)
{
    if (r == NULL || r->delivering || r->n == -ECANCELED)
        return;
    give_up_job(r);
    sockit__free(r->ai);
    r->ai = NULL;
    deliver_soon(r, -ECANCELED);
}
