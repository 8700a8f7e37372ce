/* A descriptor the loop cannot watch (a regular file, /dev/null: always ready, so
 * epoll refuses it) joined to the loop through a socketpair and a thread that does
 * the blocking reads or writes. The thread's copy is bounded by the socket's
 * buffer: it blocks when the loop side does not keep up, and the loop side's
 * stream is paused by the relay when the thread does not. */
#ifndef SOCKIT_CLI_FWD_PUMP_H
#define SOCKIT_CLI_FWD_PUMP_H

#include <stdbool.h>

typedef struct fwd_pump fwd_pump;

/* reading: the thread copies fd to the socket until fd's end, then shuts the
 * socket's write side down and discards what comes until its end; else it shuts
 * the write side down at once and copies the socket to fd until the socket's end.
 * owned: fd is closed when the pump finishes. Returns the pump and *loop_fd (the
 * loop's end, the caller's), or NULL with errno. */
fwd_pump *fwd_pump_start(int fd, bool owned, bool reading, int *loop_fd);
/* Waits for the thread and frees the pump. The loop's end must be closed first,
 * so the thread has seen all of it; or cut: the thread's copy stops at once (what
 * it has not copied is lost). Returns 0, or the errno of the read or write of fd
 * that failed. NULL: 0. */
int fwd_pump_finish(fwd_pump *p, bool cut);

#endif
