/* The libuv bench peer, written the way libuv's own guide writes servers: a uv_tcp_t
 * per client, uv_read_start with a malloc'd buffer, uv_write of that buffer, freed
 * in the write callback.
 *
 * Usage: libuv_server [--mode echo|oneshot|sink] [--port PORT]
 * The peer convention of bench/README.md. When a client does not read its echo, the
 * bytes queued for it pass ECHO_HIGH_WATER and the server stops reading that client
 * until the queue is empty again. SIGTERM and SIGINT arrive as uv_signal_t: every
 * handle is closed, the loop runs dry and the program exits 0. */
#include "peer_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#define USAGE "usage: libuv_server [--mode echo|oneshot|sink] [--port PORT]"
/* Echo bytes queued for one client before its reading pauses. */
#define ECHO_HIGH_WATER (1024 * 1024)

struct client {
    uv_tcp_t tcp; /* first, so a handle pointer is the client pointer */
    bool paused;  /* reading stopped until the write queue drains */
};

/* An echo in flight: the request and the buffer it sends, freed together. */
struct echo_write {
    uv_write_t req;
    char *data;
};

static enum peer_mode mode;
static uv_tcp_t listener;
static uv_signal_t sigterm, sigint;
/* sink and oneshot throw the bytes away: one buffer serves every read. */
static char discard[64 * 1024];

static void fail(const char *what, int code)
{
    fprintf(stderr, "libuv_server: %s: %s\n", what, uv_strerror(code));
    exit(1);
}

static void free_client(uv_handle_t *handle) { free(handle); }

static void close_client(uv_stream_t *stream)
{
    if (!uv_is_closing((uv_handle_t *)stream))
        uv_close((uv_handle_t *)stream, free_client);
}

static void alloc_echo(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void alloc_discard(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    /* oneshot reads once, up to what the reference server's recv(1024) takes. */
    *buf = uv_buf_init(discard, mode == PEER_ONESHOT ? PEER_ONESHOT_READ : sizeof discard);
}

static void on_read_echo(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void on_echo_written(uv_write_t *req, int status)
{
    struct echo_write *w = (struct echo_write *)req;
    uv_stream_t *stream = req->handle;
    struct client *c = (struct client *)stream;
    free(w->data);
    free(w);
    if (status < 0) {
        close_client(stream);
        return;
    }
    if (c->paused && uv_stream_get_write_queue_size(stream) == 0) {
        c->paused = false;
        uv_read_start(stream, alloc_echo, on_read_echo);
    }
}

static void on_read_echo(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    if (nread <= 0) {
        free(buf->base);
        if (nread < 0) /* UV_EOF or an error; 0 is EAGAIN */
            close_client(stream);
        return;
    }
    struct echo_write *w = malloc(sizeof *w);
    if (w == NULL) {
        free(buf->base);
        close_client(stream);
        return;
    }
    w->data = buf->base;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
    if (uv_write(&w->req, stream, &out, 1, on_echo_written) < 0) {
        free(w->data);
        free(w);
        close_client(stream);
        return;
    }
    if (uv_stream_get_write_queue_size(stream) > ECHO_HIGH_WATER) {
        ((struct client *)stream)->paused = true;
        uv_read_stop(stream);
    }
}

static void on_reply_written(uv_write_t *req, int status)
{
    (void)status;
    close_client(req->handle);
    free(req);
}

static void on_read_oneshot(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread == 0)
        return;
    uv_read_stop(stream);
    if (nread < 0) {
        close_client(stream);
        return;
    }
    static char reply[] = PEER_REPLY;
    uv_buf_t out = uv_buf_init(reply, sizeof reply - 1);
    uv_write_t *req = malloc(sizeof *req);
    if (req == NULL || uv_write(req, stream, &out, 1, on_reply_written) < 0) {
        free(req);
        close_client(stream);
    }
}

static void on_read_sink(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        close_client(stream);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        fprintf(stderr, "libuv_server: accept: %s\n", uv_strerror(status));
        return;
    }
    struct client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c; /* marks a client for close_all */
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        close_client((uv_stream_t *)&c->tcp);
        return;
    }
    uv_stream_t *stream = (uv_stream_t *)&c->tcp;
    switch (mode) {
    case PEER_ECHO:
        /* Replies go out at once, not held back by Nagle while a pipelined client's
         * ACK is delayed. */
        uv_tcp_nodelay(&c->tcp, 1);
        uv_read_start(stream, alloc_echo, on_read_echo);
        break;
    case PEER_ONESHOT:
        uv_read_start(stream, alloc_discard, on_read_oneshot);
        break;
    case PEER_SINK:
        uv_read_start(stream, alloc_discard, on_read_sink);
        break;
    }
}

static void close_handle(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, handle->data != NULL ? free_client : NULL);
}

/* Closing every handle cancels pending writes (their callbacks free them) and lets
 * uv_run return. */
static void on_stop(uv_signal_t *signal, int signum)
{
    (void)signum;
    uv_walk(signal->loop, close_handle, NULL);
}

int main(int argc, char **argv)
{
    struct peer_args args;
    peer_parse(argc, argv, "libuv_server", PEER_ALL_MODES, USAGE, &args);
    peer_prepare();
    mode = args.mode;

    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in addr;
    int rc;
    uv_tcp_init(loop, &listener);
    char where[64];
    snprintf(where, sizeof where, "listen on 127.0.0.1:%d", args.port);
    /* libuv binds when it listens: an address in use shows up at uv_listen. */
    if ((rc = uv_ip4_addr("127.0.0.1", args.port, &addr)) < 0 ||
        (rc = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&listener, PEER_BACKLOG, on_connection)) < 0)
        fail(where, rc);
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigterm, on_stop, SIGTERM);
    uv_signal_start(&sigint, on_stop, SIGINT);

    struct sockaddr_in bound;
    int len = sizeof bound;
    if ((rc = uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len)) < 0)
        fail("getsockname", rc);
    peer_announce(ntohs(bound.sin_port));

    uv_run(loop, UV_RUN_DEFAULT);
    if ((rc = uv_loop_close(loop)) < 0)
        fail("loop close", rc);
    return 0;
}
