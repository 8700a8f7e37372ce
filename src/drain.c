/* Closing so that the last bytes sent reach the peer: a close over unread bytes
 * makes the kernel reset the connection and discard what it has not sent yet. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

void sockit__drop_unread(int fd)
{
    char junk[4096];
    for (int i = 0; i < 64 && recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0; i++)
        ;
}

void sockit__drop_until_closed(int fd, int ms)
{
    if (shutdown(fd, SHUT_WR) < 0)
        return; /* not connected any more: nothing can reach the peer */
    int64_t deadline = sockit__now_ns() + (int64_t)ms * 1000000;
    char junk[4096];
    for (;;) {
        ssize_t n = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return;
        int left = sockit__remaining_ms(deadline);
        if (left <= 0)
            return;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, left);
    }
}
