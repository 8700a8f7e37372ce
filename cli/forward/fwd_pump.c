/* The blocking side of a descriptor the loop cannot watch (fwd_pump.h). */
#include "fwd_pump.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define PUMP_CHUNK 65536

struct fwd_pump {
    pthread_t thread;
    int fd, sock;
    bool owned, reading;
    int err;
};

static ssize_t read_retry(int fd, char *buf, size_t n)
{
    ssize_t k;
    do
        k = read(fd, buf, n);
    while (k < 0 && errno == EINTR);
    return k;
}

/* Writes all of buf (to a socket without SIGPIPE). 0 or -1 with errno. */
static int write_all(int fd, const char *buf, size_t n, bool sock)
{
    while (n > 0) {
        ssize_t k = sock ? send(fd, buf, n, MSG_NOSIGNAL) : write(fd, buf, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

static void *run(void *arg)
{
    fwd_pump *p = arg;
    char *buf = malloc(PUMP_CHUNK);
    if (buf == NULL) {
        p->err = ENOMEM;
        shutdown(p->sock, SHUT_RDWR);
        return NULL;
    }
    if (p->reading) {
        for (;;) {
            ssize_t k = read_retry(p->fd, buf, PUMP_CHUNK);
            if (k < 0)
                p->err = errno;
            if (k <= 0)
                break;
            if (write_all(p->sock, buf, (size_t)k, true) < 0)
                break; /* the loop's end is gone: nothing more to do */
        }
        shutdown(p->sock, SHUT_WR);
        while (read_retry(p->sock, buf, PUMP_CHUNK) > 0) /* discarded */
            ;
    } else {
        shutdown(p->sock, SHUT_WR);
        for (;;) {
            ssize_t k = read_retry(p->sock, buf, PUMP_CHUNK);
            if (k <= 0)
                break;
            if (write_all(p->fd, buf, (size_t)k, false) < 0) {
                p->err = errno;
                /* The loop's writes now fail (EPIPE), so the relay ends. */
                shutdown(p->sock, SHUT_RDWR);
                break;
            }
        }
    }
    free(buf);
    return NULL;
}

fwd_pump *fwd_pump_start(int fd, bool owned, bool reading, int *loop_fd)
{
    fwd_pump *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        free(p);
        return NULL;
    }
    p->fd = fd;
    p->sock = sv[1];
    p->owned = owned;
    p->reading = reading;
    /* The thread takes no signal: they are the loop's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->thread, NULL, run, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        close(sv[0]);
        close(sv[1]);
        free(p);
        errno = rc;
        return NULL;
    }
    *loop_fd = sv[0];
    return p;
}

int fwd_pump_finish(fwd_pump *p, bool cut)
{
    if (p == NULL)
        return 0;
    if (cut)
        shutdown(p->sock, SHUT_RDWR);
    pthread_join(p->thread, NULL);
    close(p->sock);
    if (p->owned)
        close(p->fd);
    int err = p->err;
    free(p);
    return err;
}
