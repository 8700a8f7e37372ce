/* A line protocol served by a process per connection, as Python writes it with
 * socketserver:
 *
 *     class Upper(socketserver.StreamRequestHandler):
 *         def handle(self):
 *             for line in self.rfile:
 *                 self.wfile.write(line.rstrip(b"\n").upper() + b"\n")
 *
 *     with socketserver.ForkingTCPServer(('localhost', 12347), Upper) as server:
 *         server.serve_forever()
 *
 * Each line a client sends comes back in upper case, ending in "\n". A handler that
 * crashes takes only its own connection down: the server and the other clients do
 * not notice.
 *
 * Usage: forking_line_server [PORT]   PORT defaults to 12347 (0 picks a free one,
 * printed on the "Listening on" line). SIGINT and SIGTERM stop it: the children still
 * serving get up to GRACE_SECONDS to finish, then their connections are shut down,
 * and it exits 0. */
/* sigaction, clock_gettime and friends are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A client that says nothing for this long is dropped. */
#define IDLE_SECONDS 30.0
/* How long closing waits for the children before it shuts their connections down:
 * a program told to stop should stop within a second, whatever its clients do. */
#define GRACE_SECONDS 0.5

static sockit_server *the_server;
/* The serving process. Children inherit the signal handlers along with everything
 * else; the shutdown request is meant for the parent only. */
static pid_t server_pid;

static void on_signal(int sig)
{
    if (getpid() == server_pid) {
        sockit_server_shutdown(the_server);
        return;
    }
    /* In a child the signal means what it always means: stop now. */
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Runs in the child process, one per connection. */
/* Whether the client has already sent more: bytes read ahead, or in the kernel (a
 * peek that does not wait). Closing over them would reset the connection and lose
 * the request. */
static bool more_waiting(sockit *conn)
{
    char c;
    return sockit_pending(conn) > 0 || sockit_recv(conn, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static int upper(sockit_request *req)
{
    char line[4096];
    for (;;) {
        ssize_t n = sockit_readline(req->sock, line, sizeof line);
        /* A line longer than the buffer comes in pieces; only the last one ends in
         * "\n", so the reply is still one line. */
        bool piece = n == SOCKIT_ELINELEN;
        if (piece)
            n = (ssize_t)sizeof line - 1;
        if (n <= 0)
            return (int)n; /* 0: the client closed; < 0: handle_error reports it */
        for (ssize_t i = 0; i < n; i++)
            line[i] = (char)toupper((unsigned char)line[i]);
        /* The last line of a stream may lack its "\n"; the reply never does. */
        if (!piece && line[n - 1] != '\n')
            line[n++] = '\n';
        ssize_t rc = sockit_sendall(req->sock, line, (size_t)n, 0, NULL);
        if (rc < 0)
            return (int)rc;
        /* The parent is stopping (the child sees it too): this line was answered,
         * the connection need not hold the shutdown, unless its next line is here. */
        if (sockit_server_stopping(req->server) && !more_waiting(req->sock))
            return 0;
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
    int port = 12347;
    if (argc > 2) {
        fprintf(stderr, "usage: forking_line_server [PORT]\n");
        return 2;
    }
    if (argc > 1 && (port = sockit_parse_port(argv[1])) < 0) {
        fprintf(stderr, "forking_line_server: port '%s': %s\n", argv[1], sockit_strerror(port));
        return 2;
    }
    /* One line at a time through a pipe, and nothing left in the buffer for a child
     * to print a second time. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    sockit_server_config cfg = {
        .handler = upper,
        .mode = SOCKIT_PROCESSES,
        .max_children = 40,
        .idle_timeout = IDLE_SECONDS,
        .listen = {.family = AF_INET},
        .close_grace = GRACE_SECONDS,
    };
    the_server = sockit_server_new("localhost", port, SOCK_STREAM, &cfg);
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    if (the_server == NULL || sockit_server_address(the_server, &me) < 0 ||
        sockit_addr_format(&me, text, sizeof text) < 0) {
        fprintf(stderr, "forking_line_server: %s\n", sockit_errmsg());
        sockit_server_close(the_server);
        return 1;
    }
    server_pid = getpid();
    handle_signals(on_signal);
    printf("Listening on %s\n", text);

    int rc = sockit_server_serve_forever(the_server);
    if (rc < 0)
        fprintf(stderr, "forking_line_server: %s\n", sockit_errmsg());
    handle_signals(SIG_DFL);
    /* Reaps every child; one still serving a client is waited for up to
     * GRACE_SECONDS, then its connection is shut down. */
    int closed = sockit_server_close(the_server);
    the_server = NULL;
    if (closed < 0)
        fprintf(stderr, "forking_line_server: %s\n", sockit_errmsg());
    return rc < 0 || closed < 0 ? 1 : 0;
}
