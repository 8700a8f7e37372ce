/* Name resolution that gives up at a deadline.
 *
 * getaddrinfo cannot be cancelled and may block for as long as the system's DNS
 * timeouts allow. To honour a caller's deadline the lookup runs on a detached thread
 * that shares one reference-counted job with the caller: the caller waits on a
 * condition variable until the lookup is done or the deadline passes, then drops its
 * reference; whichever side drops the last reference frees the job and the result. */
#include "resolve_deadline.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct resolve_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* the caller and the lookup thread */
    bool done;
    char *host; /* NULL for the loopback or wildcard */
    char service[8];
    struct addrinfo hints;
    int eai;       /* getaddrinfo's return */
    int eai_errno; /* errno right after it, for EAI_SYSTEM */
    struct addrinfo *res;
} resolve_job;

static void job_release(resolve_job *job)
{
    pthread_mutex_lock(&job->mu);
    bool last = --job->refs == 0;
    pthread_mutex_unlock(&job->mu);
    if (!last)
        return;
    if (job->res != NULL)
        sockit__call_freeaddrinfo(job->res);
    pthread_cond_destroy(&job->cv);
    pthread_mutex_destroy(&job->mu);
    sockit__free(job->host);
    sockit__free(job);
}

static void *lookup_main(void *arg)
{
    resolve_job *job = arg;
    struct addrinfo *res = NULL;
    int eai = sockit__call_getaddrinfo(job->host, job->service, &job->hints, &res);
    int saved = errno;
    pthread_mutex_lock(&job->mu);
    job->eai = eai;
    job->eai_errno = saved;
    job->res = eai == 0 ? res : NULL;
    job->done = true;
    pthread_cond_signal(&job->cv);
    pthread_mutex_unlock(&job->mu);
    job_release(job);
    return NULL;
}

static resolve_job *job_new(const char *host, const char *service, const struct addrinfo *hints)
{
    resolve_job *job = sockit__calloc(1, sizeof *job);
    if (job == NULL)
        return NULL;
    if (host != NULL && (job->host = strdup(host)) == NULL) {
        sockit__free(job);
        return NULL;
    }
    pthread_condattr_t ca;
    bool cond_ok = false;
    if (pthread_condattr_init(&ca) == 0) {
        /* The wait is against a CLOCK_MONOTONIC deadline, so the condition variable
         * must measure on that clock: a wall-clock step must not stretch the wait. */
        cond_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&job->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cond_ok || pthread_mutex_init(&job->mu, NULL) != 0) {
        if (cond_ok)
            pthread_cond_destroy(&job->cv);
        sockit__free(job->host);
        sockit__free(job);
        return NULL;
    }
    memcpy(job->service, service, sizeof job->service);
    job->hints = *hints;
    job->refs = 2;
    return job;
}

static ssize_t lookup_threaded(const char *host, const char *service, const struct addrinfo *hints,
                               int64_t deadline, sockit_addrinfo *out, size_t max)
{
    resolve_job *job = job_new(host, service, hints);
    if (job == NULL)
        return -ENOMEM;
    int rc = sockit__thread_create(NULL, true, lookup_main, job);
    if (rc != 0) {
        job_release(job);
        job_release(job);
        return rc;
    }
    struct timespec until = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
    pthread_mutex_lock(&job->mu);
    /* Bounded by the deadline: timedwait returns ETIMEDOUT once it passes, and a
     * spurious wakeup only goes round again. */
    while (!job->done) {
        if (pthread_cond_timedwait(&job->cv, &job->mu, &until) == ETIMEDOUT)
            break;
    }
    ssize_t n;
    if (!job->done)
        n = SOCKIT_ETIMEOUT;
    else if (job->eai != 0)
        n = sockit__from_eai(job->eai, job->eai_errno);
    else
        n = sockit__copy_addrinfo(job->res, out, max);
    pthread_mutex_unlock(&job->mu);
    job_release(job);
    return n;
}

ssize_t sockit__resolve_deadline(const char *host, int port, int family, int type, int flags,
                                 int64_t deadline, sockit_addrinfo *out, size_t max)
{
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = type;
    hints.ai_flags = flags | AI_NUMERICSERV;

    /* Numeric hosts and the loopback/wildcard never touch DNS, so they cost no
     * thread. A name that is not numeric fails here with EAI_NONAME at once. */
    if (host == NULL || host[0] == '\0')
        return sockit__resolve_now(NULL, service, &hints, out, max);
    hints.ai_flags |= AI_NUMERICHOST;
    ssize_t n = sockit__resolve_now(host, service, &hints, out, max);
    if (n != SOCKIT_EAI_NONAME)
        return n;
    hints.ai_flags &= ~AI_NUMERICHOST;

    if (deadline == SOCKIT__NEVER)
        return sockit__resolve_now(host, service, &hints, out, max);
    if (sockit__now_ns() >= deadline)
        return SOCKIT_ETIMEOUT;
    return lookup_threaded(host, service, &hints, deadline, out, max);
}
