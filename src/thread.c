/* The threads sockit starts for itself (resolver lookups, the work pool, server
 * handlers and loops): each starts with every signal blocked, so the program's
 * signal handlers keep running on the threads the program made, and
 * sockit_server_shutdown and the loop's signal watchers keep their meaning. */
#include "internal.h"

#include <pthread.h>
#include <signal.h>

int sockit__thread_create(pthread_t *out, bool detached, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return -rc;
    if (detached)
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The new thread inherits the mask in force when it is made. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    rc = pthread_create(&t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc == 0 && out != NULL)
        *out = t;
    return -rc;
}
