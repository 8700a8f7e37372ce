/* The echo server of Python's selectors documentation:
 *
 *     sel = selectors.DefaultSelector()
 *
 *     def accept(sock, mask):
 *         conn, addr = sock.accept()  # Should be ready
 *         print('accepted', conn, 'from', addr)
 *         conn.setblocking(False)
 *         sel.register(conn, selectors.EVENT_READ, read)
 *
 *     def read(conn, mask):
 *         data = conn.recv(1000)  # Should be ready
 *         if data:
 *             print('echoing', repr(data), 'to', conn)
 *             conn.send(data)  # Hope it won't block
 *         else:
 *             print('closing', conn)
 *             sel.unregister(conn)
 *             conn.close()
 *
 *     sock = socket.socket()
 *     sock.bind(('localhost', 1234))
 *     sock.listen(100)
 *     sock.setblocking(False)
 *     sel.register(sock, selectors.EVENT_READ, accept)
 *
 *     while True:
 *         events = sel.select()
 *         for key, mask in events:
 *             callback = key.data
 *             callback(key.fileobj, mask)
 *
 * written with sockit. Each registration's data is a handler whose first member is
 * its callback, as key.data is the callback above. Where the original hopes send
 * won't block, this one keeps what the kernel did not take and waits for
 * EVENT_WRITE (reading nothing more from that client meanwhile). SIGINT and SIGTERM
 * reach the loop through a pipe registered like any socket (Python's
 * signal.set_wakeup_fd), so the server stops cleanly: every connection closed, exit 0.
 * examples/python/selector_echo_server.py is its twin and prints the same lines.
 *
 * Usage: selector_echo_server [PORT [N]]   PORT defaults to 12345 (0 picks a free
 * one, printed on the "Listening on" line); N > 0 accepts N connections, then exits
 * once they have closed. */
/* sigaction and pipe2's flags are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct handler handler;
typedef void (*callback)(handler *h, int mask);
struct handler {
    callback fn; /* first: key->data points at it */
};

typedef struct connection {
    handler h;
    sockit *sock;
    char peer[SOCKIT_ADDRSTRLEN];
    char buf[1000];
    size_t len, sent; /* buf[sent..len) is still to be sent */
} connection;

static sockit_selector *sel;
static bool running = true;
static long open_connections;
static long accepts_left = -1; /* forever */

static void fail(const char *what)
{
    fprintf(stderr, "selector_echo_server: %s%s\n", what ? what : "", sockit_errmsg());
}

/* ---- the signal pipe ---------------------------------------------------------- */

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    /* Nothing to do if it fails: a full pipe means a stop is already on its way. */
    ssize_t written = write(signal_pipe[1], &byte, 1);
    (void)written;
    errno = saved;
}

static void stop(handler *h, int mask)
{
    (void)h;
    (void)mask;
    unsigned char sig = 0;
    if (read(signal_pipe[0], &sig, 1) == 1)
        printf("Stopping on %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    running = false;
}

static handler stopper = {stop};

static void handle_signals(void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- connections -------------------------------------------------------------- */

static void close_connection(connection *c)
{
    sockit_selector_unregister(sel, sockit_fileno(c->sock));
    sockit_close(c->sock);
    free(c);
    open_connections--;
}

/* Sends what is left in c->buf; returns false if the connection failed. */
static bool flush(connection *c)
{
    while (c->sent < c->len) {
        ssize_t n = sockit_send(c->sock, c->buf + c->sent, c->len - c->sent, 0);
        if (n == SOCKIT_EWOULDBLOCK)
            return true;
        if (n < 0) {
            fprintf(stderr, "selector_echo_server: %s: %s\n", c->peer, sockit_errmsg());
            return false;
        }
        c->sent += (size_t)n;
    }
    return true;
}

static void serve(handler *h, int mask)
{
    connection *c = (connection *)h;
    int fd = sockit_fileno(c->sock);
    if (c->sent < c->len) { /* waiting to write: mask has EVENT_WRITE */
        (void)mask;
        if (!flush(c)) {
            close_connection(c);
            return;
        }
        if (c->sent == c->len && sockit_selector_modify(sel, fd, SOCKIT_EVENT_READ, h) < 0)
            fail(NULL);
        return;
    }
    ssize_t n = sockit_recv(c->sock, c->buf, sizeof c->buf, 0);
    if (n == SOCKIT_EWOULDBLOCK)
        return;
    if (n > 0) {
        printf("Echoing %zd bytes to %s\n", n, c->peer);
        c->len = (size_t)n;
        c->sent = 0;
        if (!flush(c)) {
            close_connection(c);
            return;
        }
        /* The kernel did not take it all: wait until it can, reading nothing more. */
        if (c->sent < c->len && sockit_selector_modify(sel, fd, SOCKIT_EVENT_WRITE, h) < 0)
            fail(NULL);
        return;
    }
    if (n < 0)
        fprintf(stderr, "selector_echo_server: %s: %s\n", c->peer, sockit_errmsg());
    printf("Closing %s\n", c->peer);
    close_connection(c);
}

/* ---- the listener ------------------------------------------------------------- */

typedef struct listener {
    handler h;
    sockit *sock;
} listener;

static void stop_accepting(listener *l)
{
    sockit_selector_unregister(sel, sockit_fileno(l->sock));
    sockit_close(l->sock);
    l->sock = NULL;
}

static void accept_connection(handler *h, int mask)
{
    (void)mask;
    listener *l = (listener *)h;
    sockit_addr addr;
    sockit *conn = sockit_accept(l->sock, &addr); /* Should be ready */
    if (conn == NULL) {
        if (sockit_errcode() != SOCKIT_EWOULDBLOCK)
            fail("accept: ");
        return;
    }
    connection *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "selector_echo_server: out of memory\n");
        sockit_close(conn);
        return;
    }
    c->h.fn = serve;
    c->sock = conn;
    sockit_addr_format(&addr, c->peer, sizeof c->peer);
    printf("Accepted %s\n", c->peer);
    if (sockit_setblocking(conn, false) < 0 ||
        sockit_selector_register_socket(sel, conn, SOCKIT_EVENT_READ, &c->h) < 0) {
        fail(NULL);
        sockit_close(conn);
        free(c);
        return;
    }
    open_connections++;
    if (accepts_left > 0 && --accepts_left == 0)
        stop_accepting(l);
}

static int usage_error(const char *what, const char *text, const char *why)
{
    fprintf(stderr, "selector_echo_server: %s '%s': %s\n", what, text, why);
    return 2;
}

int main(int argc, char **argv)
{
    int port = 12345;
    if (argc > 3) {
        fprintf(stderr, "usage: selector_echo_server [PORT [N]]\n");
        return 2;
    }
    if (argc > 1 && (port = sockit_parse_port(argv[1])) < 0) {
        fprintf(stderr, "selector_echo_server: %s\n", sockit_errmsg()); /* the text and why */
        return 2;
    }
    if (argc > 2) {
        char *end;
        accepts_left = strtol(argv[2], &end, 10);
        if (end == argv[2] || *end != '\0' || accepts_left <= 0)
            return usage_error("count", argv[2], "not a positive number");
    }
    /* Tests and scripts read our output through a pipe: one line at a time. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    sel = sockit_selector_new(NULL); /* DefaultSelector() */
    if (sel == NULL) {
        fail(NULL);
        return 1;
    }
    listener l = {{accept_connection}, NULL};
    sockit_server_options opts = {.family = AF_INET, .backlog = 100};
    l.sock = sockit_create_server("localhost", port, &opts);
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    if (l.sock == NULL || sockit_getsockname(l.sock, &me) < 0 ||
        sockit_addr_format(&me, text, sizeof text) < 0 || sockit_setblocking(l.sock, false) < 0 ||
        sockit_selector_register_socket(sel, l.sock, SOCKIT_EVENT_READ, &l.h) < 0) {
        fail(NULL);
        sockit_close(l.sock);
        sockit_selector_close(sel);
        return 1;
    }
    if (pipe(signal_pipe) < 0 || fcntl(signal_pipe[0], F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(signal_pipe[1], F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(signal_pipe[0], F_SETFL, O_NONBLOCK) < 0 ||
        sockit_selector_register(sel, signal_pipe[0], SOCKIT_EVENT_READ, &stopper) < 0) {
        fprintf(stderr, "selector_echo_server: signal pipe: %s\n", strerror(errno));
        return 1;
    }
    handle_signals(on_signal);
    printf("Listening on %s\n", text);

    int rc = 0;
    sockit_selector_event events[64];
    while (running && (l.sock != NULL || open_connections > 0)) {
        ssize_t n = sockit_selector_select(sel, -1, events, 64);
        if (n < 0) {
            fail(NULL);
            rc = 1;
            break;
        }
        for (ssize_t i = 0; i < n && running; i++) {
            handler *h = events[i].key->data;
            h->fn(h, events[i].events);
        }
    }

    handle_signals(SIG_DFL);
    /* Whatever is still registered is a connection, the listener or the pipe. */
    for (int fd = 0; sockit_selector_count(sel) > 0; fd++) {
        const sockit_selector_key *key = sockit_selector_get_key(sel, fd);
        if (key == NULL)
            continue;
        handler *h = key->data;
        if (h->fn == serve)
            close_connection((connection *)h);
        else
            sockit_selector_unregister(sel, fd);
    }
    sockit_close(l.sock);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    sockit_selector_close(sel);
    return rc;
}
