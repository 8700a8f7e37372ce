/* stdin and stdout as loop sources. */
#include "netio.h"

#include "netlog.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct netio {
    int event;
    bool wanted;
    sockit_io *io;      /* NULL when the backend cannot watch the descriptor */
    sockit_timer *soon; /* then: fires at once while wanted */
    netio_fn cb;
    void *user;
};

static size_t stdout_chunk = SIZE_MAX;

void netio_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    /* A blocking pipe takes a write of up to PIPE_BUF bytes whole once it is
     * writable; a regular file takes anything. */
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) == 0 &&
        (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode)))
        stdout_chunk = PIPE_BUF;
}

static void io_ready(sockit_io *io, int events, void *user)
{
    (void)io;
    (void)events;
    netio *e = user;
    e->cb(e->user);
}

static void soon_ready(sockit_timer *t, void *user)
{
    (void)t;
    netio *e = user;
    e->cb(e->user);
    /* Always ready: come back next iteration while still wanted. */
    if (e->wanted && !sockit_timer_active(e->soon))
        sockit_timer_start(e->soon, 0, 0);
}

netio *netio_new(sockit_loop *loop, int fd, int event, netio_fn cb, void *user)
{
    netio *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->event = event;
    e->cb = cb;
    e->user = user;
    e->io = sockit_io_new(loop, fd, io_ready, e);
    /* Probe once: a regular file or /dev/null is refused by epoll (-EPERM), a closed
     * descriptor by every backend (-EBADF). Either is "ready": the read or write
     * says the rest. */
    if (e->io != NULL && sockit_io_start(e->io, event) == 0) {
        sockit_io_stop(e->io);
        return e;
    }
    sockit_io_close(e->io);
    e->io = NULL;
    /* What epoll refuses never blocks (a regular file, /dev/null): stdout there may
     * take everything at once rather than PIPE_BUF bytes an iteration. */
    if (fd == STDOUT_FILENO)
        stdout_chunk = SIZE_MAX;
    e->soon = sockit_timer_new(loop, soon_ready, e);
    if (e->soon == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

void netio_want(netio *e, bool on)
{
    if (e == NULL || e->wanted == on)
        return;
    e->wanted = on;
    if (e->io != NULL)
        sockit_io_start(e->io, on ? e->event : 0);
    else if (on)
        sockit_timer_start(e->soon, 0, 0);
    else
        sockit_timer_stop(e->soon);
}

void netio_close(netio *e)
{
    if (e == NULL)
        return;
    sockit_io_close(e->io);
    sockit_timer_close(e->soon);
    free(e);
}

ssize_t netio_read_stdin(char *buf, size_t len)
{
    ssize_t n = read(STDIN_FILENO, buf, len);
    if (n >= 0)
        return n;
    int err = errno;
    if (err == EINTR || err == EAGAIN)
        return -1;
    netlog_warn("read from stdin: %s (treated as end of input)", strerror(err));
    return 0;
}

ssize_t netio_write_stdout(const char *buf, size_t len)
{
    if (len > stdout_chunk)
        len = stdout_chunk;
    ssize_t n = write(STDOUT_FILENO, buf, len);
    if (n > 0)
        return n;
    int err = n < 0 ? errno : EIO;
    if (err == EINTR || err == EAGAIN)
        return -1;
    if (err != EPIPE)
        netlog_warn("write to stdout: %s", strerror(err));
    return 0;
}
