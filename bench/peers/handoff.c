/* One acceptor handing connections out to several loops (handoff.h): loop 0
 * watches the listening socket, accepts in batches and posts each descriptor to
 * the next loop round-robin (itself included), which makes it a stream. */
#include "handoff.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LOOPS    256
#define ACCEPT_BATCH 64

static sockit_loop *loops[MAX_LOOPS];
static int nloops;
static const sockit_stream_callbacks *callbacks;

void handoff_stop(void)
{
    for (int i = 0; i < nloops; i++)
        sockit_loop_stop(loops[i]);
}

static void adopt(sockit_loop *loop, void *arg)
{
    int fd = (int)(intptr_t)arg;
    if (sockit_stream_new_fd(loop, fd, true, callbacks, NULL) == NULL)
        close(fd);
}

static void on_listen(sockit_io *io, int events, void *user)
{
    (void)events;
    (void)user;
    static unsigned next;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(sockit_io_fd(io), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a failure the next readiness meets again */
        sockit_loop *to = loops[next++ % (unsigned)nloops];
        if (to == loops[0])
            adopt(to, (void *)(intptr_t)fd);
        else if (sockit_loop_post(to, adopt, (void *)(intptr_t)fd) < 0)
            close(fd);
    }
}

static void *run_loop(void *arg)
{
    sockit_loop_run(arg);
    return NULL;
}

static void nothing(sockit_wakeup *w, void *user)
{
    (void)w;
    (void)user;
}

int handoff_serve(int lfd, int n, const sockit_stream_callbacks *cb)
{
    if (n < 1 || n > MAX_LOOPS) {
        fprintf(stderr, "handoff: %d loops (1 to %d)\n", n, MAX_LOOPS);
        return 1;
    }
    callbacks = cb;
    sockit_wakeup *alive[MAX_LOOPS] = {0};
    for (int i = 0; i < n; i++) {
        loops[i] = sockit_loop_new(NULL);
        /* A loop with no stream yet must not return: a kept-alive wakeup holds it. */
        alive[i] = loops[i] != NULL ? sockit_wakeup_new(loops[i], nothing, NULL) : NULL;
        if (alive[i] == NULL) {
            fprintf(stderr, "handoff: %s\n", sockit_errmsg());
            return 1;
        }
        sockit_wakeup_keepalive(alive[i], true);
    }
    nloops = n;
    sockit_io *listen_io = sockit_io_new(loops[0], lfd, on_listen, NULL);
    if (listen_io == NULL || sockit_io_start(listen_io, SOCKIT_EVENT_READ) < 0) {
        fprintf(stderr, "handoff: %s\n", sockit_errmsg());
        return 1;
    }
    pthread_t threads[MAX_LOOPS];
    for (int i = 1; i < n; i++)
        if (pthread_create(&threads[i], NULL, run_loop, loops[i]) != 0) {
            fprintf(stderr, "handoff: no thread for loop %d\n", i);
            exit(1);
        }
    sockit_loop_run(loops[0]);
    handoff_stop();
    for (int i = 1; i < n; i++)
        pthread_join(threads[i], NULL);
    /* The process ends next: the streams still open go with it. */
    return 0;
}
