/* sockit_proxy's datagram proxies (type SOCK_DGRAM): datagrams relayed exactly both
 * ways with a socket per client, each datagram toxic's effect (loss with and
 * without bursts, duplicate, reorder, truncate, latency, bandwidth) with
 * tolerances wide enough for a busy machine, entries that expire and a table that
 * stays bounded, toxics changed live, a proxy taken down, moved and closed with
 * datagrams held, and the refusals. Runs once per backend.
 *
 * The upstream server is a datagram endpoint on the test's loop; clients are
 * blocking UDP sockits in this thread, read without waiting between iterations of
 * the loop. Every datagram a test counts carries its sequence number first. */
#include "harness.h"
#include "loop_harness.h"

#include <sockit_proxy.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* ---- the upstream server ---------------------------------------------------------- */

enum { SEQ_MAX = 12000, SENDERS_MAX = 8 };

struct upstream {
    sockit_datagram *d;
    int port;
    bool echo;
    int got;                /* datagrams received */
    size_t last_len;        /* the last one's length */
    int order[SEQ_MAX * 2]; /* sequence numbers in the order they came */
    sockit_addr senders[SENDERS_MAX];
    int nsenders;
};

static unsigned seq_of(const char *data, size_t len)
{
    unsigned s = 0;
    if (len >= sizeof s)
        memcpy(&s, data, sizeof s);
    return s;
}

static void up_datagram(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user)
{
    (void)truncated;
    struct upstream *u = user;
    if (u->got < SEQ_MAX * 2)
        u->order[u->got] = (int)seq_of(data, len);
    u->got++;
    u->last_len = len;
    int i = 0;
    while (i < u->nsenders && !sockit_addr_equal(&u->senders[i], from))
        i++;
    if (i == u->nsenders && i < SENDERS_MAX)
        u->senders[u->nsenders++] = *from;
    if (u->echo)
        assert_ok(sockit_datagram_send(d, data, len, from));
}

static const sockit_datagram_callbacks up_cb = {.on_datagram = up_datagram};

static struct upstream *upstream_start(sockit_loop *loop, bool echo)
{
    struct upstream *u = calloc(1, sizeof *u);
    assert_non_null(u);
    u->echo = echo;
    sockit_server_options opts = {.type = SOCK_DGRAM};
    sockit *s = sockit_create_server("127.0.0.1", 0, &opts);
    assert_sock(s);
    u->d = sockit_datagram_new(loop, s, &up_cb, u);
    assert_sock(u->d);
    sockit_addr a;
    assert_ok(sockit_datagram_address(u->d, &a));
    u->port = sockit_addr_port(&a);
    return u;
}

static void upstream_stop(struct upstream *u) { sockit_datagram_close(u->d); }

/* ---- the proxy and its clients ------------------------------------------------------ */

struct events {
    int open, close, refused;
    char reason[200];
    char toxics[200];
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
}

static sockit_proxy_config config_to(int port, struct events *e)
{
    memset(e, 0, sizeof *e);
    sockit_proxy_config cfg = {.name = "udp",
                               .type = SOCK_DGRAM,
                               .upstream_host = "127.0.0.1",
                               .upstream_port = port,
                               .seed = 42,
                               .on_event = on_event,
                               .user = e};
    return cfg;
}

static sockit_proxy *proxy_to(sockit_loop *loop, int port, struct events *e)
{
    sockit_proxy_config cfg = config_to(port, e);
    sockit_proxy *p = sockit_proxy_new(loop, &cfg);
    assert_sock(p);
    return p;
}

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
    sockit *c = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(c);
    assert_ok(sockit_connect_addr(c, &a));
    return c;
}

static void send_seq(sockit *c, unsigned seq, size_t len)
{
    char buf[2048];
    assert_true(len >= sizeof seq && len <= sizeof buf);
    memset(buf, (int)(seq & 0xff), len);
    memcpy(buf, &seq, sizeof seq);
    assert_int_equal(sockit_send(c, buf, len, 0), (ssize_t)len);
}

/* A datagram there now: its length, or -1 for none. */
static ssize_t recv_now(sockit *c, char *buf, size_t size)
{
    ssize_t n = sockit_recv(c, buf, size, MSG_DONTWAIT);
    return n >= 0 ? n : -1;
}

/* Runs the loop until a datagram reaches c (or secs pass): its length or -1. */
static ssize_t recv_within(sockit_loop *loop, sockit *c, char *buf, size_t size, double secs)
{
    double until = harness_now() + secs;
    ssize_t n;
    while ((n = recv_now(c, buf, size)) < 0 && harness_now() < until)
        sockit_loop_run_once(loop, 0.005);
    return n;
}

static sockit_proxy_stats stats_of(const sockit_proxy *p)
{
    sockit_proxy_stats s;
    sockit_proxy_stats_get(p, &s);
    return s;
}

/* Sends n datagrams numbered from 0 in rounds the kernel's buffers hold, each
 * round waited for until the proxy has passed or dropped all of it. */
static void send_paced(sockit_loop *loop, sockit_proxy *p, sockit *c, int n, size_t len)
{
    sockit_proxy_stats s0 = stats_of(p);
    for (int i = 0; i < n; i += 50) {
        for (int j = i; j < i + 50 && j < n; j++)
            send_seq(c, (unsigned)j, len);
        unsigned long long want = (unsigned long long)(i + 50 < n ? i + 50 : n);
        RUN_UNTIL(loop,
                  stats_of(p).datagrams_up - s0.datagrams_up + stats_of(p).dropped - s0.dropped >=
                      want,
                  5);
    }
}

static void finish(sockit_loop *loop, sockit_proxy *p, struct upstream *u, sockit **clients, int n)
{
    sockit_proxy_close(p);
    upstream_stop(u);
    for (int i = 0; i < n; i++)
        sockit_close(clients[i]);
    close_loop(loop);
    free(u);
}

/* ---- the relay ---------------------------------------------------------------------- */

static void test_relays_datagrams_both_ways_with_a_socket_per_client(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit *c[3] = {client_of(p), client_of(p), client_of(p)};
    static char big[60000], back[65536];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    for (int k = 0; k < 3; k++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "client %d", k);
        assert_int_equal(sockit_send(c[k], msg, (size_t)len, 0), len);
        assert_int_equal(recv_within(loop, c[k], back, sizeof back, 3), len);
        assert_memory_equal(back, msg, (size_t)len);
    }
    /* big and empty datagrams pass whole */
    big[0] = 'B';
    assert_int_equal(sockit_send(c[1], big, sizeof big, 0), (ssize_t)sizeof big);
    assert_int_equal(recv_within(loop, c[1], back, sizeof back, 3), (ssize_t)sizeof big);
    assert_memory_equal(back, big, sizeof big);
    assert_int_equal(sockit_send(c[2], "", 0, 0), 0);
    assert_int_equal(recv_within(loop, c[2], back, sizeof back, 3), 0);
    /* nobody got another's reply */
    run_for(loop, 0.05);
    for (int k = 0; k < 3; k++)
        assert_int_equal(recv_now(c[k], back, sizeof back), -1);
    assert_int_equal(u->nsenders, 3); /* a socket of the proxy's per client */
    sockit_proxy_stats s = stats_of(p);
    assert_int_equal(s.connections, 3);
    assert_int_equal(s.open, 3);
    assert_int_equal(s.datagrams_up, 5);
    assert_int_equal(s.datagrams_down, 5);
    assert_int_equal(s.bytes_up, 8 * 3 + sizeof big);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(e.open, 3);
    finish(loop, p, u, c, 3);
}

/* ---- the toxics ----------------------------------------------------------------------- */

static void test_loss_drops_its_share_of_10000(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, false);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LOSS, SOCKIT_UPSTREAM);
    t.probability = 0.3;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    send_paced(loop, p, c, 10000, 64);
    RUN_UNTIL(loop, (unsigned long long)u->got == stats_of(p).datagrams_up, 2);
    sockit_proxy_stats s = stats_of(p);
    assert_int_equal(s.datagrams_up + s.dropped, 10000);
    assert_int_equal(u->got, (int)s.datagrams_up);
    assert_true(s.dropped >= 2500 && s.dropped <= 3500);
    finish(loop, p, u, &c, 1);
}

static void test_loss_in_bursts_keeps_its_share_and_run_length(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, false);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LOSS, SOCKIT_UPSTREAM);
    t.probability = 0.3;
    t.burst = 5;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    send_paced(loop, p, c, 10000, 64);
    RUN_UNTIL(loop, (unsigned long long)u->got == stats_of(p).datagrams_up, 2);
    assert_int_equal(u->got, (int)stats_of(p).datagrams_up);
    /* the runs of missing sequence numbers (loopback keeps the order) */
    int runs = 0, lost = 0, expect = 0;
    for (int i = 0; i <= u->got; i++) {
        int next = i < u->got ? u->order[i] : 10000;
        assert_true(next >= expect);
        if (next > expect) {
            runs++;
            lost += next - expect;
        }
        expect = next + 1;
    }
    assert_true(lost >= 2500 && lost <= 3500);
    double mean = (double)lost / runs;
    assert_true(mean >= 4.0 && mean <= 6.0);
    finish(loop, p, u, &c, 1);
}

static void test_duplicate_sends_its_share_twice(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, false);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_DUPLICATE, SOCKIT_UPSTREAM);
    t.probability = 0.5;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    /* paced by what arrives: the proxy's count of datagrams sent has the copies */
    for (int i = 0; i < 2000; i += 50) {
        for (int j = i; j < i + 50; j++)
            send_seq(c, (unsigned)j, 64);
        RUN_UNTIL(loop, u->got > 0 && u->order[u->got - 1] == i + 49, 5);
    }
    run_for(loop, 0.02);
    int extra = u->got - 2000;
    assert_true(extra >= 800 && extra <= 1200);
    /* every one came, a copy right after its original */
    int expect = 0;
    for (int i = 0; i < u->got; i++) {
        if (u->order[i] == expect - 1)
            continue;
        assert_int_equal(u->order[i], expect);
        expect++;
    }
    assert_int_equal(expect, 2000);
    finish(loop, p, u, &c, 1);
}

static void test_truncate_cuts_long_datagrams(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_TRUNCATE, SOCKIT_DOWNSTREAM);
    t.size = 10;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    char buf[256];
    send_seq(c, 1, 100);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 10);
    assert_int_equal(u->last_len, 100); /* upstream saw it whole: only downstream cuts */
    send_seq(c, 2, 8);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 8);
    /* the close names the toxics that acted on the entry */
    assert_string_equal(e.toxics, "truncate_downstream");
    assert_ok(sockit_proxy_set_enabled(p, false));
    RUN_UNTIL(loop, e.close == 1, 3);
    assert_int_equal(e.close, 1);
    assert_string_equal(e.toxics, "truncate_downstream");
    finish(loop, p, u, &c, 1);
}

static void test_reorder_lets_gap_datagrams_overtake(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, false);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_REORDER, SOCKIT_UPSTREAM);
    t.probability = 0.3;
    t.gap = 2;
    t.delay = 1000;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    send_paced(loop, p, c, 1000, 64);
    RUN_UNTIL(loop, u->got >= 1000, 3);
    assert_int_equal(u->got, 1000);
    static bool seen[1000];
    memset(seen, 0, sizeof seen);
    int late = 0, highest = -1;
    for (int i = 0; i < 1000; i++) {
        int s = u->order[i];
        assert_true(s >= 0 && s < 1000 && !seen[s]);
        seen[s] = true;
        if (s < highest)
            late++;
        else
            highest = s;
    }
    assert_true(late >= 150 && late <= 450);
    assert_int_equal(stats_of(p).dropped, 0);
    /* alone, a held datagram goes after its delay */
    assert_ok(sockit_proxy_remove_toxic(p, "reorder_upstream"));
    t.probability = 1;
    t.gap = 5;
    t.delay = 200;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    int before = u->got;
    double t0 = harness_now();
    send_seq(c, 5000, 64);
    RUN_UNTIL(loop, u->got > before, 3);
    double took = harness_now() - t0;
    assert_int_equal(u->got, before + 1);
    assert_true(took >= 0.15 && took < 1.5);
    finish(loop, p, u, &c, 1);
}

static void test_reorder_holds_64_at_most_and_held_is_counted(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, false);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_REORDER, SOCKIT_UPSTREAM);
    t.probability = 1;
    t.gap = 1000;
    t.delay = 3600000;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    for (int i = 0; i < 100; i++)
        send_seq(c, (unsigned)i, 100);
    RUN_UNTIL(loop, u->got >= 36, 3);
    run_for(loop, 0.05);
    assert_int_equal(u->got, 36); /* the 64 first held; the rest pass in order */
    assert_int_equal(u->order[0], 64);
    assert_int_equal(u->order[35], 99);
    sockit_proxy_stats s = stats_of(p);
    assert_true(s.held >= 64 * 100 && s.held <= 64 * 200); /* bytes and bookkeeping */
    assert_ok(sockit_proxy_remove_toxic(p, "reorder_upstream"));
    RUN_UNTIL(loop, u->got >= 100, 3);
    assert_int_equal(u->got, 100);
    assert_int_equal(u->order[36], 0);
    assert_int_equal(stats_of(p).held, 0);
    finish(loop, p, u, &c, 1);
}

static void test_latency_delays_each_datagram(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit *c = client_of(p);
    char buf[256];
    send_seq(c, 0, 16); /* the entry is made before the clock starts */
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LATENCY, SOCKIT_DOWNSTREAM);
    t.latency = 100;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    double rtt[5];
    for (int i = 0; i < 5; i++) {
        double t0 = harness_now();
        send_seq(c, (unsigned)i + 1, 16);
        assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
        rtt[i] = harness_now() - t0;
    }
    for (int i = 0; i < 5; i++) /* a sort of five */
        for (int j = i + 1; j < 5; j++)
            if (rtt[j] < rtt[i]) {
                double x = rtt[i];
                rtt[i] = rtt[j];
                rtt[j] = x;
            }
    /* 100 ms +-15%, and 10 ms for a busy machine's scheduling */
    assert_true(rtt[2] >= 0.085 && rtt[2] <= 0.125);
    finish(loop, p, u, &c, 1);
}

static void test_bandwidth_caps_the_rate_and_drops_past_a_second(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, false);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_BANDWIDTH, SOCKIT_UPSTREAM);
    t.rate = 20; /* KB/s: 100 datagrams of 200 B in 1 s */
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    double t0 = harness_now();
    for (int i = 0; i < 150; i += 50) {
        for (int j = i; j < i + 50; j++)
            send_seq(c, (unsigned)j, 200);
        run_for(loop, 0.02);
    }
    RUN_UNTIL(loop, u->got >= 100, 3);
    double took = harness_now() - t0;
    assert_true(took >= 0.85 && took <= 1.3);
    run_for(loop, 0.3);
    sockit_proxy_stats s = stats_of(p);
    assert_int_equal(s.datagrams_up + s.dropped, 150);
    assert_true(s.dropped >= 30 && s.dropped <= 60); /* over a second of queue */
    finish(loop, p, u, &c, 1);
}

static void test_bandwidth_holds_its_rate_under_overload(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, false);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_BANDWIDTH, SOCKIT_UPSTREAM);
    t.rate = 1000; /* KB/s, offered about twice that: the toxic's queue stays full */
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c = client_of(p);
    double t0 = harness_now(), mark = 0;
    size_t bytes_at_mark = 0;
    int sent = 0;
    while (harness_now() - t0 < 2.0) {
        double now = harness_now() - t0;
        /* 20 datagrams of 1,000 B every 10 ms: 2 MB/s */
        while (sent < (int)(now * 2000)) {
            send_seq(c, (unsigned)sent, 1000);
            sent++;
        }
        if (mark == 0 && now >= 0.5) {
            mark = harness_now();
            bytes_at_mark = (size_t)stats_of(p).bytes_up;
        }
        sockit_loop_run_once(loop, 0.002);
    }
    double rate = (double)((size_t)stats_of(p).bytes_up - bytes_at_mark) / (harness_now() - mark);
    assert_true(rate >= 850e3 && rate <= 1150e3);
    assert_true(stats_of(p).dropped > 0);
    finish(loop, p, u, &c, 1);
}

/* ---- entries ---------------------------------------------------------------------------- */

static void test_idle_entries_expire_and_come_back(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true);
    struct events e;
    sockit_proxy_config cfg = config_to(u->port, &e);
    cfg.idle_timeout = 0.2;
    sockit_proxy *p = sockit_proxy_new(loop, &cfg);
    assert_sock(p);
    sockit *c = client_of(p);
    char buf[64];
    send_seq(c, 1, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    assert_int_equal(stats_of(p).open, 1);
    /* traffic keeps it */
    for (int i = 0; i < 4; i++) {
        run_for(loop, 0.1);
        send_seq(c, 2, 16);
        assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    }
    assert_int_equal(stats_of(p).connections, 1);
    RUN_UNTIL(loop, stats_of(p).open == 0, 3);
    assert_int_equal(stats_of(p).open, 0);
    assert_int_equal(e.close, 1);
    assert_string_equal(e.reason, "idle");
    send_seq(c, 3, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    assert_int_equal(stats_of(p).connections, 2);
    assert_int_equal(e.open, 2);
    finish(loop, p, u, &c, 1);
}

static void test_a_full_table_drops_new_clients_until_one_expires(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true);
    struct events e;
    sockit_proxy_config cfg = config_to(u->port, &e);
    cfg.idle_timeout = 0.3;
    cfg.max_clients = 2;
    sockit_proxy *p = sockit_proxy_new(loop, &cfg);
    assert_sock(p);
    sockit *c[3] = {client_of(p), client_of(p), client_of(p)};
    char buf[64];
    for (int k = 0; k < 2; k++) {
        send_seq(c[k], 1, 16);
        assert_int_equal(recv_within(loop, c[k], buf, sizeof buf, 3), 16);
    }
    send_seq(c[2], 1, 16);
    assert_int_equal(recv_within(loop, c[2], buf, sizeof buf, 0.2), -1);
    assert_int_equal(stats_of(p).dropped, 1);
    assert_int_equal(stats_of(p).open, 2);
    /* the two it has are still served */
    send_seq(c[0], 2, 16);
    assert_int_equal(recv_within(loop, c[0], buf, sizeof buf, 3), 16);
    RUN_UNTIL(loop, stats_of(p).open < 2, 3);
    send_seq(c[2], 3, 16);
    assert_int_equal(recv_within(loop, c[2], buf, sizeof buf, 3), 16);
    finish(loop, p, u, c, 3);
}

static void test_an_unreachable_upstream_is_told_and_its_client_dropped(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct events e;
    sockit_proxy_config cfg = config_to(9, &e);
    cfg.upstream_host = "255.255.255.255"; /* connect refuses it: no SO_BROADCAST */
    sockit_proxy *p = sockit_proxy_new(loop, &cfg);
    assert_sock(p);
    sockit *c = client_of(p);
    send_seq(c, 1, 16);
    RUN_UNTIL(loop, e.refused == 1, 3);
    assert_int_equal(e.refused, 1);
    assert_non_null(strstr(e.reason, "upstream"));
    send_seq(c, 2, 16); /* dropped without another try for a while */
    run_for(loop, 0.05);
    sockit_proxy_stats s = stats_of(p);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.datagrams_up, 0);
    assert_int_equal(e.open, 0);
    /* a second on, the client's next datagram tries again */
    RUN_UNTIL(loop, stats_of(p).open == 0, 3);
    send_seq(c, 3, 16);
    RUN_UNTIL(loop, e.refused == 2, 3);
    assert_int_equal(e.refused, 2);
    sockit_proxy_close(p);
    sockit_close(c);
    close_loop(loop);
}

/* ---- changes on a live proxy ---------------------------------------------------------- */

static void test_toxics_change_on_live_entries(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit *c = client_of(p);
    char buf[64];
    send_seq(c, 1, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LOSS, SOCKIT_DOWNSTREAM);
    t.probability = 1;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    send_seq(c, 2, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 0.2), -1);
    t.probability = 0;
    assert_ok(sockit_proxy_update_toxic(p, "loss_downstream", &t));
    send_seq(c, 3, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    /* held for an hour, let go the moment its toxic goes */
    sockit_toxic r = toxic_of(SOCKIT_TOXIC_REORDER, SOCKIT_DOWNSTREAM);
    r.probability = 1;
    r.gap = 100;
    r.delay = 3600000;
    assert_ok(sockit_proxy_add_toxic(p, &r));
    send_seq(c, 4, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 0.2), -1);
    assert_ok(sockit_proxy_remove_toxic(p, "reorder_downstream"));
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    assert_int_equal(seq_of(buf, 16), 4);
    finish(loop, p, u, &c, 1);
}

static void test_disabled_and_moved_proxies(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true), *u2 = upstream_start(loop, true);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_addr before, after;
    assert_ok(sockit_proxy_address(p, &before));
    sockit *c = client_of(p);
    char buf[64];
    send_seq(c, 1, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    assert_ok(sockit_proxy_set_enabled(p, false));
    assert_false(sockit_proxy_enabled(p));
    RUN_UNTIL(loop, stats_of(p).open == 0, 3);
    assert_int_equal(e.close, 1);
    assert_string_equal(e.reason, "proxy disabled");
    sockit_send(c, "x", 1, 0); /* nothing listens: at most an ICMP error comes back */
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 0.1), -1);
    assert_ok(sockit_proxy_set_enabled(p, true));
    assert_ok(sockit_proxy_address(p, &after));
    assert_true(sockit_addr_equal(&before, &after));
    send_seq(c, 2, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    assert_int_equal(u->got, 2);
    assert_ok(sockit_proxy_set_upstream(p, "127.0.0.1", u2->port));
    send_seq(c, 3, 16);
    assert_int_equal(recv_within(loop, c, buf, sizeof buf, 3), 16);
    assert_int_equal(u2->got, 1);
    assert_int_equal(u->got, 2);
    assert_string_equal(e.reason, "upstream changed");
    upstream_stop(u2);
    finish(loop, p, u, &c, 1);
    free(u2);
}

static void test_closing_with_datagrams_held_frees_everything(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true);
    struct events e;
    sockit_proxy *p = proxy_to(loop, u->port, &e);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_LATENCY, SOCKIT_UPSTREAM);
    t.latency = 10000;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    sockit *c[2] = {client_of(p), client_of(p)};
    for (int i = 0; i < 20; i++)
        send_seq(c[i % 2], (unsigned)i, 512);
    RUN_UNTIL(loop, stats_of(p).open == 2, 3);
    run_for(loop, 0.05);
    assert_int_equal(u->got, 0);
    assert_true(stats_of(p).held >= 20 * 512);
    /* the proxy goes at once with what it holds; the loop ends clean (ASan: no leak) */
    finish(loop, p, u, c, 2);
}

static void test_closed_or_downed_while_resolving_a_name(void **state)
{
    (void)state;
    int fds_before = harness_count_fds(), threads_before = harness_count_threads();
    sockit_loop *loop = new_loop();
    struct upstream *u = upstream_start(loop, true);
    struct events e;
    sockit_proxy_config cfg = config_to(u->port, &e);
    cfg.upstream_host = "localhost"; /* a name: looked up on a resolver thread */
    sockit_proxy *p = sockit_proxy_new(loop, &cfg);
    assert_sock(p);
    sockit *c = client_of(p);
    send_seq(c, 1, 16);
    RUN_UNTIL(loop, stats_of(p).open == 1, 3);
    assert_ok(sockit_proxy_set_enabled(p, false)); /* while the lookup runs, likely */
    assert_ok(sockit_proxy_set_enabled(p, true));
    send_seq(c, 2, 16);
    RUN_UNTIL(loop, stats_of(p).connections == 2, 3);
    sockit_proxy_close(p); /* with the second lookup pending, likely */
    sockit_close(c);
    upstream_stop(u);
    close_loop(loop); /* nothing left behind: the lookups' answers were dropped */
    free(u);
    /* a lookup given up still finishes on its resolver thread, with whatever
     * descriptor getaddrinfo itself opens: wait for the threads to exit (50 ms
     * after their last lookup), then the descriptors count is sockit's alone */
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 300 && harness_count_threads() > threads_before; i++)
        nanosleep(&tick, NULL);
    for (int i = 0; i < 100 && harness_count_fds() > fds_before; i++)
        nanosleep(&tick, NULL);
}

/* ---- refusals --------------------------------------------------------------------------- */

static void test_bad_datagram_configs_and_toxics_are_refused(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct events e;
    sockit_proxy_config cfg = config_to(9, &e);
    cfg.idle_timeout = -1;
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "idle timeout"));
    cfg.idle_timeout = NAN;
    assert_null(sockit_proxy_new(loop, &cfg));
    cfg.idle_timeout = 0;
    cfg.max_clients = SOCKIT_PROXY_CLIENTS_MAX + 1;
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "max clients"));
    cfg.max_clients = -1;
    assert_null(sockit_proxy_new(loop, &cfg));
    cfg.max_clients = 0;
    /* a port in use */
    sockit_server_options opts = {.type = SOCK_DGRAM};
    sockit *busy = sockit_create_server("127.0.0.1", 0, &opts);
    assert_sock(busy);
    sockit_addr a;
    assert_ok(sockit_getsockname(busy, &a));
    cfg.listen_port = sockit_addr_port(&a);
    assert_null(sockit_proxy_new(loop, &cfg));
    assert_int_equal(sockit_errcode(), -EADDRINUSE);
    assert_non_null(strstr(sockit_errmsg(), "proxy udp"));
    sockit_close(busy);
    cfg.listen_port = 0;
    sockit_proxy *p = sockit_proxy_new(loop, &cfg);
    assert_sock(p);
    sockit_toxic t = toxic_of(SOCKIT_TOXIC_SLICER, SOCKIT_UPSTREAM);
    t.average_size = 10;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL); /* a stream toxic */
    assert_non_null(strstr(sockit_errmsg(), "stream"));
    t = toxic_of(SOCKIT_TOXIC_LOSS, SOCKIT_UPSTREAM);
    t.probability = 0.9;
    t.burst = 2;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "runs of 9"));
    t.burst = 9;
    assert_ok(sockit_proxy_add_toxic(p, &t));
    t.probability = 1.5;
    assert_code(sockit_proxy_update_toxic(p, "loss_upstream", &t), -EINVAL);
    t = toxic_of(SOCKIT_TOXIC_REORDER, SOCKIT_UPSTREAM);
    assert_int_equal(t.delay, 100);
    t.delay = 0;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    t.delay = 100;
    t.gap = 0;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    t = toxic_of(SOCKIT_TOXIC_TRUNCATE, SOCKIT_UPSTREAM);
    t.size = 65536;
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    t = toxic_of(SOCKIT_TOXIC_SLICER, SOCKIT_UPSTREAM);
    t.size_variation = -1; /* the wrong kind is told before its attributes */
    assert_code(sockit_proxy_add_toxic(p, &t), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "stream proxies only"));
    assert_int_equal(sockit_proxy_type(p), SOCK_DGRAM);
    assert_int_equal(sockit_proxy_type(NULL), -EINVAL);
    assert_true(sockit_toxic_kind_for(SOCKIT_TOXIC_REORDER, SOCK_DGRAM));
    assert_false(sockit_toxic_kind_for(SOCKIT_TOXIC_REORDER, SOCK_STREAM));
    sockit_proxy_close(p);
    close_loop(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_relays_datagrams_both_ways_with_a_socket_per_client),
        harness_test(test_loss_drops_its_share_of_10000),
        harness_test(test_loss_in_bursts_keeps_its_share_and_run_length),
        harness_test(test_duplicate_sends_its_share_twice),
        harness_test(test_truncate_cuts_long_datagrams),
        harness_test(test_reorder_lets_gap_datagrams_overtake),
        harness_test(test_reorder_holds_64_at_most_and_held_is_counted),
        harness_test(test_latency_delays_each_datagram),
        harness_test(test_bandwidth_caps_the_rate_and_drops_past_a_second),
        harness_test(test_bandwidth_holds_its_rate_under_overload),
        harness_test(test_idle_entries_expire_and_come_back),
        harness_test(test_a_full_table_drops_new_clients_until_one_expires),
        harness_test(test_an_unreachable_upstream_is_told_and_its_client_dropped),
        harness_test(test_toxics_change_on_live_entries),
        harness_test(test_disabled_and_moved_proxies),
        harness_test(test_closing_with_datagrams_held_frees_everything),
        harness_test(test_closed_or_downed_while_resolving_a_name),
        harness_test(test_bad_datagram_configs_and_toxics_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
