/* What every C bench peer shares: the command line of the peer convention
 * (bench/README.md), the "Listening on" line, the fd limit, signals and the
 * listening socket, so the six peers differ only in how they serve. */
#ifndef PEER_COMMON_H
#define PEER_COMMON_H

#include <signal.h>
#include <stdbool.h>

/* The modes of the convention, as bits so a peer can say which it supports. */
enum peer_mode {
    PEER_ECHO = 1,    /* write back every byte until the client closes */
    PEER_ONESHOT = 2, /* one recv of up to 1024 bytes, reply PEER_REPLY, close */
    PEER_SINK = 4     /* read and discard */
};
#define PEER_ALL_MODES (PEER_ECHO | PEER_ONESHOT | PEER_SINK)

/* The reference server's reply in the one-shot flow. */
#define PEER_REPLY "Hello from server!"
/* The one recv of the one-shot flow, as in the reference server's recv(1024). */
#define PEER_ONESHOT_READ 1024
/* 10,000 clients may connect at once; the kernel caps this at net.core.somaxconn. */
#define PEER_BACKLOG 4096

struct peer_args {
    enum peer_mode mode; /* PEER_ECHO unless --mode says otherwise */
    int port;            /* 0: any free port */
};

/* The program's name for messages; set by peer_parse or peer_parse_arg. */
extern const char *peer_name;

/* Parses a command line that holds only --mode and --port (either "--opt VALUE" or
 * "--opt=VALUE"). modes is the set this peer supports; usage is printed for --help.
 * On a bad or unknown argument it prints one line naming it and exits 2. */
void peer_parse(int argc, char **argv, const char *name, unsigned modes, const char *usage,
                struct peer_args *out);
/* For a peer with options of its own: if argv[*i] is --mode, --port or --help, takes
 * it (and its value, advancing *i) and returns true; otherwise returns false. */
bool peer_parse_arg(int argc, char **argv, int *i, unsigned modes, const char *usage,
                    struct peer_args *out);
/* If argv[*i] is option name ("--name VALUE" or "--name=VALUE"), returns its value
 * and advances *i past it; otherwise NULL. A missing value is a usage error. */
const char *peer_option(int argc, char **argv, int *i, const char *name);
/* Prints "NAME: message" and exits 2. */
void peer_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Prints "NAME: what: strerror(errno)" and exits 1. */
void peer_fail(const char *what) __attribute__((noreturn));

/* Raises the soft RLIMIT_NOFILE to the hard one (10,000 connections need it) and
 * ignores SIGPIPE, which write(2) and writev(2) on a reset connection raise in the
 * libraries that do not send with MSG_NOSIGNAL. */
void peer_prepare(void);
/* A socket of type SOCK_STREAM or SOCK_DGRAM bound to 127.0.0.1:port, listening with
 * PEER_BACKLOG if a stream. Exits 1 on failure. */
int peer_socket(int type, bool nonblocking, int port);
/* The port fd is bound to; exits 1 on failure. */
int peer_bound_port(int fd);
/* Prints "Listening on 127.0.0.1:PORT" on stdout and flushes it: the driver reads
 * the port from this line, so it must come out only once clients can connect. */
void peer_announce(int port);
/* Runs handler on SIGTERM and SIGINT, without SA_RESTART, so a blocking call the
 * signal interrupts returns EINTR. */
void peer_on_stop_signals(void (*handler)(int));
/* For a peer that serves one socket with blocking calls: SIGTERM and SIGINT set
 * peer_stopping and shut fd down. The shutdown closes the window between testing
 * the flag and blocking: a receive that starts after it returns 0 at once, even on
 * an unconnected UDP socket (Linux). Test peer_stopping after every receive. */
void peer_stop_socket_on_signals(int fd);
/* Blocks SIGTERM and SIGINT and returns a signalfd that reads them (nonblocking or
 * not: an event loop reads it when ready, a ring's read waits on a blocking one). */
int peer_stop_signalfd(bool nonblocking);
extern volatile sig_atomic_t peer_stopping;
const char *peer_mode_name(enum peer_mode mode);

#endif /* PEER_COMMON_H */
