/* The API's connections: bytes in, requests cut out of them, answers out. */
#include "api.h"

#include "api_routes.h"
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct api_conn {
    struct api_conn *prev, *next;
    api_server *srv;
    sockit_stream *st;
    char *buf;
    size_t len, cap;
    bool continued; /* a 100 Continue went for the request being read */
    bool done;      /* the last answer went; nothing more is read */
} api_conn;

static void reply(sockit_stream *st, const http_request *req, const api_response *res,
                  bool keep_alive)
{
    char head[512];
    int n;
    if (res->status == 204)
        n = snprintf(head, sizeof head, "HTTP/1.1 204 No Content\r\n%s\r\n",
                     keep_alive ? "" : "Connection: close\r\n");
    else
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                     res->status, http_reason(res->status),
                     res->content_type != NULL ? res->content_type : "text/plain", res->len,
                     keep_alive ? "" : "Connection: close\r\n");
    sockit_stream_write(st, head, (size_t)n);
    bool head_only = req != NULL && strcmp(req->method, "HEAD") == 0;
    if (res->len > 0 && !head_only)
        sockit_stream_write(st, res->body, res->len);
}

/* A request the parser refused: the status and why, then the connection ends. */
static void refuse(sockit_stream *st, int status, const char *why)
{
    char body[300];
    snprintf(body, sizeof body, "{\"error\":\"%s\",\"status\":%d}\n", why, status);
    api_response res = {
        .status = status, .content_type = "application/json", .body = body, .len = strlen(body)};
    reply(st, NULL, &res, false);
}

static void finish(sockit_stream *st, api_conn *c)
{
    c->done = true;
    sockit_stream_close(st, 5.0);
}

/* Answers every whole request in the buffer, in order. */
static void serve(sockit_stream *st, api_conn *c)
{
    while (!c->done && c->len > 0) {
        http_request req;
        char why[200];
        int head = http_parse_head(c->buf, c->len, &req, why, sizeof why);
        if (head < 0) {
            refuse(st, -head, why);
            finish(st, c);
            return;
        }
        if (head == 0)
            return;
        size_t need = (size_t)head + (size_t)req.content_length;
        if (c->len < need) {
            if (req.expect_continue && !c->continued) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                sockit_stream_write(st, cont, sizeof cont - 1);
                c->continued = true;
            }
            return;
        }
        api_response res;
        api_route(c->srv->reg, &req, c->buf + head, (size_t)req.content_length, &res);
        reply(st, &req, &res, req.keep_alive);
        free(res.body);
        memmove(c->buf, c->buf + need, c->len - need);
        c->len -= need;
        c->continued = false;
        if (!req.keep_alive)
            finish(st, c);
    }
}

static void on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    api_conn *c = user;
    if (c->done)
        return;
    /* One request is at most room; what is buffered may also hold the start of
     * the next, so the check is made once the whole ones are answered. */
    size_t room = HTTP_HEAD_MAX + HTTP_BODY_MAX;
    if (c->len + len > 2 * room) {
        refuse(st, 413, "request too large");
        finish(st, c);
        return;
    }
    if (c->len + len > c->cap) {
        size_t cap = c->cap > 0 ? c->cap : 4096;
        while (cap < c->len + len)
            cap *= 2;
        char *grown = realloc(c->buf, cap);
        if (grown == NULL) {
            refuse(st, 500, "out of memory");
            finish(st, c);
            return;
        }
        c->buf = grown;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    serve(st, c);
    if (!c->done && c->len > room) {
        /* Past what one request may be, whatever the parser would say of it. */
        refuse(st, 413, "request too large");
        finish(st, c);
    }
}

static void on_close(sockit_stream *st, void *user)
{
    (void)st;
    api_conn *c = user;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->buf);
    free(c);
}

static const sockit_stream_callbacks api_callbacks = {.on_data = on_data, .on_close = on_close};
static const sockit_stream_callbacks no_callbacks = {0};

static void on_accept(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)l;
    (void)peer;
    api_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sockit_stream_set_callbacks(st, &no_callbacks);
        sockit_stream_abort(st);
        return;
    }
    c->srv = user;
    c->st = st;
    c->next = c->srv->conns;
    if (c->next != NULL)
        c->next->prev = c;
    c->srv->conns = c;
    sockit_stream_set_user(st, c);
}

int api_start(api_server *a, sockit_loop *loop, registry *reg, const char *host, int port)
{
    memset(a, 0, sizeof *a);
    a->loop = loop;
    a->reg = reg;
    sockit *s = sockit_create_server(host, port, NULL);
    if (s == NULL)
        return sockit_errcode();
    sockit_listener_config cfg = {
        .on_accept = on_accept,
        .callbacks = &api_callbacks,
        .user = a,
        .max_connections = API_CONNECTIONS_MAX,
        .idle_timeout = API_IDLE_SECS,
    };
    a->listener = sockit_listener_new(loop, s, &cfg);
    if (a->listener == NULL) {
        int code = sockit_errcode();
        sockit_close(s);
        return code;
    }
    return 0;
}

int api_address(const api_server *a, sockit_addr *out)
{
    return sockit_listener_address(a->listener, out);
}

void api_stop(api_server *a)
{
    sockit_listener_close(a->listener);
    a->listener = NULL;
    for (api_conn *c = a->conns; c != NULL; c = c->next)
        if (!c->done)
            finish(c->st, c);
}
