/* sockit_listener (sockit.h section 10): accepting clients as streams with the
 * config's callbacks and user or on_accept's, verify, max_connections, pause and
 * resume, the bound address, closing the listener under open streams, the idle
 * timeout it gives its streams, running out of descriptors (shed, no spinning,
 * recovery), and a chat whose callbacks reach the other connections. Runs once per
 * backend (CTest entries test_listener_epoll and test_listener_poll set
 * SOCKIT_LOOP_BACKEND).
 *
 * Clients are blocking sockits in this thread, read without waiting (MSG_DONTWAIT)
 * between iterations of the loop, so no thread is needed; every wait has a deadline. */
#include "harness.h"
#include "loop_harness.h"
#include "sys.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the server side ------------------------------------------------------------ */

enum { MAX_CONNS = 16 };

struct server;

/* One connection, made by on_accept. */
struct conn {
    struct server *srv;
    sockit_stream *st;
    sockit_addr peer;
    char data[512];
    size_t len;
    int late; /* callbacks after on_close */
    bool closed;
};

enum { SERVER_MAGIC = 0x5e7e };

struct server {
    int magic; /* SERVER_MAGIC once listen_on made its listener */
    sockit_listener *l;
    /* Shared-user mode (no on_accept): what every stream's callbacks saw. */
    size_t bytes;
    int data_calls;
    int wrong_user; /* callbacks whose user was not this server */
    int closes;
    int errors;
    int last_error;
    char errmsg[256]; /* sockit_errmsg() in the last stream on_error */
    /* on_accept mode. */
    int accepts;
    struct conn *conns[MAX_CONNS];
    int nconns; /* open ones, in accept order */
    int freed;
    double closed_at; /* harness_now() at the last on_close */
    double accepted_at;
    bool lines;         /* on_accept puts the stream in line mode */
    bool chat;          /* a line is written to every other connection */
    double stream_idle; /* on_accept sets this idle timeout when > 0 */
    bool close_in_accept;
    bool close_listener_in_accept;
    /* verify. */
    int verify_calls;
    bool reject;
    sockit_addr verified;
    /* Listener errors. */
    int listener_errors;
    int listener_code;
};

static void shared_on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct server *srv = user;
    (void)st;
    srv->wrong_user += srv == NULL || srv->magic != SERVER_MAGIC;
    srv->bytes += len;
    srv->data_calls++;
    assert_ok(sockit_stream_write(st, data, len)); /* echo */
}

static void shared_on_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    struct server *srv = user;
    srv->errors++;
    srv->last_error = code;
    snprintf(srv->errmsg, sizeof srv->errmsg, "%s", sockit_errmsg());
}

static void shared_on_close(sockit_stream *st, void *user)
{
    (void)st;
    struct server *srv = user;
    srv->closes++;
}

/* No on_eof: a client that ends its side gets its stream closed. */
static const sockit_stream_callbacks shared_cb = {
    .on_data = shared_on_data, .on_error = shared_on_error, .on_close = shared_on_close};

static void drop_conn(struct server *srv, struct conn *c)
{
    for (int i = 0; i < srv->nconns; i++) {
        if (srv->conns[i] == c) {
            memmove(&srv->conns[i], &srv->conns[i + 1],
                    (size_t)(srv->nconns - i - 1) * sizeof srv->conns[0]);
            srv->nconns--;
            return;
        }
    }
}

static void conn_on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct conn *c = user;
    c->late += c->closed;
    size_t keep = len < sizeof c->data - c->len - 1 ? len : sizeof c->data - c->len - 1;
    memcpy(c->data + c->len, data, keep);
    c->len += keep;
    c->data[c->len] = '\0';
    struct server *srv = c->srv;
    if (!srv->chat) {
        assert_ok(sockit_stream_write(st, data, len));
        return;
    }
    if (len == 6 && memcmp(data, "/kick\n", 6) == 0) {
        /* Close every other connection from inside this one's callback. */
        for (int i = 0; i < srv->nconns; i++)
            if (srv->conns[i] != c)
                sockit_stream_close(srv->conns[i]->st, -1);
        return;
    }
    for (int i = 0; i < srv->nconns; i++) {
        if (srv->conns[i] == c)
            continue;
        /* A connection that is closing (its on_close not yet run) refuses: -EPIPE. */
        int rc = sockit_stream_write(srv->conns[i]->st, data, len);
        assert_true(rc == 0 || rc == -EPIPE);
    }
}

static void conn_on_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    struct conn *c = user;
    c->late += c->closed;
    c->srv->errors++;
    c->srv->last_error = code;
    snprintf(c->srv->errmsg, sizeof c->srv->errmsg, "%s", sockit_errmsg());
}

static void conn_on_close(sockit_stream *st, void *user)
{
    struct conn *c = user;
    assert_ptr_equal(c->st, st);
    c->late += c->closed;
    c->closed = true;
    c->srv->closes++;
    c->srv->freed++;
    c->srv->closed_at = harness_now();
    drop_conn(c->srv, c);
    free(c);
}

static const sockit_stream_callbacks conn_cb = {
    .on_data = conn_on_data, .on_error = conn_on_error, .on_close = conn_on_close};

static void on_accept(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    struct server *srv = user;
    assert_ptr_equal(l, srv->l);
    srv->accepts++;
    srv->accepted_at = harness_now();
    struct conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->srv = srv;
    c->st = st;
    c->peer = *peer;
    /* The stream starts with the config's user. */
    assert_ptr_equal(sockit_stream_user(st), srv);
    sockit_stream_set_user(st, c);
    sockit_stream_set_callbacks(st, &conn_cb);
    if (srv->lines)
        assert_ok(sockit_stream_read_lines(st, 0));
    if (srv->stream_idle > 0)
        assert_ok(sockit_stream_set_idle_timeout(st, srv->stream_idle));
    assert_true(srv->nconns < MAX_CONNS);
    srv->conns[srv->nconns++] = c;
    if (srv->close_in_accept)
        sockit_stream_close(st, -1);
    if (srv->close_listener_in_accept) {
        sockit_listener_close(l);
        srv->l = NULL;
    }
}

static bool verify(sockit_listener *l, const sockit_addr *peer, void *user)
{
    (void)l;
    struct server *srv = user;
    srv->verify_calls++;
    srv->verified = *peer;
    return !srv->reject;
}

static void listener_error(sockit_listener *l, int code, void *user)
{
    (void)l;
    struct server *srv = user;
    srv->listener_errors++;
    srv->listener_code = code;
}

/* A listener on 127.0.0.1 with a free port; the port goes to *port. */
static sockit_listener *listen_on(sockit_loop *loop, struct server *srv,
                                  sockit_listener_config *cfg, int *port)
{
    sockit *s = sockit_create_server("127.0.0.1", 0, NULL);
    assert_sock(s);
    sockit_addr bound;
    assert_ok(sockit_getsockname(s, &bound));
    if (cfg->user == NULL)
        cfg->user = srv;
    srv->magic = SERVER_MAGIC;
    srv->l = sockit_listener_new(loop, s, cfg);
    assert_sock(srv->l);
    sockit_addr a;
    assert_ok(sockit_listener_address(srv->l, &a));
    assert_true(sockit_addr_equal(&a, &bound));
    *port = sockit_addr_port(&a);
    assert_true(*port > 0);
    return srv->l;
}

/* ---- clients -------------------------------------------------------------------- */

static sockit *client(int port)
{
    sockit *c = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    assert_sock(c);
    return c;
}

static void client_send(sockit *c, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(send(sockit_fileno(c), text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* What a client has read, and how its last read ended. */
struct inbox {
    char buf[4096];
    size_t len;
    bool eof;
    int err;
};

static void inbox_poll(sockit *c, struct inbox *in)
{
    while (!in->eof && in->err == 0 && in->len < sizeof in->buf - 1) {
        ssize_t n =
            recv(sockit_fileno(c), in->buf + in->len, sizeof in->buf - 1 - in->len, MSG_DONTWAIT);
        if (n > 0) {
            in->len += (size_t)n;
            in->buf[in->len] = '\0';
        } else if (n == 0) {
            in->eof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (errno != EINTR) {
            in->err = -errno;
        }
    }
}

/* Runs the loop until the client has want bytes (until_end: the end of stream or an
 * error) or secs pass. */
static void inbox_wait(sockit_loop *loop, sockit *c, struct inbox *in, size_t want, bool until_end,
                       double secs)
{
    double until = harness_now() + secs;
    for (;;) {
        inbox_poll(c, in);
        if (until_end ? in->eof || in->err != 0 : in->len >= want || in->eof || in->err != 0)
            return;
        if (harness_now() >= until)
            return;
        sockit_loop_run_once(loop, 0.005);
    }
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_each_client_becomes_a_stream_with_the_config_callbacks_and_user(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.callbacks = &shared_cb;
    cfg.user = &srv;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    assert_int_equal(sockit_listener_count(srv.l), 0);
    enum { N = 5 };
    sockit *c[N];
    char msg[N][32];
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        c[i] = client(port);
        snprintf(msg[i], sizeof msg[i], "client %d says hi\n", i);
        client_send(c[i], msg[i]);
        total += strlen(msg[i]);
    }
    RUN_UNTIL(loop, srv.bytes >= total && sockit_listener_count(srv.l) == N, 5.0);
    assert_int_equal(srv.bytes, total);
    assert_int_equal(sockit_listener_count(srv.l), N);
    assert_int_equal(srv.wrong_user, 0);
    /* Each stream is its own connection: each client gets its own bytes back. */
    for (int i = 0; i < N; i++) {
        struct inbox in = {0};
        inbox_wait(loop, c[i], &in, strlen(msg[i]), false, 5.0);
        assert_string_equal(in.buf, msg[i]);
    }
    /* Clients that end their side: their streams close (no on_eof) and are counted
     * out. */
    for (int i = 0; i < N; i++)
        assert_ok(sockit_close(c[i]));
    RUN_UNTIL(loop, srv.closes == N, 5.0);
    assert_int_equal(srv.closes, N);
    assert_int_equal(sockit_listener_count(srv.l), 0);
    assert_int_equal(srv.errors, 0);
    sockit_listener_close(srv.l);
    sockit_listener_close(NULL);
    close_loop(loop);
}

static void test_on_accept_gives_each_stream_its_own_user_and_callbacks(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    cfg.callbacks = &shared_cb; /* replaced by on_accept before any callback */
    cfg.user = &srv;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    enum { N = 3 };
    sockit *c[N];
    sockit_addr local[N];
    for (int i = 0; i < N; i++) {
        c[i] = client(port);
        assert_ok(sockit_getsockname(c[i], &local[i]));
        char m[8];
        snprintf(m, sizeof m, "<%d>", i);
        client_send(c[i], m);
    }
    RUN_UNTIL(loop, srv.accepts == N, 5.0);
    assert_int_equal(srv.accepts, N);
    for (int i = 0; i < N; i++) {
        struct inbox in = {0};
        inbox_wait(loop, c[i], &in, 3, false, 5.0);
        char m[8];
        snprintf(m, sizeof m, "<%d>", i);
        assert_string_equal(in.buf, m);
    }
    /* The callbacks went to each connection's own state, with its peer. */
    assert_int_equal(srv.data_calls, 0);
    assert_int_equal(srv.nconns, N);
    for (int i = 0; i < N; i++) {
        struct conn *k = NULL;
        for (int j = 0; j < srv.nconns; j++)
            if (sockit_addr_equal(&srv.conns[j]->peer, &local[i]))
                k = srv.conns[j];
        assert_non_null(k);
        char m[8];
        snprintf(m, sizeof m, "<%d>", i);
        assert_string_equal(k->data, m);
        sockit_addr p;
        assert_ok(sockit_stream_peer(k->st, &p));
        assert_true(sockit_addr_equal(&p, &local[i]));
    }
    for (int i = 0; i < N; i++)
        assert_ok(sockit_close(c[i]));
    RUN_UNTIL(loop, srv.freed == N, 5.0);
    assert_int_equal(srv.freed, N);
    assert_int_equal(srv.closes, N);
    assert_int_equal(sockit_listener_count(srv.l), 0);
    sockit_listener_close(srv.l);
    close_loop(loop);
}

static void test_verify_rejecting_closes_the_client_and_makes_no_stream(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    srv.reject = true;
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    cfg.verify = verify;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    sockit *c = client(port);
    sockit_addr local;
    assert_ok(sockit_getsockname(c, &local));
    struct inbox in = {0};
    inbox_wait(loop, c, &in, 0, true, 5.0);
    assert_true(in.eof);
    assert_int_equal(in.len, 0);
    assert_int_equal(srv.verify_calls, 1);
    assert_true(sockit_addr_equal(&srv.verified, &local));
    assert_int_equal(srv.accepts, 0);
    assert_int_equal(sockit_listener_count(srv.l), 0);
    assert_ok(sockit_close(c));
    /* Accepted again once verify says yes. */
    srv.reject = false;
    c = client(port);
    client_send(c, "ok");
    struct inbox in2 = {0};
    inbox_wait(loop, c, &in2, 2, false, 5.0);
    assert_string_equal(in2.buf, "ok");
    assert_int_equal(srv.verify_calls, 2);
    assert_int_equal(srv.accepts, 1);
    assert_ok(sockit_close(c));
    RUN_UNTIL(loop, srv.freed == 1, 5.0);
    assert_int_equal(srv.freed, 1);
    sockit_listener_close(srv.l);
    close_loop(loop);
}

static void test_max_connections_serves_the_next_client_when_one_closes(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    cfg.max_connections = 2;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    enum { N = 4 };
    sockit *c[N];
    struct inbox in[N];
    memset(in, 0, sizeof in);
    for (int i = 0; i < N; i++) {
        c[i] = client(port); /* the kernel completes the handshake; they wait there */
        char m[4] = {'c', (char)('0' + i), '\n', '\0'};
        client_send(c[i], m);
    }
    RUN_UNTIL(loop, srv.accepts >= 2, 5.0);
    run_for(loop, 0.3);
    assert_int_equal(srv.accepts, 2);
    assert_int_equal(sockit_listener_count(srv.l), 2);
    /* Who was served got its echo; the others nothing. */
    int served[N], nserved = 0;
    for (int i = 0; i < N; i++) {
        inbox_poll(c[i], &in[i]);
        if (in[i].len > 0)
            served[nserved++] = i;
    }
    assert_int_equal(nserved, 2);
    for (int round = 0; round < 2; round++) {
        /* One served client leaves: the next waiting one is served. */
        int gone = served[round];
        assert_ok(sockit_close(c[gone]));
        c[gone] = NULL;
        RUN_UNTIL(loop, srv.accepts == 3 + round, 5.0);
        run_for(loop, 0.1);
        assert_int_equal(srv.accepts, 3 + round);
        assert_int_equal(sockit_listener_count(srv.l), 2);
        for (int i = 0; i < N; i++) {
            if (c[i] == NULL || in[i].len > 0)
                continue;
            inbox_poll(c[i], &in[i]);
            if (in[i].len > 0)
                served[nserved++] = i;
        }
        if (nserved != 3 + round) { /* the echo may take an iteration more */
            for (int i = 0; i < N; i++)
                if (c[i] != NULL && in[i].len == 0)
                    inbox_wait(loop, c[i], &in[i], 1, false, 0.5);
            nserved = 0;
            for (int i = 0; i < N; i++)
                if (c[i] == NULL || in[i].len > 0)
                    served[nserved++] = i;
        }
        assert_int_equal(nserved, 3 + round);
    }
    for (int i = 0; i < N; i++) {
        if (c[i] == NULL)
            continue;
        char m[4] = {'c', (char)('0' + i), '\n', '\0'};
        inbox_wait(loop, c[i], &in[i], 3, false, 5.0);
        assert_string_equal(in[i].buf, m);
        assert_ok(sockit_close(c[i]));
    }
    RUN_UNTIL(loop, srv.freed == N, 5.0);
    assert_int_equal(srv.freed, N);
    assert_int_equal(sockit_listener_count(srv.l), 0);
    sockit_listener_close(srv.l);
    close_loop(loop);
}

static void test_pause_stops_accepting_and_resume_starts_again(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    assert_ok(sockit_listener_pause(srv.l));
    sockit *c = client(port);
    client_send(c, "wait");
    run_for(loop, 0.3);
    assert_int_equal(srv.accepts, 0);
    assert_ok(sockit_listener_resume(srv.l));
    struct inbox in = {0};
    inbox_wait(loop, c, &in, 4, false, 5.0);
    assert_string_equal(in.buf, "wait");
    assert_int_equal(srv.accepts, 1);
    /* Streams already open go on while paused. */
    assert_ok(sockit_listener_pause(srv.l));
    client_send(c, "more");
    inbox_wait(loop, c, &in, 8, false, 5.0);
    assert_string_equal(in.buf, "waitmore");
    assert_ok(sockit_close(c));
    RUN_UNTIL(loop, srv.freed == 1, 5.0);
    assert_int_equal(srv.freed, 1);
    sockit_listener_close(srv.l);
    close_loop(loop);
}

static void test_listener_close_leaves_its_streams_open(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    sockit *c = client(port);
    client_send(c, "a");
    struct inbox in = {0};
    inbox_wait(loop, c, &in, 1, false, 5.0);
    assert_int_equal(srv.accepts, 1);
    sockit_listener_close(srv.l);
    srv.l = NULL;
    /* Nobody listens any more. */
    sockit *late = sockit_create_connection("127.0.0.1", port, 2.0, NULL);
    assert_null(late);
    assert_int_equal(sockit_errcode(), -ECONNREFUSED);
    /* The open stream lives on. */
    client_send(c, "fter close");
    inbox_wait(loop, c, &in, 11, false, 5.0);
    assert_string_equal(in.buf, "after close");
    assert_int_equal(srv.closes, 0);
    assert_ok(sockit_close(c));
    RUN_UNTIL(loop, srv.freed == 1, 5.0);
    assert_int_equal(srv.freed, 1);
    close_loop(loop);
}

static void test_config_idle_timeout_closes_idle_streams_and_zero_is_not_immediate(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    /* idle_timeout 0 means the default (300 s), not "at once"; < 0 means none. */
    struct server lazy, none, quick;
    memset(&lazy, 0, sizeof lazy);
    memset(&none, 0, sizeof none);
    memset(&quick, 0, sizeof quick);
    sockit_listener_config cfg = {0};
    cfg.callbacks = &shared_cb;
    int lazy_port, none_port, quick_port;
    cfg.user = NULL;
    cfg.idle_timeout = 0;
    listen_on(loop, &lazy, &cfg, &lazy_port);
    cfg.user = NULL;
    cfg.idle_timeout = -1;
    listen_on(loop, &none, &cfg, &none_port);
    cfg.user = NULL;
    cfg.idle_timeout = 0.3;
    listen_on(loop, &quick, &cfg, &quick_port);
    sockit *a = client(lazy_port);
    sockit *b = client(none_port);
    double t0 = harness_now();
    sockit *q = client(quick_port);
    sockit_addr q_local;
    assert_ok(sockit_getsockname(q, &q_local));
    RUN_UNTIL(loop, quick.closes > 0, 3.0);
    double took = harness_now() - t0;
    assert_int_equal(quick.closes, 1);
    assert_int_equal(quick.errors, 1);
    assert_code(quick.last_error, SOCKIT_ETIMEOUT);
    if (took < 0.25 || took > 1.5)
        fail_msg("a 0.3 s idle timeout closed the stream after %.3f s", took);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", sockit_addr_port(&q_local));
    if (strstr(quick.errmsg, want) == NULL)
        fail_msg("on_error's message \"%s\" does not name the peer %s", quick.errmsg, want);
    struct inbox in = {0};
    inbox_wait(loop, q, &in, 0, true, 2.0);
    assert_true(in.eof); /* an ordinary end of stream */
    assert_int_equal(in.err, 0);
    run_for(loop, 0.3); /* 0.6 s in all: twice the quick one */
    assert_int_equal(sockit_listener_count(lazy.l), 1);
    assert_int_equal(sockit_listener_count(none.l), 1);
    assert_int_equal(lazy.closes + lazy.errors + none.closes + none.errors, 0);
    assert_ok(sockit_close(a));
    assert_ok(sockit_close(b));
    assert_ok(sockit_close(q));
    RUN_UNTIL(loop, lazy.closes == 1 && none.closes == 1, 5.0);
    assert_int_equal(lazy.closes + none.closes, 2);
    sockit_listener_close(lazy.l);
    sockit_listener_close(none.l);
    sockit_listener_close(quick.l);
    close_loop(loop);
}

/* A chat: on_accept keeps a list of the streams; a line from one client is written
 * by its stream's on_data to every other stream on the same loop. */
static void test_chat_relays_a_line_to_the_other_connections(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    srv.lines = true;
    srv.chat = true;
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    sockit *c[3];
    struct inbox in[3];
    memset(in, 0, sizeof in);
    for (int i = 0; i < 3; i++)
        c[i] = client(port);
    RUN_UNTIL(loop, srv.accepts == 3, 5.0);
    assert_int_equal(srv.nconns, 3);
    client_send(c[0], "hel");
    run_for(loop, 0.05);
    client_send(c[0], "lo\n");
    inbox_wait(loop, c[1], &in[1], 6, false, 5.0);
    inbox_wait(loop, c[2], &in[2], 6, false, 5.0);
    assert_string_equal(in[1].buf, "hello\n");
    assert_string_equal(in[2].buf, "hello\n");
    run_for(loop, 0.1);
    inbox_poll(c[0], &in[0]);
    assert_int_equal(in[0].len, 0); /* not to the sender */
    /* One leaves: the others still talk. */
    assert_ok(sockit_close(c[1]));
    c[1] = NULL;
    RUN_UNTIL(loop, srv.nconns == 2, 5.0);
    assert_int_equal(sockit_listener_count(srv.l), 2);
    client_send(c[2], "bye\n");
    inbox_wait(loop, c[0], &in[0], 4, false, 5.0);
    assert_string_equal(in[0].buf, "bye\n");
    /* Closing another connection from inside a callback. */
    client_send(c[2], "/kick\n");
    inbox_wait(loop, c[0], &in[0], 0, true, 5.0);
    assert_true(in[0].eof);
    assert_string_equal(in[0].buf, "bye\n");
    RUN_UNTIL(loop, srv.nconns == 1, 5.0);
    assert_int_equal(srv.nconns, 1);
    assert_int_equal(srv.errors, 0);
    assert_ok(sockit_close(c[0]));
    assert_ok(sockit_close(c[2]));
    RUN_UNTIL(loop, srv.freed == 3, 5.0);
    assert_int_equal(srv.freed, 3);
    assert_int_equal(sockit_listener_count(srv.l), 0);
    sockit_listener_close(srv.l);
    close_loop(loop);
}

static void test_closing_the_stream_in_on_accept_ends_the_client(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    srv.close_in_accept = true;
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    sockit *c = client(port);
    client_send(c, "ignored");
    struct inbox in = {0};
    inbox_wait(loop, c, &in, 0, true, 5.0);
    assert_true(in.eof || in.err == -ECONNRESET);
    assert_int_equal(in.len, 0);
    RUN_UNTIL(loop, srv.freed == 1, 5.0);
    run_for(loop, 0.05);
    assert_int_equal(srv.accepts, 1);
    assert_int_equal(srv.freed, 1); /* on_close once, no on_data */
    assert_int_equal(sockit_listener_count(srv.l), 0);
    assert_ok(sockit_close(c));
    sockit_listener_close(srv.l);
    close_loop(loop);
}

static void test_listener_new_refuses_what_is_not_a_listening_stream_socket(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_listener_config cfg = {0};
    cfg.callbacks = &shared_cb;
    /* A datagram socket and a stream socket that does not listen. */
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    assert_ok(sockit_bind(u, "127.0.0.1", 0));
    assert_null(sockit_listener_new(loop, u, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit *t = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(t);
    assert_ok(sockit_bind(t, "127.0.0.1", 0));
    assert_null(sockit_listener_new(loop, t, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    /* Bad config on a good socket. */
    sockit *l = sockit_create_server("127.0.0.1", 0, NULL);
    assert_sock(l);
    cfg.max_connections = -1;
    assert_null(sockit_listener_new(loop, l, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    cfg.max_connections = 0;
    cfg.idle_timeout = NAN;
    assert_null(sockit_listener_new(loop, l, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    cfg.idle_timeout = 4e6 + 1;
    assert_null(sockit_listener_new(loop, l, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(sockit_listener_new(NULL, l, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(sockit_listener_new(loop, NULL, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_code(sockit_listener_pause(NULL), -EINVAL);
    assert_code(sockit_listener_resume(NULL), -EINVAL);
    /* Each is still the caller's, open and usable. */
    assert_true(fcntl(sockit_fileno(u), F_GETFD) >= 0);
    assert_true(fcntl(sockit_fileno(t), F_GETFD) >= 0);
    assert_ok(sockit_listen(t, 4));
    cfg.idle_timeout = 0;
    struct server srv;
    memset(&srv, 0, sizeof srv);
    cfg.user = &srv;
    srv.magic = SERVER_MAGIC;
    srv.l = sockit_listener_new(loop, l, &cfg); /* l after all */
    assert_sock(srv.l);
    assert_ok(sockit_close(u));
    assert_ok(sockit_close(t));
    sockit_listener_close(srv.l);
    close_loop(loop);
}

/* A listener keeps the loop running while it accepts; a paused one does not. */
static void test_a_listener_keeps_the_loop_alive_while_it_accepts(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.callbacks = &shared_cb;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    assert_ok(sockit_listener_pause(srv.l));
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    assert_code(sockit_loop_close(loop), -EBUSY); /* open, though paused */
    assert_ok(sockit_listener_resume(srv.l));
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    sockit_listener_close(srv.l);
    close_loop(loop);
}

/* IPv6 and Unix listeners: on_accept's peer, the stream's peer, errors naming it. */
static void test_ipv6_and_unix_listeners_serve_and_know_their_peers(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    srv.lines = true;
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    cfg.user = &srv;
    sockit *s6 = sockit_create_server("::1", 0, NULL);
    assert_sock(s6);
    srv.magic = SERVER_MAGIC;
    srv.l = sockit_listener_new(loop, s6, &cfg);
    assert_sock(srv.l);
    sockit_addr a;
    assert_ok(sockit_listener_address(srv.l, &a));
    assert_int_equal(sockit_addr_family(&a), AF_INET6);
    sockit *c = sockit_create_connection("::1", sockit_addr_port(&a), 5.0, NULL);
    assert_sock(c);
    sockit_addr local;
    assert_ok(sockit_getsockname(c, &local));
    client_send(c, "six\n");
    struct inbox in = {0};
    inbox_wait(loop, c, &in, 4, false, 5.0);
    assert_string_equal(in.buf, "six\n");
    assert_int_equal(srv.nconns, 1);
    assert_true(sockit_addr_equal(&srv.conns[0]->peer, &local));
    sockit_addr p;
    assert_ok(sockit_stream_peer(srv.conns[0]->st, &p));
    assert_true(sockit_addr_equal(&p, &local));
    /* A line over the limit: the message names the IPv6 peer. */
    assert_ok(sockit_stream_read_lines(srv.conns[0]->st, 4));
    client_send(c, "too long\n");
    RUN_UNTIL(loop, srv.freed == 1, 5.0);
    assert_int_equal(srv.errors, 1);
    assert_code(srv.last_error, SOCKIT_ELINELEN);
    char want[64];
    snprintf(want, sizeof want, "[::1]:%d", sockit_addr_port(&local));
    if (strstr(srv.errmsg, want) == NULL)
        fail_msg("on_error's message \"%s\" does not name the peer %s", srv.errmsg, want);
    assert_ok(sockit_close(c));
    sockit_listener_close(srv.l);

    /* A Unix socket listener. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/sockit-listener-%d.sock", (int)getpid());
    char where[80];
    snprintf(where, sizeof where, "unix:%s", path);
    sockit *su = sockit_create_server(where, 0, NULL);
    assert_sock(su);
    srv.l = sockit_listener_new(loop, su, &cfg);
    assert_sock(srv.l);
    c = sockit_create_connection(where, 0, 5.0, NULL);
    assert_sock(c);
    client_send(c, "unix\n");
    struct inbox in2 = {0};
    inbox_wait(loop, c, &in2, 5, false, 5.0);
    assert_string_equal(in2.buf, "unix\n");
    assert_int_equal(sockit_listener_count(srv.l), 1);
    assert_ok(sockit_close(c));
    RUN_UNTIL(loop, srv.freed == 2, 5.0);
    assert_int_equal(srv.freed, 2);
    sockit_listener_close(srv.l);
    unlink(path);
    close_loop(loop);
}

/* A one-shot server: on_accept closes the listener; the stream it was given lives on,
 * and the clients still waiting are not served. */
static void test_listener_closed_inside_on_accept_keeps_that_stream(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    srv.close_listener_in_accept = true;
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    sockit *c1 = client(port);
    sockit *c2 = client(port); /* waiting in the backlog at the same time */
    client_send(c1, "one");
    client_send(c2, "two");
    RUN_UNTIL(loop, srv.accepts > 0, 5.0);
    run_for(loop, 0.1);
    assert_int_equal(srv.accepts, 1);
    assert_null(srv.l);
    struct inbox in1 = {0}, in2 = {0};
    sockit *unserved = NULL;
    inbox_wait(loop, c1, &in1, 3, false, 0.5);
    inbox_poll(c2, &in2);
    if (in1.len == 3) {
        unserved = c2;
        assert_string_equal(in1.buf, "one");
    } else {
        inbox_wait(loop, c2, &in2, 3, false, 2.0);
        assert_string_equal(in2.buf, "two");
        unserved = c1;
    }
    /* The unserved one's connection went with the listening socket. */
    struct inbox un = {0};
    inbox_wait(loop, unserved, &un, 0, true, 2.0);
    assert_true(un.eof || un.err == -ECONNRESET);
    assert_int_equal(un.len, 0);
    assert_ok(sockit_close(c1));
    assert_ok(sockit_close(c2));
    RUN_UNTIL(loop, srv.freed == 1, 5.0);
    assert_int_equal(srv.freed, 1);
    close_loop(loop);
}

/* Resource errors other than running out of descriptors pause accepting for a while
 * (10 ms doubling): reported, no spinning, and the client is served after. */
static void test_accept_failures_back_off_and_serving_resumes(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    cfg.on_error = listener_error;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    sockit *c = client(port);
    client_send(c, "patience");
    harness_inject(HARNESS_OP(SOCKIT__SYS_ACCEPT), ENOBUFS, 4, 0);
    int iterations = 0;
    double t0 = harness_now();
    struct inbox in = {0};
    while (in.len < 8 && harness_now() - t0 < 5.0) {
        sockit_loop_run_once(loop, 0.1);
        iterations++;
        inbox_poll(c, &in);
    }
    double took = harness_now() - t0;
    assert_int_equal(harness_injected(), 4);
    assert_string_equal(in.buf, "patience");
    assert_true(srv.listener_errors >= 1);
    assert_code(srv.listener_code, -ENOBUFS);
    /* Four failures back off about 10 + 20 + 40 + 80 ms: not at once, not for long,
     * and without spinning meanwhile. */
    if (took < 0.1 || took > 2.0 || iterations > 200)
        fail_msg("served after %.3f s and %d iterations", took, iterations);
    assert_int_equal(srv.accepts, 1);
    assert_ok(sockit_close(c));
    RUN_UNTIL(loop, srv.freed == 1, 5.0);
    sockit_listener_close(srv.l);
    close_loop(loop);
}

/* A client that connects while the loop has been waiting a while: the idle timeout
 * on_accept gives its stream counts from the accept, not from when the wait began. */
struct late_client {
    int port;
    double connected_at;
    sockit *c;
};

static void *late_client_main(void *arg)
{
    struct late_client *lc = arg;
    struct timespec nap = {0, 500 * 1000000};
    nanosleep(&nap, NULL);
    lc->c = sockit_create_connection("127.0.0.1", lc->port, 5.0, NULL);
    lc->connected_at = harness_now();
    return NULL;
}

static void test_idle_timeout_set_in_on_accept_counts_from_the_accept(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    srv.stream_idle = 0.3;
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    struct late_client lc = {0};
    listen_on(loop, &srv, &cfg, &lc.port);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_client_main, &lc), 0);
    /* One long wait that the client's arrival ends. */
    double until = harness_now() + 5.0;
    while (srv.accepts == 0 && harness_now() < until)
        sockit_loop_run_once(loop, 2.0);
    pthread_join(t, NULL);
    assert_sock(lc.c);
    assert_int_equal(srv.accepts, 1);
    RUN_UNTIL(loop, srv.freed == 1, 3.0);
    assert_int_equal(srv.freed, 1);
    assert_code(srv.last_error, SOCKIT_ETIMEOUT);
    double lived = srv.closed_at - srv.accepted_at;
    if (lived < 0.27 || lived > 1.5)
        fail_msg("a 0.3 s idle timeout set in on_accept closed the stream %.3f s after the "
                 "accept",
                 lived);
    assert_ok(sockit_close(lc.c));
    sockit_listener_close(srv.l);
    close_loop(loop);
}

/* ---- running out of descriptors ------------------------------------------------- */

enum { MAX_HOGS = 256 };
static int hogs[MAX_HOGS];
static int nhogs;
static struct rlimit saved_limit;
static bool limit_lowered;

static void free_hogs(void)
{
    while (nhogs > 0)
        close(hogs[--nhogs]);
}

/* Takes every descriptor the (lowered) limit leaves. */
static void hog_all(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && nhogs < MAX_HOGS) {
        hogs[nhogs++] = fd;
        fd = fcntl(hogs[0], F_DUPFD_CLOEXEC, 0);
    }
    if (fd >= 0)
        close(fd);
    assert_true(nhogs < MAX_HOGS); /* the limit was reached */
    assert_int_equal(open("/dev/null", O_RDONLY), -1);
    assert_int_equal(errno, EMFILE);
}

static int highest_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int hi = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd > hi)
            hi = fd;
    }
    closedir(d);
    return hi;
}

static int saved_stderr = -1;

static int emfile_teardown(void **state)
{
    if (saved_stderr >= 0) {
        dup2(saved_stderr, 2);
        close(saved_stderr);
        saved_stderr = -1;
    }
    free_hogs();
    if (limit_lowered)
        setrlimit(RLIMIT_NOFILE, &saved_limit);
    limit_lowered = false;
    return harness_fd_teardown(state);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void test_out_of_descriptors_sheds_clients_without_spinning_and_recovers(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    cfg.on_error = listener_error;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    /* A served client, to show serving goes on for open streams. */
    sockit *c0 = client(port);
    client_send(c0, "0");
    struct inbox in0 = {0};
    inbox_wait(loop, c0, &in0, 1, false, 5.0);
    assert_int_equal(srv.accepts, 1);

    /* Two clients wait in the backlog while the process runs out of descriptors.
     * (Paused meanwhile: a listener on a completion backend accepts a client the
     * moment it connects, so only a pause keeps them in the backlog.) */
    assert_ok(sockit_listener_pause(srv.l));
    sockit_loop_run_once(loop, 0);
    sockit *c1 = client(port);
    sockit *c2 = client(port);
    /* A third one's socket is made now and connected while out of descriptors. */
    sockit *c3 = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c3);
    sockit_addr to;
    assert_ok(sockit_addr_ip(&to, "127.0.0.1", port));
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved_limit), 0);
    struct rlimit low = saved_limit;
    low.rlim_cur = (rlim_t)highest_fd() + 8;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    limit_lowered = true;
    hog_all();
    assert_ok(sockit_listener_resume(srv.l));

    double t0 = harness_now();
    struct inbox in1 = {0}, in2 = {0};
    double until = t0 + 3.0;
    while (!(in1.eof || in1.err) || !(in2.eof || in2.err)) {
        if (harness_now() > until)
            break;
        sockit_loop_run_once(loop, 0.01);
        inbox_poll(c1, &in1);
        inbox_poll(c2, &in2);
    }
    double took = harness_now() - t0;
    assert_true(in1.eof);
    assert_true(in2.eof);
    if (took > 1.0)
        fail_msg("clients shed after %.3f s", took);
    assert_int_equal(srv.accepts, 1);
    assert_true(srv.listener_errors >= 1);
    assert_true(srv.listener_code == -EMFILE || srv.listener_code == -ENFILE);

    /* The loop waits; it does not spin on the readable listener. */
    int iterations = 0;
    double cpu0 = cpu_seconds();
    t0 = harness_now();
    while (harness_now() - t0 < 0.5) {
        sockit_loop_run_once(loop, 0.1);
        iterations++;
    }
    double cpu = cpu_seconds() - cpu0;
    if (iterations > 100 || cpu > 0.3)
        fail_msg("out of descriptors, the loop ran %d iterations and %.3f s of CPU in 0.5 s",
                 iterations, cpu);

    /* Still out of descriptors: the next client is shed too. */
    assert_ok(sockit_connect_addr(c3, &to));
    struct inbox in3 = {0};
    inbox_wait(loop, c3, &in3, 0, true, 3.0);
    assert_true(in3.eof);

    /* The open stream was served all along. */
    client_send(c0, "1");
    inbox_wait(loop, c0, &in0, 2, false, 5.0);
    assert_string_equal(in0.buf, "01");

    /* Descriptors come back: serving resumes. */
    free_hogs();
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved_limit), 0);
    limit_lowered = false;
    sockit *c4 = client(port);
    client_send(c4, "back");
    struct inbox in4 = {0};
    inbox_wait(loop, c4, &in4, 4, false, 3.0);
    assert_string_equal(in4.buf, "back");
    assert_int_equal(srv.accepts, 2);
    assert_int_equal(sockit_listener_count(srv.l), 2);

    assert_ok(sockit_close(c0));
    assert_ok(sockit_close(c1));
    assert_ok(sockit_close(c2));
    assert_ok(sockit_close(c3));
    assert_ok(sockit_close(c4));
    RUN_UNTIL(loop, srv.freed == 2, 5.0);
    assert_int_equal(srv.freed, 2);
    sockit_listener_close(srv.l);
    close_loop(loop);
}

/* Without cfg.on_error a serving failure is one line on stderr, at most one a
 * second: two clients shed within a second make one line. */
static void test_default_error_report_is_one_line_a_second_on_stderr(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct server srv;
    memset(&srv, 0, sizeof srv);
    sockit_listener_config cfg = {0};
    cfg.on_accept = on_accept;
    int port;
    listen_on(loop, &srv, &cfg, &port);
    sockit *c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = sockit_socket(AF_INET, SOCK_STREAM);
        assert_sock(c[i]);
    }
    sockit_addr to;
    assert_ok(sockit_addr_ip(&to, "127.0.0.1", port));
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved_limit), 0);
    struct rlimit low = saved_limit;
    low.rlim_cur = (rlim_t)highest_fd() + 8;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    limit_lowered = true;
    hog_all();
    dup2(p[1], 2);
    double t0 = harness_now();
    bool shed[2] = {false, false};
    for (int i = 0; i < 2; i++) {
        if (sockit_connect_addr(c[i], &to) < 0)
            break;
        struct inbox in = {0};
        inbox_wait(loop, c[i], &in, 0, true, 0.4);
        shed[i] = in.eof;
    }
    double took = harness_now() - t0;
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    free_hogs();
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved_limit), 0);
    limit_lowered = false;
    assert_true(shed[0]);
    assert_true(shed[1]);
    char text[2048];
    ssize_t n = read(p[0], text, sizeof text - 1);
    assert_true(n > 0);
    text[n] = '\0';
    int lines = 0;
    for (ssize_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    if (took < 0.9 && lines != 1)
        fail_msg("%d lines on stderr within %.3f s:\n%s", lines, took, text);
    assert_non_null(strstr(text, sockit_strerror(-EMFILE)));
    close(p[0]);
    close(p[1]);
    assert_int_equal(srv.accepts, 0);
    for (int i = 0; i < 2; i++)
        assert_ok(sockit_close(c[i]));
    sockit_listener_close(srv.l);
    close_loop(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_each_client_becomes_a_stream_with_the_config_callbacks_and_user),
        harness_test(test_on_accept_gives_each_stream_its_own_user_and_callbacks),
        harness_test(test_verify_rejecting_closes_the_client_and_makes_no_stream),
        harness_test(test_max_connections_serves_the_next_client_when_one_closes),
        harness_test(test_pause_stops_accepting_and_resume_starts_again),
        harness_test(test_listener_close_leaves_its_streams_open),
        harness_test(test_config_idle_timeout_closes_idle_streams_and_zero_is_not_immediate),
        harness_test(test_chat_relays_a_line_to_the_other_connections),
        harness_test(test_closing_the_stream_in_on_accept_ends_the_client),
        harness_test(test_listener_new_refuses_what_is_not_a_listening_stream_socket),
        harness_test(test_a_listener_keeps_the_loop_alive_while_it_accepts),
        harness_test(test_ipv6_and_unix_listeners_serve_and_know_their_peers),
        harness_test(test_listener_closed_inside_on_accept_keeps_that_stream),
        harness_fault_test(test_accept_failures_back_off_and_serving_resumes),
        harness_test(test_idle_timeout_set_in_on_accept_counts_from_the_accept),
        cmocka_unit_test_setup_teardown(
            test_out_of_descriptors_sheds_clients_without_spinning_and_recovers, harness_fd_setup,
            emfile_teardown),
        cmocka_unit_test_setup_teardown(test_default_error_report_is_one_line_a_second_on_stderr,
                                        harness_fd_setup, emfile_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
