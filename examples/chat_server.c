/* A chat server on the event-driven server (SOCKIT_EVENTS): every line a client
 * sends goes to every other client, prefixed with the sender's address; joins and
 * leaves are announced. All clients live on one loop, so a callback of one
 * connection may write to any other: the list of clients is the room (the server's
 * config.user), and each stream's user pointer is its client.
 *
 * A client that does not read cannot make the server hold its messages without
 * bound: once its stream's queue passes the hard limit, a write fails with -ENOBUFS
 * and that client is dropped ("too slow"). A line over 1024 bytes is refused the
 * same way (SOCKIT_ELINELEN). examples/python/chat_server.py is its asyncio twin:
 * same arguments, same lines to clients and on stdout.
 *
 * Usage: chat_server [PORT]   PORT defaults to 12345 (0 picks a free one, printed on
 * the "Listening on" line). SIGINT and SIGTERM stop it: exit 0. */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 1024

typedef struct client {
    sockit_stream *st;
    char name[SOCKIT_ADDRSTRLEN];
    struct client *prev, *next;
} client;

typedef struct room {
    client *clients;
} room;

static sockit_server *server;
static room the_room;

static void on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(server);
}

/* Sends text to every client but `except`. */
static void broadcast(room *r, const client *except, const char *text, size_t len)
{
    for (client *c = r->clients; c != NULL; c = c->next) {
        if (c == except)
            continue;
        /* -ENOBUFS: past its queue's hard limit, it has not read for a long while.
         * (-EPIPE: it is closing already, as every client does when the server
         * stops.) */
        if (sockit_stream_write(c->st, text, len) == -ENOBUFS) {
            fprintf(stderr, "chat_server: %s: too slow, dropped\n", c->name);
            sockit_stream_abort(c->st);
        }
    }
}

static void on_line(sockit_stream *st, const char *line, size_t len, void *user)
{
    client *me = user;
    room *r = &the_room;
    char msg[SOCKIT_ADDRSTRLEN + LINE_MAX_BYTES + 4];
    /* The line arrives with its '\n', except a last one cut by the client's end. */
    if (len > 0 && line[len - 1] == '\n')
        len--;
    int n = snprintf(msg, sizeof msg, "%s: %.*s\n", me->name, (int)len, line);
    broadcast(r, me, msg, (size_t)n);
    (void)st;
}

static void on_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    client *me = user;
    if (code == SOCKIT_ELINELEN)
        fprintf(stderr, "chat_server: %s: line over %d bytes, dropped\n", me->name, LINE_MAX_BYTES);
}

static void on_close(sockit_stream *st, void *user)
{
    (void)st;
    client *me = user;
    room *r = &the_room;
    if (me->prev != NULL)
        me->prev->next = me->next;
    else
        r->clients = me->next;
    if (me->next != NULL)
        me->next->prev = me->prev;
    printf("left %s\n", me->name);
    fflush(stdout);
    char msg[SOCKIT_ADDRSTRLEN + 16];
    int n = snprintf(msg, sizeof msg, "* %s left\n", me->name);
    broadcast(r, NULL, msg, (size_t)n);
    free(me);
}

static const sockit_stream_callbacks chat_callbacks = {
    .on_data = on_line, .on_error = on_error, .on_close = on_close};

static void on_connect(sockit_server *srv, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)srv;
    room *r = user; /* config.user: the room */
    client *me = calloc(1, sizeof *me);
    if (me == NULL) {
        sockit_stream_abort(st);
        return;
    }
    me->st = st;
    sockit_addr_format(peer, me->name, sizeof me->name);
    sockit_stream_set_user(st, me);
    sockit_stream_read_lines(st, LINE_MAX_BYTES);

    char msg[SOCKIT_ADDRSTRLEN + 32];
    int n = snprintf(msg, sizeof msg, "* %s joined\n", me->name);
    broadcast(r, NULL, msg, (size_t)n);
    n = snprintf(msg, sizeof msg, "welcome, you are %s\n", me->name);
    sockit_stream_write(st, msg, (size_t)n);
    me->next = r->clients;
    if (r->clients != NULL)
        r->clients->prev = me;
    r->clients = me;
    printf("joined %s\n", me->name);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int port = 12345;
    if (argc > 2) {
        fprintf(stderr, "usage: chat_server [PORT]\n");
        return 2;
    }
    if (argc == 2 && (port = sockit_parse_port(argv[1])) < 0) {
        fprintf(stderr, "chat_server: %s\n", sockit_errmsg());
        return 2;
    }
    sockit_server_config cfg = {
        .mode = SOCKIT_EVENTS,
        .stream = &chat_callbacks,
        .on_connect = on_connect,
        .user = &the_room,
        .idle_timeout = -1, /* a chat client may listen for hours without a word */
    };
    server = sockit_server_new("127.0.0.1", port, SOCK_STREAM, &cfg);
    if (server == NULL) {
        fprintf(stderr, "chat_server: %s\n", sockit_errmsg());
        return 1;
    }
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    sockit_server_address(server, &me);
    sockit_addr_format(&me, text, sizeof text);
    printf("Listening on %s\n", text);
    fflush(stdout);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = sockit_server_serve_forever(server);
    if (rc < 0)
        fprintf(stderr, "chat_server: %s\n", sockit_errmsg());
    /* Each client still here is closed (its on_close says it left). */
    sockit_server_close(server);
    return rc < 0 ? 1 : 0;
}
