/* sockit_proxy (sockit_proxy.h): the relay (bytes exact both ways, half-close,
 * resets, an unreachable upstream, backpressure with the bound it states), each
 * toxic's effect with tolerances wide enough for a busy machine, toxics changed on
 * open connections, a proxy taken down and up, and every call's refusals. Runs once
 * per backend.
 *
 * The upstream server is a listener on the test's loop; clients are blocking
 * sockits in this thread, read without waiting between iterations of the loop. */
#include "harness.h"
#include "loop_harness.h"
#include "proxy/proxy_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the upstream server ---------------------------------------------------------- */

enum { UP_ECHO = 0, UP_COLLECT };

struct upstream;
struct up_conn {
    struct upstream *srv;
    sockit_stream *st;
    char *data;
    size_t len, cap;
    bool eof, closed;
    int error;
};

enum { UP_CONNS_MAX = 64 };
struct upstream {
    sockit_listener *l;
    int mode;
    int port;
    struct up_conn *last;
    struct up_conn *conns[UP_CONNS_MAX];
    int accepted;
};

static void up_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    struct up_conn *c = user;
    if (c->srv->mode == UP_ECHO) {
        assert_ok(sockit_stream_write(st, data, len));
        return;
    }
    if (c->len + len > c->cap) {
        c->cap = (c->len + len) * 2;
        c->data = realloc(c->data, c->cap);
        assert_non_null(c->data);
    }
    memcpy(c->data + c->len, data, len);
    c->len += len;
}

static void up_eof(sockit_stream *st, void *user)
{
    struct up_conn *c = user;
    c->eof = true;
    if (c->srv->mode == UP_ECHO)
        sockit_stream_shutdown(st);
}

static void up_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    struct up_conn *c = user;
    c->error = code;
}

static void up_close(sockit_stream *st, void *user)
{
    (void)st;
    struct up_conn *c = user;
    c->closed = true;
    c->st = NULL;
}

static const sockit_stream_callbacks up_cb = {
    .on_data = up_data, .on_eof = up_eof, .on_error = up_error, .on_close = up_close};

static void up_accept(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)l;
    (void)peer;
    struct upstream *u = user;
    struct up_conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->srv = u;
    c->st = st;
    assert_true(u->accepted < UP_CONNS_MAX);
    u->conns[u->accepted++] = c;
    u->last = c;
    sockit_stream_set_user(st, c);
}

static void upstream_start(sockit_loop *loop, struct upstream *u, int mode)
{
    memset(u, 0, sizeof *u);
    u->mode = mode;
    sockit *s = harness_tcp_listener(AF_INET, &u->port);
    sockit_listener_config cfg = {
        .on_accept = up_accept, .callbacks = &up_cb, .user = u, .idle_timeout = -1};
    u->l = sockit_listener_new(loop, s, &cfg);
    assert_sock(u->l);
}

/* ---- the proxy and its clients ------------------------------------------------------ */

struct events {
    int open, close, refused;
    char reason[200];
    char toxics[200];
    unsigned long long up, down;
};

static void on_event(sockit_proxy *p, const sockit_proxy_event *ev, void *user)
{
    (void)p;
    struct events *e = user;
    if (ev->type == SOCKIT_PROXY_OPEN)
        e->open++;
    else if (ev->type == SOCKIT_PROXY_CLOSE)
        e->close++;
    else
        e->refused++;
    snprintf(e->reason, sizeof e->reason, "%s", ev->reason);
    snprintf(e->toxics, sizeof e->toxics, "%s", ev->toxics);
    e->up = ev->bytes_up;
    e->down = ev->bytes_down;
}

static sockit_proxy *proxy_to(sockit_loop *loop, int port, struct events *e)
{
    sockit_proxy_config cfg = {.name = "test",
                               .upstream_host = "127.0.0.1",
                               .upstream_port = port,
                               .seed = 42,
                               .on_event = on_event,
                               .user = e};
    sockit_proxy *p = sockit_proxy_new(loop, &cfg);
    assert_sock(p);
    return p;
}

/* The rig of most tests: a loop, an upstream server of the mode asked and a proxy
 * to it whose events go to *e. */
static sockit_proxy *rig_open(sockit_loop **loop, struct upstream *u, struct events *e, int mode)
{
    *loop = new_loop();
    upstream_start(*loop, u, mode);
    memset(e, 0, sizeof *e);
    return proxy_to(*loop, u->port, e);
}

/* A toxic of kind acting on dir, with toxiproxy's defaults. */
static sockit_toxic toxic_of(sockit_toxic_kind kind, sockit_proxy_direction dir)
{
    sockit_toxic t;
    assert_ok(sockit_toxic_init(&t, kind, dir));
    return t;
}

static sockit *client_of(sockit_proxy *p)
{
    sockit_addr a;
    assert_ok(sockit_proxy_address(p, &a));
    sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c);
    assert_ok(sockit_connect_addr(c, &a));
    return c;
}

/* Reads what is there now; 0 for nothing yet, -1 at end of stream, or a code. */
static ssize_t peek_read(sockit *c, char *buf, size_t size)
{
    ssize_t n = sockit_recv(c, buf, size, MSG_DONTWAIT);
    if (n == 0)
        return -1;
    if (n == SOCKIT_EWOULDBLOCK)
        return 0;
    return n;
}

/* Runs the loop until the client has want bytes (or end of stream, or an error, or
 * secs pass). Returns how many it has; *end says how it ended (0: still open, -1:
 * end of stream, else the code). */
static size_t read_until(sockit_loop *loop, sockit *c, char *buf, size_t want, double secs,
                         int *end)
{
    size_t have = 0;
    *end = 0;
    double until = harness_now() + secs;
    while (have < want && harness_now() < until) {
        sockit_loop_run_once(loop, 0.005);
        ssize_t n = peek_read(c, buf + have, want - have);
        if (n < 0) {
            *end = (int)n;
            break;
        }
        have += (size_t)n;
    }
    return have;
}

static void send_all(sockit *c, const void *buf, size_t len)
{
    assert_int_equal(sockit_send(c, buf, len, 0), (ssize_t)len);
}

static void upstream_stop(sockit_loop *loop, struct upstream *u)
{
    sockit_listener_close(u->l);
    run_for(loop, 0.05);
    for (int i = 0; i < u->accepted; i++)
        if (u->conns[i]->st != NULL)
            sockit_stream_abort(u->conns[i]->st);
    run_for(loop, 0.05);
    for (int i = 0; i < u->accepted; i++) {
        free(u->conns[i]->data);
        free(u->conns[i]);
    }
}

static void finish(sockit_loop *loop, sockit_proxy *p, struct upstream *u)
{
    sockit_proxy_close(p);
    upstream_stop(loop, u);
    close_loop(loop);
}

static void fill(char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (char)(seed >> 16);
    }
}

/* ---- the relay ---------------------------------------------------------------------- */

static void test_relays_bytes_exactly_both_ways(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_ECHO);
    sockit *c = client_of(p);
    size_t n = 1 << 20;
    char *out = malloc(n), *in = malloc(n);
    fill(out, n, 7);
    size_t sent = 0, have = 0;
    double until = harness_now() + 20;
    while (have < n && harness_now() < until) {
        if (sent < n) {
            ssize_t w = sockit_send(c, out + sent, n - sent, MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        sockit_loop_run_once(loop, 0.001);
        ssize_t r = peek_read(c, in + have, n - have);
        assert_true(r >= 0);
        have += (size_t)r;
    }
    assert_int_equal(have, n);
    assert_memory_equal(in, out, n);
    assert_int_equal(e.open, 1);
    sockit_proxy_stats st;
    sockit_proxy_stats_get(p, &st);
    assert_int_equal(st.bytes_up, n);
    assert_int_equal(st.bytes_down, n);
    assert_int_equal(st.connections, 1);
    assert_int_equal(st.open, 1);
    sockit_close(c);
    RUN_UNTIL(loop, e.close == 1, 5);
    assert_int_equal(e.close, 1);
    assert_int_equal(e.up, n);
    assert_int_equal(e.down, n);
    free(out);
    free(in);
    finish(loop, p, &u);
}

static void test_half_close_passes_both_ways(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit *c = client_of(p);
    send_all(c, "request", 7);
    assert_ok(sockit_shutdown(c, SHUT_WR));
    RUN_UNTIL(loop, u.last != NULL && u.last->eof, 5);
    assert_non_null(u.last);
    assert_true(u.last->eof);
    assert_int_equal(u.last->len, 7);
    assert_memory_equal(u.last->data, "request", 7);
    /* The server still writes after the client's half-close, then ends. */
    assert_ok(sockit_stream_write(u.last->st, "reply", 5));
    assert_ok(sockit_stream_shutdown(u.last->st));
    char buf[16];
    int end;
    size_t got = read_until(loop, c, buf, sizeof buf, 5, &end);
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "reply", 5);
    assert_int_equal(end, -1);
    RUN_UNTIL(loop, e.close == 1, 5);
    assert_int_equal(e.close, 1);
    assert_string_equal(e.reason, "client closed");
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_upstream_reset_resets_the_client(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit *c = client_of(p);
    send_all(c, "x", 1);
    RUN_UNTIL(loop, u.last != NULL && u.last->len == 1, 5);
    sockit_stream_abort(u.last->st);
    char buf[8];
    int end;
    read_until(loop, c, buf, sizeof buf, 5, &end);
    assert_int_equal(end, -ECONNRESET);
    RUN_UNTIL(loop, e.close == 1, 5);
    assert_non_null(strstr(e.reason, "upstream"));
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_client_reset_resets_the_upstream(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit *c = client_of(p);
    send_all(c, "x", 1);
    RUN_UNTIL(loop, u.last != NULL && u.last->len == 1, 5);
    assert_ok(sockit_set_linger(c, true, 0));
    sockit_close(c);
    RUN_UNTIL(loop, u.last->closed, 5);
    assert_int_equal(u.last->error, -ECONNRESET);
    finish(loop, p, &u);
}

static void test_unreachable_upstream_is_told_and_the_client_closed(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    int port;
    sockit *gone = harness_tcp_listener(AF_INET, &port);
    sockit_close(gone); /* nothing listens there now */
    struct events e = {0};
    sockit_proxy *p = proxy_to(loop, port, &e);
    sockit *c = client_of(p);
    char buf[8];
    int end;
    read_until(loop, c, buf, sizeof buf, 5, &end);
    assert_true(end == -1 || end == -ECONNRESET);
    assert_int_equal(e.refused, 1);
    assert_int_equal(e.open, 0);
    if (strstr(e.reason, "refused") == NULL)
        fail_msg("reason: %s", e.reason);
    sockit_proxy_stats st;
    sockit_proxy_stats_get(p, &st);
    assert_int_equal(st.refused, 1);
    sockit_close(c);
    sockit_proxy_close(p);
    close_loop(loop);
}

/* The upstream sends 32 MiB to a client that reads nothing: the proxy holds at most
 * what SOCKIT_PROXY_HELD_MAX says, the rest waits at the upstream. */
static void test_a_slow_reader_slows_the_writer(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LATENCY, SOCKIT_DOWNSTREAM);
    t.latency = 1;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    assert_ok(sockit_set_rcvbuf(c, 65536));
    send_all(c, "go", 2);
    RUN_UNTIL(loop, u.last != NULL && u.last->len == 2, 5);
    size_t n = (size_t)32 << 20; /* past what loopback's socket buffers hold */
    char *big = malloc(n);
    fill(big, n, 3);
    sockit_stream_set_watermarks(u.last->st, 16384, 65536, n);
    assert_ok(sockit_stream_write(u.last->st, big, n));
    run_for(loop, 1.0);
    px_conn *pc = p->conns;
    assert_non_null(pc);
    px_dir *d = &pc->dir[SOCKIT_DOWNSTREAM];
    size_t held = d->held + sockit_stream_queued(pc->client);
    if (held > SOCKIT_PROXY_HELD_MAX + 65536 * 2)
        fail_msg("held %zu in the chain + %zu queued", d->held, sockit_stream_queued(pc->client));
    assert_true(sockit__relay_paused(pc->relay, SOCKIT_DOWNSTREAM));
    assert_true(sockit_stream_queued(u.last->st) > n / 2); /* the rest waits upstream */
    /* Reading now gets every byte, in order. */
    char *in = malloc(n);
    int end;
    size_t got = read_until(loop, c, in, n, 30, &end);
    assert_int_equal(got, n);
    assert_memory_equal(in, big, n);
    free(in);
    free(big);
    sockit_close(c);
    finish(loop, p, &u);
}

/* ---- toxics ---------------------------------------------------------------------------- */

/* One request's round trip through the proxy, in seconds. */
static double round_trip(sockit_loop *loop, sockit *c, const char *msg)
{
    size_t n = strlen(msg);
    double t0 = harness_now();
    send_all(c, msg, n);
    char buf[256];
    int end;
    size_t got = read_until(loop, c, buf, n, 10, &end);
    assert_int_equal(got, n);
    assert_memory_equal(buf, msg, n);
    return harness_now() - t0;
}

static void test_latency_adds_its_delay_to_a_round_trip(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_ECHO);
    sockit *c = client_of(p);
    double base = round_trip(loop, c, "ping");
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LATENCY, SOCKIT_DOWNSTREAM);
    t.latency = 100;
    assert_ok(sockit_proxy_add_toxic(p, &t)); /* on the open connection */
    for (int i = 0; i < 3; i++) {
        double rt = round_trip(loop, c, "ping") - base;
        assert_true(rt >= 0.085 && rt <= 0.115 + 0.05);
    }
    /* Both ways, with jitter: each way within latency +- jitter. */
    t.direction = SOCKIT_UPSTREAM;
    t.latency = 50;
    t.jitter = 20;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    assert_non_null(sockit_proxy_toxic(p, "latency_upstream"));
    for (int i = 0; i < 5; i++) {
        double rt = round_trip(loop, c, "ping") - base;
        assert_true(rt >= 0.100 + 0.030 - 0.005 && rt <= 0.100 + 0.070 + 0.06);
    }
    /* Removed: the delay is gone, and nothing held is lost. */
    send_all(c, "held", 4);
    assert_ok(sockit_proxy_remove_toxic(p, "latency_downstream"));
    assert_ok(sockit_proxy_remove_toxic(p, "latency_upstream"));
    char buf[8];
    int end;
    assert_int_equal(read_until(loop, c, buf, 4, 5, &end), 4);
    assert_memory_equal(buf, "held", 4);
    assert_true(round_trip(loop, c, "ping") < 0.05);
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_bandwidth_caps_the_rate(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_BANDWIDTH, SOCKIT_UPSTREAM);
    t.rate = 400; /* KB/s */
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    size_t n = 400 * 1000; /* one second at the rate */
    char *buf = malloc(n);
    fill(buf, n, 9);
    double t0 = harness_now();
    size_t sent = 0;
    while ((u.last == NULL || u.last->len < n) && harness_now() < t0 + 10) {
        if (sent < n) {
            ssize_t w = sockit_send(c, buf + sent, n - sent, MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        sockit_loop_run_once(loop, 0.002);
    }
    double took = harness_now() - t0;
    assert_non_null(u.last);
    assert_int_equal(u.last->len, n);
    assert_memory_equal(u.last->data, buf, n);
    assert_true(took >= 0.85 && took <= 1.15);
    free(buf);
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_slicer_cuts_into_the_sizes_asked(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_ECHO);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_SLICER, SOCKIT_DOWNSTREAM);
    t.average_size = 100;
    t.size_variation = 20;
    t.delay = 20000; /* us: each slice comes alone */
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    char out[2000], in[2000];
    fill(out, sizeof out, 5);
    send_all(c, out, sizeof out);
    size_t have = 0, reads = 0, in_range = 0;
    double until = harness_now() + 10;
    while (have < sizeof in && harness_now() < until) {
        sockit_loop_run_once(loop, 0.002);
        ssize_t r = peek_read(c, in + have, sizeof in - have);
        assert_true(r >= 0);
        if (r > 0) {
            reads++;
            if (r >= 80 && r <= 120)
                in_range++;
            have += (size_t)r;
        }
    }
    assert_int_equal(have, sizeof in);
    assert_memory_equal(in, out, sizeof in);
    assert_true(reads >= 14);                /* 2000 / 120 = 16.7 slices at least */
    assert_true(in_range >= reads * 8 / 10); /* a slow iteration may join two */
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_limit_data_closes_after_exactly_its_bytes(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LIMIT_DATA, SOCKIT_UPSTREAM);
    t.bytes = 1000;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    char out[700];
    fill(out, sizeof out, 1);
    send_all(c, out, sizeof out);
    RUN_UNTIL(loop, u.last != NULL && u.last->len == 700, 5);
    send_all(c, out, sizeof out); /* 1400 in all: 300 over */
    RUN_UNTIL(loop, u.last->closed, 5);
    assert_true(u.last->eof);
    assert_int_equal(u.last->len, 1000);
    assert_memory_equal(u.last->data + 700, out, 300);
    char buf[8];
    int end;
    read_until(loop, c, buf, sizeof buf, 5, &end);
    assert_int_equal(end, -1);
    RUN_UNTIL(loop, e.close == 1, 5);
    assert_string_equal(e.reason, "limit_data");
    assert_string_equal(e.toxics, "limit_data_upstream");
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_timeout_drops_and_closes_after_its_time(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_TIMEOUT, SOCKIT_UPSTREAM);
    t.timeout = 200;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    double t0 = harness_now();
    sockit *c = client_of(p);
    send_all(c, "lost", 4);
    char buf[8];
    int end;
    read_until(loop, c, buf, sizeof buf, 5, &end);
    double took = harness_now() - t0;
    assert_int_equal(end, -1);
    assert_true(took >= 0.18 && took < 1.0);
    assert_non_null(u.last);
    assert_int_equal(u.last->len, 0);
    sockit_close(c);
    RUN_UNTIL(loop, e.close == 1, 5);
    assert_string_equal(e.reason, "timeout");
    finish(loop, p, &u);
}

/* timeout 0 holds the connection open, dropping everything, until it is removed:
 * then the connection closes, as toxiproxy's does. */
static void test_timeout_zero_holds_until_removed(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_ECHO);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_TIMEOUT, SOCKIT_DOWNSTREAM);
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    send_all(c, "dropped", 7);
    char buf[8];
    int end;
    assert_int_equal(read_until(loop, c, buf, sizeof buf, 0.3, &end), 0);
    assert_int_equal(end, 0);
    assert_ok(sockit_proxy_remove_toxic(p, "timeout_downstream"));
    read_until(loop, c, buf, sizeof buf, 5, &end);
    assert_int_equal(end, -1);
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_reset_peer_resets_after_its_time(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_RESET_PEER, SOCKIT_UPSTREAM);
    t.timeout = 100;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    double t0 = harness_now();
    send_all(c, "x", 1);
    char buf[8];
    int end;
    read_until(loop, c, buf, sizeof buf, 5, &end);
    assert_int_equal(end, -ECONNRESET);
    double took = harness_now() - t0;
    assert_true(took >= 0.09 && took < 1.0);
    RUN_UNTIL(loop, u.last != NULL && u.last->closed, 5);
    assert_int_equal(u.last->error, -ECONNRESET);
    assert_int_equal(u.last->len, 0);
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_slow_close_holds_the_end_back(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_COLLECT);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_SLOW_CLOSE, SOCKIT_DOWNSTREAM);
    t.delay = 300;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    send_all(c, "x", 1);
    RUN_UNTIL(loop, u.last != NULL && u.last->len == 1, 5);
    double t0 = harness_now();
    assert_ok(sockit_stream_write(u.last->st, "bye", 3));
    sockit_stream_close(u.last->st, -1);
    char buf[8];
    int end;
    size_t got = read_until(loop, c, buf, sizeof buf, 5, &end);
    double took = harness_now() - t0;
    assert_int_equal(got, 3);
    assert_int_equal(end, -1);
    assert_true(took >= 0.28 && took < 1.5);
    sockit_close(c);
    finish(loop, p, &u);
}

/* A toxicity of 0 never acts; one drawn per connection acts on about its share. */
static void test_toxicity_is_drawn_per_connection(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_ECHO);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LATENCY, SOCKIT_DOWNSTREAM);
    t.latency = 60;
    t.toxicity = 0;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    assert_true(round_trip(loop, c, "fast") < 0.05);
    sockit_close(c);
    t.toxicity = 0.5;
    assert_ok(sockit_proxy_update_toxic(p, "latency_downstream", &t));
    int slow = 0;
    for (int i = 0; i < 40; i++) {
        c = client_of(p);
        if (round_trip(loop, c, "?") > 0.05)
            slow++;
        sockit_close(c);
        run_for(loop, 0.002);
    }
    assert_true(slow >= 8 && slow <= 32); /* binomial(40, 0.5): outside 1e-4 */
    finish(loop, p, &u);
}

static void test_disabled_proxy_refuses_and_comes_back(void **state)
{
    (void)state;
    sockit_loop *loop;
    struct upstream u;
    struct events e;
    sockit_proxy *p = rig_open(&loop, &u, &e, UP_ECHO);
    sockit_addr a;
    assert_ok(sockit_proxy_address(p, &a));
    sockit *c = client_of(p);
    round_trip(loop, c, "up");
    assert_ok(sockit_proxy_set_enabled(p, false));
    assert_false(sockit_proxy_enabled(p));
    char buf[8];
    int end;
    read_until(loop, c, buf, sizeof buf, 5, &end);
    assert_int_equal(end, -1); /* the open connection was closed */
    sockit_close(c);
    sockit *refused = sockit_socket(AF_INET, SOCK_STREAM);
    assert_code(sockit_connect_addr(refused, &a), -ECONNREFUSED);
    sockit_close(refused);
    assert_ok(sockit_proxy_set_enabled(p, true));
    sockit_addr again;
    assert_ok(sockit_proxy_address(p, &again));
    assert_true(sockit_addr_equal(&a, &again));
    c = client_of(p);
    round_trip(loop, c, "again");
    sockit_close(c);
    finish(loop, p, &u);
}

static void test_new_upstream_closes_open_connections(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream u, v;
    upstream_start(loop, &u, UP_ECHO);
    upstream_start(loop, &v, UP_ECHO);
    struct events e = {0};
    sockit_proxy *p = proxy_to(loop, u.port, &e);
    sockit *c = client_of(p);
    round_trip(loop, c, "one");
    assert_ok(sockit_proxy_set_upstream(p, "127.0.0.1", v.port));
    char buf[8];
    int end;
    read_until(loop, c, buf, sizeof buf, 5, &end);
    assert_int_equal(end, -1);
    sockit_close(c);
    c = client_of(p);
    round_trip(loop, c, "two");
    assert_int_equal(v.accepted, 1);
    sockit_close(c);
    upstream_stop(loop, &v);
    finish(loop, p, &u);
}

/* ---- refusals --------------------------------------------------------------------------- */

static void test_bad_configs_are_refused(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_proxy_config cfg = {.upstream_host = "127.0.0.1", .upstream_port = 0};
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
    cfg.upstream_port = 65536;
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
    assert_non_null(strstr(sockit_errmsg(), "65536"));
    cfg.upstream_port = 80;
    cfg.listen_port = -1;
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
    cfg.listen_port = 0;
    cfg.upstream_host = NULL;
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    cfg.upstream_host = "127.0.0.1";
    cfg.connect_timeout = NAN;
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    cfg.connect_timeout = 0;
    cfg.type = SOCK_SEQPACKET;
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    cfg.type = 0;
    assert_null(sockit_proxy_new(NULL, &cfg));
    assert_null(sockit_proxy_new(loop, NULL));
    /* A port in use. */
    int port;
    sockit *busy = harness_tcp_listener(AF_INET, &port);
    cfg.listen_port = port;
    cfg.name = "busy";
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), -EADDRINUSE);
    assert_non_null(strstr(sockit_errmsg(), "proxy busy"));
    sockit_close(busy);
    close_loop(loop);
}

static void test_bad_toxics_are_refused(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_proxy_config cfg = {.upstream_host = "127.0.0.1", .upstream_port = 9};
    sockit_proxy *p = sockit_proxy_new(loop, &cfg);
    assert_sock(p);
    sockit_toxic t;
    assert_code(sockit_toxic_init(&t, SOCKIT_TOXIC_NONE, SOCKIT_UPSTREAM), -EINVAL);
    assert_code(sockit_toxic_init(&t, SOCKIT_TOXIC_LATENCY, (sockit_proxy_direction)2), -EINVAL);
    assert_ok(sockit_toxic_init(&t, SOCKIT_TOXIC_LATENCY, SOCKIT_DOWNSTREAM));
    t.jitter = -1;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "jitter -1"));
    t.jitter = 0;
    t.toxicity = 1.5;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    t.toxicity = NAN;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    t.toxicity = 1;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    assert_string_equal(sockit_proxy_toxic_at(p, 0)->name, "latency_downstream");
    assert_null(sockit_proxy_toxic_at(p, 1));
    assert_code(sockit_proxy_add_toxic(p, &t), -EEXIST);
    t.latency = -5;
    assert_code(sockit_proxy_update_toxic(p, "latency_downstream", &t), -EINVAL);
    assert_int_equal(sockit_proxy_toxic(p, "latency_downstream")->latency, 0);
    t.latency = 5;
    assert_code(sockit_proxy_update_toxic(p, "nope", &t), -ENOENT);
    assert_code(sockit_proxy_remove_toxic(p, "nope"), -ENOENT);
    assert_ok(sockit_toxic_init(&t, SOCKIT_TOXIC_SLICER, SOCKIT_UPSTREAM));
    t.average_size = 10;
    t.size_variation = 10;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    assert_ok(sockit_toxic_init(&t, SOCKIT_TOXIC_LOSS, SOCKIT_UPSTREAM));
    t.probability = 0.5;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL); /* a datagram toxic */
    assert_non_null(strstr(sockit_errmsg(), "datagram"));
    assert_ok(sockit_toxic_init(&t, SOCKIT_TOXIC_LIMIT_DATA, SOCKIT_UPSTREAM));
    for (int i = 1; i < SOCKIT_PROXY_TOXICS_MAX; i++) {
        snprintf(t.name, sizeof t.name, "limit%d", i);
        assert_ok(sockit_proxy_add_toxic(p, &t));
    }
    snprintf(t.name, sizeof t.name, "one too many");
    assert_code(sockit_proxy_add_toxic(p, &t), -ENOSPC);
    memset(t.name, 'x', sizeof t.name); /* no NUL */
    assert_code(sockit_toxic_check(&t), -EINVAL);
    sockit_proxy_remove_toxics(p);
    assert_null(sockit_proxy_toxic_at(p, 0));
    /* Names and kinds. */
    assert_int_equal(sockit_toxic_kind_parse("slow_close"), SOCKIT_TOXIC_SLOW_CLOSE);
    assert_int_equal(sockit_toxic_kind_parse("nope"), SOCKIT_TOXIC_NONE);
    assert_int_equal(sockit_toxic_kind_parse(NULL), SOCKIT_TOXIC_NONE);
    assert_string_equal(sockit_toxic_kind_name(SOCKIT_TOXIC_RESET_PEER), "reset_peer");
    assert_string_equal(sockit_toxic_kind_name((sockit_toxic_kind)99), "unknown");
    assert_true(sockit_toxic_kind_for(SOCKIT_TOXIC_LATENCY, SOCK_DGRAM));
    assert_false(sockit_toxic_kind_for(SOCKIT_TOXIC_SLICER, SOCK_DGRAM));
    assert_string_equal(sockit_proxy_name(p), "proxy");
    assert_int_equal(sockit_proxy_type(p), SOCK_STREAM);
    sockit_proxy_close(p);
    sockit_proxy_close(NULL);
    close_loop(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_relays_bytes_exactly_both_ways),
        harness_test(test_half_close_passes_both_ways),
        harness_test(test_upstream_reset_resets_the_client),
        harness_test(test_client_reset_resets_the_upstream),
        harness_test(test_unreachable_upstream_is_told_and_the_client_closed),
        harness_test(test_a_slow_reader_slows_the_writer),
        harness_test(test_latency_adds_its_delay_to_a_round_trip),
        harness_test(test_bandwidth_caps_the_rate),
        harness_test(test_slicer_cuts_into_the_sizes_asked),
        harness_test(test_limit_data_closes_after_exactly_its_bytes),
        harness_test(test_timeout_drops_and_closes_after_its_time),
        harness_test(test_timeout_zero_holds_until_removed),
        harness_test(test_reset_peer_resets_after_its_time),
        harness_test(test_slow_close_holds_the_end_back),
        harness_test(test_toxicity_is_drawn_per_connection),
        harness_test(test_disabled_proxy_refuses_and_comes_back),
        harness_test(test_new_upstream_closes_open_connections),
        harness_test(test_bad_configs_are_refused),
        harness_test(test_bad_toxics_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
