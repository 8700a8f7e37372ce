/* Running out of descriptors at accept without spinning, for the blocking server
 * (socketserver_shed.c) and the loop's listener (stream/listener.c) alike.
 *
 * When accept fails with EMFILE/ENFILE the pending connections stay in the backlog
 * and the listener stays readable: polling it again at once is what makes other
 * servers spin at 100% CPU, and not accepting leaves every client waiting. A server
 * keeps one spare descriptor (/dev/null) for this: it gives it up, accepts and closes
 * every pending connection with it (their clients read end of stream at once), and
 * takes it back. With the backlog empty the listener is quiet until the next client.
 * Other resource errors, and a shed that could not empty the backlog, pause
 * accepting instead, for a back-off that doubles while the errors go on. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define BACKOFF_MIN_NS (10 * 1000000LL)
#define BACKOFF_MAX_NS (1000 * 1000000LL)
/* One pass sheds at most this many, so clients arriving as fast as they are shed
 * cannot hold the caller here; the next pass comes as soon as it polls again. */
#define SHED_MAX 4096

void sockit__reserve_fd(int *reserve_fd)
{
    if (*reserve_fd < 0)
        *reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

bool sockit__shed_backlog(int listen_fd, int *reserve_fd)
{
    if (*reserve_fd < 0)
        return false;
    close(*reserve_fd);
    *reserve_fd = -1;
    bool emptied = false;
    for (int i = 0; i < SHED_MAX; i++) {
        int fd = sockit__sys_accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            close(fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        /* EMFILE here: another thread took the freed number; back off instead. */
        emptied = errno == EAGAIN || errno == EWOULDBLOCK;
        break;
    }
    sockit__reserve_fd(reserve_fd);
    return emptied;
}

int64_t sockit__backoff_next(int64_t current_ns)
{
    int64_t b = current_ns == 0 ? BACKOFF_MIN_NS : current_ns * 2;
    return b > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : b;
}
