/* Clock, signals and stdin/stdout for the netcat loops. */
#include "netloop.h"

#include "netlog.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;
static sigset_t wait_mask; /* the mask while waiting in ppoll: INT/TERM open */
static size_t stdout_chunk;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

void netloop_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &wait_mask);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);

    /* A blocking pipe takes a write of up to PIPE_BUF bytes whole once poll says it
     * is writable; a regular file takes anything. */
    struct stat st;
    stdout_chunk = SIZE_MAX;
    if (fstat(STDOUT_FILENO, &st) == 0 &&
        (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode)))
        stdout_chunk = PIPE_BUF;
}

bool netloop_interrupted(void) { return interrupted != 0; }

int64_t netloop_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int netloop_until(int64_t at)
{
    if (at < 0)
        return -1;
    int64_t left = at - netloop_now();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

int64_t netloop_after(double secs)
{
    if (secs < 0)
        return -1;
    double ms = secs * 1000.0;
    /* Longer than a century is forever. */
    if (ms > 3.2e12)
        return -1;
    return netloop_now() + (int64_t)ms;
}

int netloop_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    if (interrupted)
        return 0;
    struct timespec ts, *tp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    int rc = ppoll(fds, n, tp, &wait_mask);
    if (rc < 0 && errno == EINTR)
        return 0;
    return rc;
}

ssize_t netloop_read_stdin(char *buf, size_t len)
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

ssize_t netloop_write_stdout(const char *buf, size_t len)
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
