/* Plumbing shared by the netcat pair's poll loops (relay.c for streams, dgram.c
 * for datagrams): a monotonic clock, SIGINT/SIGTERM as a flag that cannot be lost
 * between the check and the wait, and stdin/stdout access that never blocks long
 * on a descriptor poll said was ready. */
#ifndef SOCKIT_CLI_NETLOOP_H
#define SOCKIT_CLI_NETLOOP_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Ignores SIGPIPE (a closed stdout is seen as EPIPE) and routes SIGINT/SIGTERM to
 * a flag; they are blocked except inside netloop_poll, so the flag is always seen
 * before the loop waits. */
void netloop_init(void);
/* True once SIGINT or SIGTERM arrived. */
bool netloop_interrupted(void);
/* Milliseconds on the monotonic clock. */
int64_t netloop_now(void);
/* Milliseconds from now until at (0 if passed), for poll; -1 if at is -1. */
int netloop_until(int64_t at);
/* An absolute time secs from now, or -1 for secs < 0. */
int64_t netloop_after(double secs);
/* poll, with SIGINT/SIGTERM unblocked while it waits. Returns poll's result; 0
 * also when interrupted (check netloop_interrupted). */
int netloop_poll(struct pollfd *fds, nfds_t n, int timeout_ms);

/* Reads stdin into buf (poll said readable). Returns bytes read, 0 at end of input
 * (also on a read error other than EINTR/EAGAIN, which is reported), or -1 to
 * try again later. */
ssize_t netloop_read_stdin(char *buf, size_t len);
/* Writes some of buf to stdout (poll said writable): at most PIPE_BUF bytes when
 * stdout is a pipe, socket or terminal. Returns bytes written, -1 to try again
 * later, or 0 when stdout is gone (EPIPE or another error). */
ssize_t netloop_write_stdout(const char *buf, size_t len);

#endif
