/* The blocking-mode server the fault probes (tests/fault_probes.py) run: an echo
 * server in SOCKIT_SEQUENTIAL, SOCKIT_THREADS, SOCKIT_POOL or SOCKIT_PROCESSES mode on
 * 127.0.0.1, a free port. It prints {"event":"bound","port":N} once it listens and
 * exits 0 after SIGTERM or SIGINT, giving open connections close_grace 0.5 s (as the
 * examples do). SIGPIPE keeps its default action: a write to a closed peer that
 * raised it would kill the server, which is what the reader probe looks for.
 *
 * Usage: probe_server MODE [threads=N] [queue=N] [max=N] [refuse]
 *   MODE     sequential, threads, pool or processes
 *   threads  SOCKIT_POOL's workers; queue its waiting requests
 *   max      max_connections; refuse: SOCKIT_OVERFLOW_REFUSE beyond it */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sockit_server *the_server;

static void on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(the_server);
}

/* Bytes back as they come; between reads, a stopping server lets the client go
 * unless more of its bytes are already here. */
static int echo(sockit_request *req)
{
    char buf[64 * 1024];
    for (;;) {
        ssize_t n = sockit_recv(req->sock, buf, sizeof buf, 0);
        if (n <= 0)
            return (int)n;
        ssize_t rc = sockit_sendall(req->sock, buf, (size_t)n, 0, NULL);
        if (rc < 0)
            return (int)rc;
        char c;
        if (sockit_server_stopping(req->server) && sockit_pending(req->sock) == 0 &&
            sockit_recv(req->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
            return 0;
    }
}

static int usage(const char *why)
{
    fprintf(stderr,
            "probe_server: %s\n"
            "usage: probe_server sequential|threads|pool|processes [threads=N] "
            "[queue=N] [max=N] [refuse]\n",
            why);
    return 2;
}

static bool number(const char *arg, const char *key, int *out)
{
    size_t k = strlen(key);
    if (strncmp(arg, key, k) != 0 || arg[k] != '=')
        return false;
    char *end;
    long v = strtol(arg + k + 1, &end, 10);
    if (*end != '\0' || end == arg + k + 1 || v < 1 || v > 1000000)
        return false;
    *out = (int)v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        sockit_server_mode mode;
    } modes[] = {{"sequential", SOCKIT_SEQUENTIAL},
                 {"threads", SOCKIT_THREADS},
                 {"pool", SOCKIT_POOL},
                 {"processes", SOCKIT_PROCESSES}};
    if (argc < 2)
        return usage("a mode is needed");
    sockit_server_config cfg = {.handler = echo, .close_grace = 0.5};
    size_t m = 0;
    while (m < sizeof modes / sizeof modes[0] && strcmp(argv[1], modes[m].name) != 0)
        m++;
    if (m == sizeof modes / sizeof modes[0])
        return usage("unknown mode");
    cfg.mode = modes[m].mode;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "refuse") == 0)
            cfg.overflow = SOCKIT_OVERFLOW_REFUSE;
        else if (!number(argv[i], "threads", &cfg.threads) &&
                 !number(argv[i], "queue", &cfg.queue) &&
                 !number(argv[i], "max", &cfg.max_connections))
            return usage("bad option");
    }
    the_server = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    sockit_addr where;
    if (the_server == NULL || sockit_server_address(the_server, &where) < 0) {
        fprintf(stderr, "probe_server: %s\n", sockit_errmsg());
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("{\"event\":\"bound\",\"port\":%d}\n", sockit_addr_port(&where));
    fflush(stdout);
    int rc = sockit_server_serve_forever(the_server);
    if (rc < 0)
        fprintf(stderr, "probe_server: %s\n", sockit_errmsg());
    sockit_server_close(the_server);
    return rc < 0 ? 1 : 0;
}
