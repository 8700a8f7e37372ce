/* Running out of descriptors without spinning and without leaving clients hanging.
 *
 * When accept fails with EMFILE/ENFILE the pending connections stay in the backlog
 * and the listener stays readable: polling it again at once is what makes other
 * servers spin at 100% CPU, and not accepting leaves every client waiting. The
 * server keeps one spare descriptor (/dev/null) for this: it gives it up, accepts
 * and closes every pending connection with it (their clients read end of stream at
 * once), and takes it back. With the backlog empty the listener is quiet until the
 * next client, so the loop simply waits. Other resource errors (ENOBUFS, ENOMEM),
 * and a shed that could not empty the backlog, pause accepting instead, doubling
 * from the minimum to the maximum while the errors go on. */
#include "socketserver.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define SRV_BACKOFF_MIN_NS (10 * 1000000LL)
#define SRV_BACKOFF_MAX_NS (1000 * 1000000LL)
/* One pass sheds at most this many, so clients arriving as fast as they are shed
 * cannot hold the loop here; the next pass comes as soon as the loop polls. */
#define SRV_SHED_MAX 4096

void sockit__srv_reserve(sockit_server *srv)
{
    if (srv->reserve_fd < 0)
        srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

bool sockit__srv_shed(sockit_server *srv)
{
    if (srv->reserve_fd < 0)
        return false;
    close(srv->reserve_fd);
    srv->reserve_fd = -1;
    int lfd = sockit_fileno(srv->sock);
    bool emptied = false;
    for (int i = 0; i < SRV_SHED_MAX; i++) {
        int fd = sockit__sys_accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
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
    sockit__srv_reserve(srv);
    return emptied;
}

void sockit__srv_back_off(sockit_server *srv, int code)
{
    if (!srv->resource_reported) {
        sockit__srv_report(srv, NULL, code);
        srv->resource_reported = true;
    }
    int64_t b = srv->backoff_ns == 0 ? SRV_BACKOFF_MIN_NS : srv->backoff_ns * 2;
    srv->backoff_ns = b > SRV_BACKOFF_MAX_NS ? SRV_BACKOFF_MAX_NS : b;
    srv->backoff_until = sockit__now_ns() + srv->backoff_ns;
}

void sockit__srv_resource_ok(sockit_server *srv)
{
    srv->backoff_ns = 0;
    srv->backoff_until = 0;
    srv->resource_reported = false;
}
