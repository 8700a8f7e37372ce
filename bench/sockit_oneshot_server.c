/* The reference TCP server's one-shot flow on sockit_server, in the concurrency mode
 * named on the command line: receive once (up to 1024 bytes), reply
 * "Hello from server!", close. The twin of bench/python_threading_server.py.
 *
 * Usage: sockit_oneshot_server sequential|threads|processes|pool [PORT]
 *   PORT defaults to 0 (a free one). Prints "Listening on 127.0.0.1:PORT"; SIGINT or
 *   SIGTERM stops it (exit 0). Every mode uses the library's defaults (pool: 8
 *   threads, queue 64; processes: at most 40 children; backlog SOMAXCONN). */
/* clock_gettime, getopt and friends are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static sockit_server *the_server;
static pid_t server_pid;

static void on_signal(int sig)
{
    if (getpid() == server_pid) {
        sockit_server_shutdown(the_server);
        return;
    }
    /* A child (processes mode) inherited the handler: there it just ends. */
    signal(sig, SIG_DFL);
    raise(sig);
}

static int one_shot(sockit_request *req)
{
    static const char reply[] = "Hello from server!";
    char data[1024];
    ssize_t n = sockit_recv(req->sock, data, sizeof data, 0);
    if (n < 0)
        return (int)n;
    ssize_t rc = sockit_sendall(req->sock, reply, sizeof reply - 1, 0, NULL);
    return rc < 0 ? (int)rc : 0;
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
    static const struct {
        const char *name;
        sockit_server_mode mode;
    } modes[] = {{"sequential", SOCKIT_SEQUENTIAL},
                 {"threads", SOCKIT_THREADS},
                 {"processes", SOCKIT_PROCESSES},
                 {"pool", SOCKIT_POOL}};
    size_t m = 0;
    while (argc > 1 && m < sizeof modes / sizeof modes[0] && strcmp(argv[1], modes[m].name) != 0)
        m++;
    if (argc < 2 || argc > 3 || m == sizeof modes / sizeof modes[0]) {
        fprintf(stderr, "usage: sockit_oneshot_server sequential|threads|processes|pool [PORT]\n");
        return 2;
    }
    int port = 0;
    if (argc > 2 && (port = sockit_parse_port(argv[2])) < 0) {
        fprintf(stderr, "sockit_oneshot_server: port '%s': %s\n", argv[2], sockit_strerror(port));
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    sockit_server_config cfg = {.handler = one_shot, .mode = modes[m].mode};
    the_server = sockit_server_new("127.0.0.1", port, SOCK_STREAM, &cfg);
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    if (the_server == NULL || sockit_server_address(the_server, &me) < 0 ||
        sockit_addr_format(&me, text, sizeof text) < 0) {
        fprintf(stderr, "sockit_oneshot_server: %s\n", sockit_errmsg());
        sockit_server_close(the_server);
        return 1;
    }
    server_pid = getpid();
    handle_signals(on_signal);
    printf("Listening on %s\n", text);

    int rc = sockit_server_serve_forever(the_server);
    if (rc < 0)
        fprintf(stderr, "sockit_oneshot_server: %s\n", sockit_errmsg());
    handle_signals(SIG_DFL);
    int closed = sockit_server_close(the_server);
    the_server = NULL;
    if (closed < 0)
        fprintf(stderr, "sockit_oneshot_server: %s\n", sockit_errmsg());
    return rc < 0 || closed < 0 ? 1 : 0;
}
