/* The libevent bench peer, written the way libevent's book writes servers: an
 * evconnlistener hands each connection to a bufferevent, and echo is one
 * evbuffer_add_buffer from its input to its output.
 *
 * Usage: libevent_server [--mode echo|oneshot|sink] [--port PORT]
 * The peer convention of bench/README.md. Read and write sizes are libevent's
 * defaults, as a user gets them. When a client does not read its echo, its output
 * passes ECHO_HIGH_WATER and the server stops reading that client until the output
 * is empty. SIGTERM and SIGINT arrive as evsignal events that break the loop. */
#include "peer_common.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "usage: libevent_server [--mode echo|oneshot|sink] [--port PORT]"
/* Echo bytes queued for one client before its reading pauses. */
#define ECHO_HIGH_WATER (1024 * 1024)

struct client {
    struct bufferevent *bev;
    struct client *prev, *next; /* every open client, to free them at exit */
};

static enum peer_mode mode;
static struct client *clients;

static void client_free(struct client *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev); /* closes the socket: BEV_OPT_CLOSE_ON_FREE */
    free(c);
}

static void on_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_free(arg);
}

static void on_echo_read(struct bufferevent *bev, void *arg);

/* Called once the output of a paused client is empty (write low-water mark 0). */
static void on_echo_drained(struct bufferevent *bev, void *arg)
{
    bufferevent_setcb(bev, on_echo_read, NULL, on_event, arg);
    bufferevent_enable(bev, EV_READ);
}

static void on_echo_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_add_buffer(out, bufferevent_get_input(bev));
    if (evbuffer_get_length(out) > ECHO_HIGH_WATER) {
        bufferevent_disable(bev, EV_READ);
        bufferevent_setcb(bev, on_echo_read, on_echo_drained, on_event, arg);
    }
}

static void on_reply_written(struct bufferevent *bev, void *arg)
{
    (void)bev;
    client_free(arg);
}

static void on_oneshot_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_disable(bev, EV_READ);
    /* Freed once the reply has gone out: bufferevent_free would drop it. */
    bufferevent_setcb(bev, NULL, on_reply_written, on_event, arg);
    bufferevent_write(bev, PEER_REPLY, sizeof PEER_REPLY - 1);
}

static void on_sink_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    (void)sa;
    (void)socklen;
    (void)arg;
    struct client *c = calloc(1, sizeof *c);
    struct bufferevent *bev = NULL;
    if (c != NULL)
        bev = bufferevent_socket_new(evconnlistener_get_base(listener), fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        free(c);
        close(fd);
        return;
    }
    c->bev = bev;
    c->next = clients;
    if (c->next)
        c->next->prev = c;
    clients = c;
    switch (mode) {
    case PEER_ECHO: {
        /* Replies go out at once, not held back by Nagle while a pipelined client's
         * ACK is delayed. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        bufferevent_setcb(bev, on_echo_read, NULL, on_event, c);
        break;
    }
    case PEER_ONESHOT:
        /* One read, up to what the reference server's recv(1024) takes. */
        bufferevent_set_max_single_read(bev, PEER_ONESHOT_READ);
        bufferevent_setcb(bev, on_oneshot_read, NULL, on_event, c);
        break;
    case PEER_SINK:
        bufferevent_setcb(bev, on_sink_read, NULL, on_event, c);
        break;
    }
    bufferevent_enable(bev, EV_READ);
}

static void on_accept_error(struct evconnlistener *listener, void *arg)
{
    (void)listener;
    (void)arg;
    /* libevent keeps the listener enabled, so an error like EMFILE repeats: say it once. */
    static bool reported;
    if (!reported)
        perror("libevent_server: accept");
    reported = true;
}

static void on_stop(evutil_socket_t signum, short events, void *arg)
{
    (void)signum;
    (void)events;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct peer_args args;
    peer_parse(argc, argv, "libevent_server", PEER_ALL_MODES, USAGE, &args);
    peer_prepare();
    mode = args.mode;

    struct event_base *base = event_base_new();
    if (base == NULL)
        peer_fail("event_base_new");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)args.port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *listener = evconnlistener_new_bind(
        base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        PEER_BACKLOG, (struct sockaddr *)&sin, sizeof sin);
    if (listener == NULL) {
        char what[64];
        snprintf(what, sizeof what, "bind 127.0.0.1:%d", args.port);
        peer_fail(what);
    }
    evconnlistener_set_error_cb(listener, on_accept_error);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_stop, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_stop, base);
    if (sigterm == NULL || sigint == NULL || event_add(sigterm, NULL) < 0 ||
        event_add(sigint, NULL) < 0)
        peer_fail("evsignal");
    peer_announce(peer_bound_port(evconnlistener_get_fd(listener)));

    if (event_base_dispatch(base) < 0)
        peer_fail("event_base_dispatch");

    while (clients != NULL)
        client_free(clients);
    evconnlistener_free(listener);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    libevent_global_shutdown();
    return 0;
}
