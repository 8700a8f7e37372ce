/* A line echo server with a thread per connection, as Python writes it with
 * socketserver:
 *
 *     class Echo(socketserver.StreamRequestHandler):
 *         def handle(self):
 *             for line in self.rfile:
 *                 self.wfile.write(line)
 *
 *     with socketserver.ThreadingTCPServer(('localhost', 12346), Echo) as server:
 *         server.serve_forever()
 *
 * Usage: threaded_echo_server [PORT [SECONDS]]   PORT defaults to 12346 (0 picks a free
 * one, printed on the "Listening on" line); SECONDS > 0 stops serving after that long.
 * SIGINT and SIGTERM stop it too. Either way connections still open get up to
 * GRACE_SECONDS to finish (each handler also ends after its current line); then they
 * are shut down, and the program exits 0. */
/* sigaction, clock_gettime and friends are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A client that says nothing for this long is dropped. */
#define IDLE_SECONDS 30.0
/* How long closing waits for open connections before it shuts them down: a program
 * told to stop should stop within a second, whatever its clients do. */
#define GRACE_SECONDS 0.5

/* Set before the signal handlers are installed and cleared only after they are
 * restored, so a handler never sees a freed server. */
static sockit_server *the_server;

static void on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(the_server);
}

/* Whether the client has already sent more: bytes read ahead, or in the kernel (a
 * peek that does not wait). Closing over them would reset the connection and lose
 * the request. */
static bool more_waiting(sockit *conn)
{
    char c;
    return sockit_pending(conn) > 0 || sockit_recv(conn, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static int echo(sockit_request *req)
{
    char line[4096];
    for (;;) {
        ssize_t n = sockit_readline(req->sock, line, sizeof line);
        /* A line longer than the buffer comes in pieces of sizeof line - 1 bytes:
         * echoing each piece as it arrives echoes the whole line. */
        if (n == SOCKIT_ELINELEN)
            n = (ssize_t)sizeof line - 1;
        if (n <= 0)
            return (int)n; /* 0: the client closed; < 0: handle_error reports it */
        ssize_t rc = sockit_sendall(req->sock, line, (size_t)n, 0, NULL);
        if (rc < 0)
            return (int)rc;
        /* Stopping: this client got its answers; it need not keep us waiting, unless
         * its next request is already here. */
        if (sockit_server_stopping(req->server) && !more_waiting(req->sock))
            return 0;
    }
}

/* The timer: a thread that shuts the server down after SECONDS, unless the program
 * ends first and wakes it through the condition variable. */
struct timer {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool done;
    double seconds;
};

static void *timer_main(void *arg)
{
    struct timer *t = arg;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    time_t whole = (time_t)t->seconds;
    until.tv_sec += whole;
    until.tv_nsec += (long)((t->seconds - (double)whole) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->lock);
    int rc = 0;
    while (!t->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&t->wake, &t->lock, &until);
    bool expired = !t->done;
    pthread_mutex_unlock(&t->lock);
    /* shutdown is safe from any thread: serve_forever returns in the main thread. */
    if (expired)
        sockit_server_shutdown(the_server);
    return NULL;
}

static int timer_start(struct timer *t, pthread_t *thread)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    /* Measured on the monotonic clock, so setting the wall clock does not move it. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&t->lock, NULL);
    t->done = false;
    return pthread_create(thread, NULL, timer_main, t);
}

static void timer_stop(struct timer *t, pthread_t thread)
{
    pthread_mutex_lock(&t->lock);
    t->done = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(thread, NULL);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
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

static int usage_error(const char *what, const char *text, const char *why)
{
    fprintf(stderr, "threaded_echo_server: %s '%s': %s\n", what, text, why);
    return 2;
}

int main(int argc, char **argv)
{
    int port = 12346;
    double seconds = 0; /* forever */
    if (argc > 3) {
        fprintf(stderr, "usage: threaded_echo_server [PORT [SECONDS]]\n");
        return 2;
    }
    if (argc > 1 && (port = sockit_parse_port(argv[1])) < 0)
        return usage_error("port", argv[1], sockit_strerror(port));
    if (argc > 2) {
        char *end;
        errno = 0;
        seconds = strtod(argv[2], &end);
        if (end == argv[2] || *end != '\0' || errno != 0 || !(seconds > 0 && seconds < 1e9))
            return usage_error("seconds", argv[2], "not a positive number");
    }
    /* Tests and scripts read our output through a pipe: one line at a time. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    sockit_server_config cfg = {
        .handler = echo,
        .mode = SOCKIT_THREADS,
        .idle_timeout = IDLE_SECONDS,
        .listen = {.family = AF_INET},
        .close_grace = GRACE_SECONDS,
    };
    the_server = sockit_server_new("localhost", port, SOCK_STREAM, &cfg);
    if (the_server == NULL) {
        fprintf(stderr, "threaded_echo_server: %s\n", sockit_errmsg());
        return 1;
    }
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    if (sockit_server_address(the_server, &me) < 0 ||
        sockit_addr_format(&me, text, sizeof text) < 0) {
        fprintf(stderr, "threaded_echo_server: %s\n", sockit_errmsg());
        sockit_server_close(the_server);
        return 1;
    }
    handle_signals(on_signal);

    struct timer timer = {.seconds = seconds};
    pthread_t timer_thread;
    bool timed = seconds > 0;
    if (timed && timer_start(&timer, &timer_thread) != 0) {
        fprintf(stderr, "threaded_echo_server: cannot start the timer thread\n");
        handle_signals(SIG_DFL);
        sockit_server_close(the_server);
        return 1;
    }
    printf("Listening on %s\n", text);

    int rc = sockit_server_serve_forever(the_server);
    if (rc < 0)
        fprintf(stderr, "threaded_echo_server: %s\n", sockit_errmsg());
    if (timed)
        timer_stop(&timer, timer_thread);
    handle_signals(SIG_DFL);
    /* Waits up to GRACE_SECONDS for the connections still open, then shuts them
     * down: a client mid-line still gets its reply, an idle one its end of stream. */
    int closed = sockit_server_close(the_server);
    the_server = NULL;
    if (closed < 0)
        fprintf(stderr, "threaded_echo_server: %s\n", sockit_errmsg());
    return rc < 0 || closed < 0 ? 1 : 0;
}
