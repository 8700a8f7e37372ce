/* A Unix stream server with a fixed pool of threads, as Python would write it with
 * socketserver (Python has no pool; ThreadingUnixStreamServer is the nearest):
 *
 *     count = itertools.count(1)
 *
 *     class Numbered(socketserver.StreamRequestHandler):
 *         def handle(self):
 *             for line in self.rfile:
 *                 self.wfile.write(b"%d " % next(count) + line)
 *
 *     with socketserver.ThreadingUnixStreamServer('/tmp/app.sock', Numbered) as server:
 *         server.serve_forever()
 *
 * Each line comes back numbered: "N line\n", where N counts every line the server
 * has answered, over all connections. Four threads serve at most four connections
 * at once; up to sixteen more wait in the queue, and beyond that in the kernel's
 * listen backlog, so the server's memory and threads stay bounded under any load.
 * A line longer than 4095 bytes ends its connection.
 *
 * Usage: unix_server PATH   SIGINT and SIGTERM stop it: connections still open are
 * served to their end, the socket file is removed, and it exits 0. */
/* sigaction, clock_gettime and friends are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A client that says nothing for this long is dropped, so that it cannot hold a
 * worker (or the graceful shutdown) forever. */
#define IDLE_SECONDS 30.0

static sockit_server *the_server;

/* Shared by every worker thread, hence atomic. */
static atomic_ulong lines_answered;

static void on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(the_server);
}

static int numbered(sockit_request *req)
{
    char line[4096];
    char reply[sizeof line + 32];
    for (;;) {
        ssize_t n = sockit_readline(req->sock, line, sizeof line);
        /* 0: the client closed; < 0 (a line over 4095 bytes among them): the
         * connection ends and handle_error reports why. */
        if (n <= 0)
            return (int)n;
        unsigned long number = atomic_fetch_add(&lines_answered, 1) + 1;
        /* At most 21 bytes: 20 digits and the space. */
        int head = snprintf(reply, sizeof reply - sizeof line, "%lu ", number);
        memcpy(reply + head, line, (size_t)n);
        ssize_t rc = sockit_sendall(req->sock, reply, (size_t)head + (size_t)n, 0, NULL);
        if (rc < 0)
            return (int)rc;
    }
}

static void handle_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '\0') {
        fprintf(stderr, "usage: unix_server PATH\n");
        return 2;
    }
    const char *path = argv[1];
    char host[sizeof(struct sockaddr_un) + 8];
    if ((size_t)snprintf(host, sizeof host, "unix:%s", path) >= sizeof host) {
        fprintf(stderr, "unix_server: path '%s': %s\n", path, sockit_strerror(SOCKIT_EPATHLEN));
        return 2;
    }
    /* Tests and scripts read our output through a pipe: one line at a time. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    sockit_server_config cfg = {
        .handler = numbered,
        .mode = SOCKIT_POOL,
        .threads = 4,
        .queue = 16,
        .idle_timeout = IDLE_SECONDS,
    };
    the_server = sockit_server_new(host, 0, SOCK_STREAM, &cfg);
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    if (the_server == NULL || sockit_server_address(the_server, &me) < 0 ||
        sockit_addr_format(&me, text, sizeof text) < 0) {
        fprintf(stderr, "unix_server: %s\n", sockit_errmsg());
        sockit_server_close(the_server);
        return 1;
    }
    handle_signals(on_signal);
    printf("Listening on %s\n", text);

    int rc = sockit_server_serve_forever(the_server);
    if (rc < 0)
        fprintf(stderr, "unix_server: %s\n", sockit_errmsg());
    handle_signals(SIG_DFL);
    int closed = sockit_server_close(the_server);
    the_server = NULL;
    if (closed < 0)
        fprintf(stderr, "unix_server: %s\n", sockit_errmsg());
    /* As with Python's UnixStreamServer, the socket file outlives the socket; the
     * next server to bind the path would replace it anyway, but a clean exit leaves
     * nothing behind. */
    if (unlink(path) < 0 && errno != ENOENT) {
        perror("unix_server: unlink");
        closed = -1;
    }
    return rc < 0 || closed < 0 ? 1 : 0;
}
