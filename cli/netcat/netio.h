/* stdin and stdout on the loop, for the netcat pair. A descriptor epoll refuses (a
 * regular file, /dev/null) is always ready: it is served by a zero-delay timer
 * while wanted, so one code path fits pipes, terminals, sockets and files alike.
 * stdin and stdout stay blocking, since they may be shared with the shell: a read
 * is done only when the descriptor is ready, and a write to a pipe, socket or
 * terminal is at most PIPE_BUF bytes, which a ready one takes without blocking. */
#ifndef SOCKIT_CLI_NETIO_H
#define SOCKIT_CLI_NETIO_H

#include <sockit.h>

#include <stdbool.h>
#include <sys/types.h>

typedef struct netio netio;
/* Called when the descriptor is ready for the event it was made for. */
typedef void (*netio_fn)(void *user);

/* Ignores SIGPIPE (a closed stdout is seen as EPIPE). Call once before the loop. */
void netio_init(void);
/* A source (SOCKIT_EVENT_READ) or sink (SOCKIT_EVENT_WRITE) on fd, not yet wanted.
 * Returns NULL on failure (out of memory; the message is set). A descriptor that
 * is closed or cannot be watched at all still gives a netio, which reports ready
 * at once, so the next read or write meets the error. */
netio *netio_new(sockit_loop *loop, int fd, int event, netio_fn cb, void *user);
/* Starts or stops asking for readiness. Cheap when nothing changes. */
void netio_want(netio *e, bool on);
/* Stops and frees it (the descriptor stays open). NULL is a no-op. */
void netio_close(netio *e);

/* Reads stdin into buf (it was ready). Returns bytes read, 0 at end of input (also
 * on a read error other than EINTR/EAGAIN, which is reported), or -1 to try again
 * later. */
ssize_t netio_read_stdin(char *buf, size_t len);
/* Writes some of buf to stdout (it was ready): at most PIPE_BUF bytes when stdout
 * is a pipe, socket or terminal. Returns bytes written, -1 to try again later, or 0
 * when stdout is gone (EPIPE or another error). */
ssize_t netio_write_stdout(const char *buf, size_t len);

#endif
