/* sockit_datagram (sockit.h section 11), tested from the header's promises: delivery
 * with the sender's address over UDP on 127.0.0.1 and ::1 and over Unix datagram
 * sockets (a bound path, abstract names, an unnamed sender, a socket pair), replies
 * from inside on_datagram (queued during the batch, sent when it returns), a batch of
 * 200, truncation at max_size, empty datagrams, every refused send, the ICMP refusal
 * to on_error, the queue and its limit (a Unix pair whose peer does not read), the
 * queue refused by a peer that went away, pause/resume, closing (from outside and
 * inside on_datagram, twice, with a queue), refused adoptions, the accessors and what
 * keeps the loop alive. Runs once per backend (CTest entries test_datagram_epoll and
 * test_datagram_poll set SOCKIT_LOOP_BACKEND).
 *
 * The peers are plain sockits driven by the test in the loop's thread: they send with
 * ordinary blocking sends (a loopback datagram is handed over at once) and read with
 * MSG_DONTWAIT between iterations. Every wait is a loop of sockit_loop_run_once with
 * a deadline, so a broken endpoint fails the test instead of hanging it. */
#include "harness.h"
#include "loop_harness.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- what an endpoint's callbacks saw --------------------------------------------- */

enum { MAX_GOT = 512, MAX_ERRS = 64 };

struct got {
    char *data; /* a copy of what on_datagram got */
    size_t len;
    bool truncated;
    bool has_from; /* from was not NULL */
    sockit_addr from;
};

struct rec {
    sockit_datagram *d; /* NULL once on_close ran */
    int n;              /* on_datagram calls */
    struct got g[MAX_GOT];
    int errors;
    int codes[MAX_ERRS];
    char errmsg[256]; /* sockit_errmsg() inside the first on_error */
    int closes;
    int close_inside_call; /* on_close ran from inside sockit_datagram_close */
    bool in_close_call;    /* the test is inside sockit_datagram_close */
    bool user_closed;      /* sockit_datagram_close was called */
    int late;              /* on_datagram after close, or anything after on_close */
    int wrong_d;           /* a callback's d was not the endpoint's */
    int send_in_close;     /* sockit_datagram_send from inside on_close */
    /* Actions the callbacks take after recording. */
    bool echo;               /* send each datagram back to its sender (NULL: the peer) */
    int echo_failures;       /* sends refused inside on_datagram */
    int echo_last_rc;        /* the last such refusal */
    size_t min_queue_growth; /* least growth of queued by one echo inside on_datagram */
    size_t max_queue_growth;
    sockit *peer_watch;     /* a peer that must not have the echo while the batch runs */
    int peer_had_it_early;  /* on_datagram found something on peer_watch already */
    int burst;              /* on_datagram sends this many copies back (at most 4) */
    int burst_rc[4];        /* what each of those sends returned */
    size_t burst_queued[4]; /* queued after each */
    int pause_at;           /* pause from inside the pause_at-th on_datagram (1-based) */
    int close_at;           /* close from inside the close_at-th on_datagram (1-based) */
    size_t close_rc;        /* what that close returned */
    int send_after_close_rc;
};

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    r->min_queue_growth = SIZE_MAX;
    r->send_in_close = 1;
    r->send_after_close_rc = 1;
}

static void rec_free(struct rec *r)
{
    for (int i = 0; i < r->n && i < MAX_GOT; i++)
        free(r->g[i].data);
}

static void on_datagram(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user)
{
    struct rec *r = user;
    if (d != r->d)
        r->wrong_d++;
    if (r->closes > 0 || r->user_closed)
        r->late++;
    if (r->n < MAX_GOT) {
        struct got *g = &r->g[r->n];
        g->data = malloc(len > 0 ? len : 1);
        assert_non_null(g->data);
        if (len > 0)
            memcpy(g->data, data, len);
        g->len = len;
        g->truncated = truncated;
        g->has_from = from != NULL;
        if (from != NULL)
            g->from = *from;
    }
    r->n++;
    if (r->echo) {
        size_t before = sockit_datagram_queued(d);
        int rc = sockit_datagram_send(d, data, len, from);
        if (rc != 0) {
            r->echo_failures++;
            r->echo_last_rc = rc;
        } else {
            size_t after = sockit_datagram_queued(d);
            size_t growth = after >= before ? after - before : 0;
            if (growth < r->min_queue_growth)
                r->min_queue_growth = growth;
            if (growth > r->max_queue_growth)
                r->max_queue_growth = growth;
        }
        if (r->peer_watch != NULL) {
            char b;
            if (recv(sockit_fileno(r->peer_watch), &b, 1, MSG_DONTWAIT | MSG_PEEK) >= 0)
                r->peer_had_it_early++;
        }
    }
    for (int i = 0; i < r->burst && i < 4; i++) {
        r->burst_rc[i] = sockit_datagram_send(d, data, len, from);
        r->burst_queued[i] = sockit_datagram_queued(d);
    }
    if (r->pause_at == r->n)
        sockit_datagram_pause(d);
    if (r->close_at == r->n) {
        r->user_closed = true;
        r->in_close_call = true;
        r->close_rc = sockit_datagram_close(d);
        r->in_close_call = false;
        r->send_after_close_rc = sockit_datagram_send(d, "x", 1, from);
    }
}

static void on_error(sockit_datagram *d, int code, void *user)
{
    struct rec *r = user;
    if (d != r->d)
        r->wrong_d++;
    if (r->closes > 0)
        r->late++;
    if (r->errors == 0)
        snprintf(r->errmsg, sizeof r->errmsg, "%s", sockit_errmsg());
    if (r->errors < MAX_ERRS)
        r->codes[r->errors] = code;
    r->errors++;
}

static void on_close(sockit_datagram *d, void *user)
{
    struct rec *r = user;
    if (d != r->d)
        r->wrong_d++;
    if (r->closes > 0)
        r->late++;
    r->closes++;
    if (r->in_close_call)
        r->close_inside_call++;
    r->send_in_close = sockit_datagram_send(d, "x", 1, NULL);
    r->d = NULL;
}

static const sockit_datagram_callbacks rec_cb = {
    .on_datagram = on_datagram, .on_error = on_error, .on_close = on_close};

static void adopt(sockit_loop *loop, sockit *s, struct rec *r)
{
    r->d = sockit_datagram_new(loop, s, &rec_cb, r);
    assert_sock(r->d);
}

/* The test closes the endpoint; returns what close returned. */
static size_t rec_close(struct rec *r)
{
    r->user_closed = true;
    r->in_close_call = true;
    size_t dropped = sockit_datagram_close(r->d);
    r->in_close_call = false;
    return dropped;
}

/* Waits for on_close and checks it ran once, from the loop, and was the last. */
static void wait_closed(sockit_loop *loop, struct rec *r)
{
    RUN_UNTIL(loop, r->closes > 0, 3.0);
    run_for(loop, 0.01);
    assert_int_equal(r->closes, 1);
    assert_int_equal(r->close_inside_call, 0);
    assert_int_equal(r->late, 0);
    assert_int_equal(r->wrong_d, 0);
    assert_null(r->d);
    assert_code(r->send_in_close, -EPIPE);
}

/* Closes from outside the callbacks, expecting `dropped`, and waits for on_close. */
static void close_and_wait(sockit_loop *loop, struct rec *r, size_t dropped)
{
    assert_int_equal(rec_close(r), dropped);
    assert_int_equal(r->closes, 0); /* not from inside close */
    wait_closed(loop, r);
}

/* The loop is not freed under an endpoint whose on_close is still to come (its
 * memory goes with on_close): close is -EBUSY until the loop has run it. */
static void test_loop_close_waits_for_a_closed_endpoints_on_close(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    assert_ok(sockit_bind(u, "127.0.0.1", 0));
    struct rec r;
    rec_init(&r);
    adopt(loop, u, &r);
    rec_close(&r);
    assert_code(sockit_loop_close(loop), -EBUSY);
    assert_non_null(strstr(sockit_errmsg(), "still closing"));
    wait_closed(loop, &r);
    rec_free(&r);
    close_loop(loop);
}

/* ---- peers ---------------------------------------------------------------------- */

static const char *loopback(int family) { return family == AF_INET6 ? "::1" : "127.0.0.1"; }

/* A UDP socket bound to the loopback on a free port; *addr is its address. */
static sockit *udp_bound(int family, sockit_addr *addr)
{
    sockit *s = sockit_socket(family, SOCK_DGRAM);
    assert_sock(s);
    assert_ok(sockit_bind(s, loopback(family), 0));
    assert_ok(sockit_getsockname(s, addr));
    assert_int_equal(sockit_addr_family(addr), family);
    assert_true(sockit_addr_port(addr) > 0);
    return s;
}

/* A Unix datagram socket bound to path (NULL: a free abstract name). */
static sockit *unix_bound(const char *path, sockit_addr *addr)
{
    sockit *s = sockit_socket(AF_UNIX, SOCK_DGRAM);
    assert_sock(s);
    assert_ok(sockit_bind(s, path, 0));
    assert_ok(sockit_getsockname(s, addr));
    assert_int_equal(sockit_addr_family(addr), AF_UNIX);
    return s;
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sockit-dgram-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void remove_tmpdir(const char *const *names, size_t n)
{
    char p[128];
    for (size_t i = 0; i < n; i++) {
        tmp_path(p, sizeof p, names[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(tmpdir), 0);
}

static void peer_sendto(sockit *peer, const void *buf, size_t len, const sockit_addr *to)
{
    assert_int_equal(sockit_sendto_addr(peer, buf, len, 0, to), (ssize_t)len);
}

static void peer_send(sockit *peer, const void *buf, size_t len)
{
    assert_int_equal(sockit_send(peer, buf, len, 0), (ssize_t)len);
}

/* Waits, running the loop, for one datagram on peer. Returns its length or the code
 * (SOCKIT_EWOULDBLOCK when none came within secs). */
static ssize_t peer_recv(sockit_loop *loop, sockit *peer, void *buf, size_t cap, sockit_addr *from,
                         double secs)
{
    double until = harness_now() + secs;
    for (;;) {
        ssize_t n = sockit_recvfrom(peer, buf, cap, MSG_DONTWAIT, from);
        if (n != SOCKIT_EWOULDBLOCK || harness_now() >= until)
            return n;
        sockit_loop_run_once(loop, 0.01);
    }
}

/* Nothing is waiting on peer (without running anything). */
static bool peer_empty(sockit *peer)
{
    char b;
    return recv(sockit_fileno(peer), &b, 1, MSG_DONTWAIT | MSG_PEEK) < 0;
}

static unsigned char pat(size_t i) { return (unsigned char)((i * 131u + (i >> 9)) & 0xff); }

static unsigned char *pattern(size_t len)
{
    unsigned char *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = pat(i);
    return p;
}

/* A datagram of exactly `len` bytes starting with its sequence number "%06d". */
static void numbered(char *buf, size_t len, int seq)
{
    char head[16];
    snprintf(head, sizeof head, "%06d", seq);
    memset(buf, '.', len);
    memcpy(buf, head, len < 6 ? len : 6);
}

static int seq_of(const char *buf, size_t len)
{
    if (len < 6)
        return -1;
    char head[7];
    memcpy(head, buf, 6);
    head[6] = '\0';
    return atoi(head);
}

/* ---- delivery and replies ----------------------------------------------------------- */

enum ep_kind { EP_UDP4, EP_UDP6, EP_UNIX_PATH, EP_UNIX_ABSTRACT };

/* A datagram from a bound peer reaches on_datagram whole with the peer's address and
 * the endpoint's user pointer; the reply sent to `from` inside on_datagram reaches the
 * peer from the endpoint's address. */
static void check_round_trip(enum ep_kind kind)
{
    sockit_loop *loop = new_loop();
    static const char *const names[] = {"ep.sock", "peer.sock"};
    char ep_path[128], peer_path[128];
    sockit_addr ep_addr, peer_addr;
    sockit *s, *peer;
    if (kind == EP_UDP4 || kind == EP_UDP6) {
        int family = kind == EP_UDP4 ? AF_INET : AF_INET6;
        s = udp_bound(family, &ep_addr);
        peer = udp_bound(family, &peer_addr);
    } else if (kind == EP_UNIX_PATH) {
        make_tmpdir();
        tmp_path(ep_path, sizeof ep_path, names[0]);
        tmp_path(peer_path, sizeof peer_path, names[1]);
        s = unix_bound(ep_path, &ep_addr);
        peer = unix_bound(peer_path, &peer_addr);
    } else {
        s = unix_bound(NULL, &ep_addr);
        peer = unix_bound(NULL, &peer_addr);
    }
    struct rec r;
    rec_init(&r);
    r.echo = true;
    adopt(loop, s, &r);
    assert_ptr_equal(sockit_datagram_user(r.d), &r);
    sockit_addr bound;
    assert_ok(sockit_datagram_address(r.d, &bound));
    assert_true(sockit_addr_equal(&bound, &ep_addr));

    peer_sendto(peer, "hello, endpoint", 15, &ep_addr);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.g[0].len, 15);
    assert_memory_equal(r.g[0].data, "hello, endpoint", 15);
    assert_false(r.g[0].truncated);
    assert_true(r.g[0].has_from);
    assert_true(sockit_addr_equal(&r.g[0].from, &peer_addr));
    assert_int_equal(r.echo_failures, 0);
    assert_int_equal(r.wrong_d, 0);

    char buf[64];
    sockit_addr from;
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, &from, 3.0), 15);
    assert_memory_equal(buf, "hello, endpoint", 15);
    assert_true(sockit_addr_equal(&from, &ep_addr));
    assert_int_equal(sockit_datagram_queued(r.d), 0);

    /* A second one, sent with sockit_datagram_send from outside any callback. */
    assert_ok(sockit_datagram_send(r.d, "unprompted", 10, &peer_addr));
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, &from, 3.0), 10);
    assert_memory_equal(buf, "unprompted", 10);
    assert_true(sockit_addr_equal(&from, &ep_addr));

    close_and_wait(loop, &r, 0);
    assert_int_equal(r.errors, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    if (kind == EP_UNIX_PATH)
        remove_tmpdir(names, 2);
    close_loop(loop);
}

static void test_udp4_datagram_arrives_with_its_sender_and_the_reply_returns(void **state)
{
    (void)state;
    check_round_trip(EP_UDP4);
}

static void test_udp6_datagram_arrives_with_its_sender_and_the_reply_returns(void **state)
{
    (void)state;
    check_round_trip(EP_UDP6);
}

static void test_unix_path_datagram_arrives_with_its_sender_and_the_reply_returns(void **state)
{
    (void)state;
    check_round_trip(EP_UNIX_PATH);
}

static void test_unix_abstract_datagram_arrives_with_its_sender_and_the_reply_returns(void **state)
{
    (void)state;
    check_round_trip(EP_UNIX_ABSTRACT);
}

/* The endpoint made by sockit_create_server (bound UDP) works the same. */
static void test_endpoint_on_a_create_server_udp_socket(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_server_options opts = {.family = AF_INET, .type = SOCK_DGRAM};
    sockit *s = sockit_create_server("127.0.0.1", 0, &opts);
    assert_sock(s);
    sockit_addr want;
    assert_ok(sockit_getsockname(s, &want));
    struct rec r;
    rec_init(&r);
    r.echo = true;
    adopt(loop, s, &r);
    sockit_addr bound;
    assert_ok(sockit_datagram_address(r.d, &bound));
    assert_true(sockit_addr_port(&bound) > 0);
    assert_int_equal(sockit_addr_port(&bound), sockit_addr_port(&want));
    sockit_addr peer_addr;
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    peer_sendto(peer, "ping", 4, &bound);
    char buf[16];
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, NULL, 3.0), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(r.n, 1);
    assert_true(sockit_addr_equal(&r.g[0].from, &peer_addr));
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* sockit_datagram_connect: sends without an address go to the peer, and another
 * sender's datagrams are kept out; an empty address and a NULL endpoint fail. */
static void test_connect_takes_a_peer_and_keeps_others_out(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr bound, peer_addr, other_addr;
    sockit *s = udp_bound(AF_INET, &bound);
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    assert_code(sockit_datagram_send(r.d, "x", 1, NULL), -EDESTADDRREQ); /* not yet */
    sockit *peer = udp_bound(AF_INET, &peer_addr), *other = udp_bound(AF_INET, &other_addr);
    assert_ok(sockit_datagram_connect(r.d, &peer_addr));
    assert_ok(sockit_datagram_send(r.d, "to peer", 7, NULL));
    char buf[16];
    sockit_addr from;
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, &from, 3.0), 7);
    assert_memory_equal(buf, "to peer", 7);
    assert_true(sockit_addr_equal(&from, &bound));
    peer_sendto(other, "stranger", 8, &bound);
    peer_sendto(peer, "friend", 6, &bound);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    run_for(loop, 0.1);
    assert_int_equal(r.n, 1); /* the stranger's never came */
    assert_true(sockit_addr_equal(&r.g[0].from, &peer_addr));
    sockit_addr empty = {0};
    assert_code(sockit_datagram_connect(r.d, &empty), SOCKIT_EBADADDR);
    assert_code(sockit_datagram_connect(NULL, &peer_addr), -EINVAL);
    assert_code(sockit_datagram_connect(r.d, NULL), -EINVAL);
    sockit_addr v6;
    assert_ok(sockit_addr_parse(&v6, "[::1]:9"));
    assert_code(sockit_datagram_connect(r.d, &v6), -EAFNOSUPPORT);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    assert_ok(sockit_close(other));
    close_loop(loop);
}

/* An unnamed Unix sender comes with from NULL ("which cannot be answered"). */
static void test_unnamed_unix_sender_comes_with_a_null_address(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    static const char *const names[] = {"ep.sock"};
    make_tmpdir();
    char path[128];
    tmp_path(path, sizeof path, names[0]);
    sockit_addr ep_addr;
    sockit *s = unix_bound(path, &ep_addr);
    sockit *peer = sockit_socket(AF_UNIX, SOCK_DGRAM);
    assert_sock(peer);
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    peer_sendto(peer, "anonymous", 9, &ep_addr);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.g[0].len, 9);
    assert_memory_equal(r.g[0].data, "anonymous", 9);
    assert_false(r.g[0].has_from);
    assert_false(r.g[0].truncated);
    close_and_wait(loop, &r, 0);
    assert_int_equal(r.errors, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    remove_tmpdir(names, 1);
    close_loop(loop);
}

/* A Unix socket pair: the endpoint's peer is unnamed (from NULL) and the reply goes
 * to the connected peer with to NULL. */
static void test_unix_socketpair_endpoint_answers_its_connected_peer(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    struct rec r;
    rec_init(&r);
    r.echo = true; /* from is NULL: the echo goes to the connected peer */
    adopt(loop, p[0], &r);
    peer_send(p[1], "over the pair", 13);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.g[0].len, 13);
    assert_memory_equal(r.g[0].data, "over the pair", 13);
    assert_false(r.g[0].has_from);
    assert_int_equal(r.echo_failures, 0);
    char buf[32];
    assert_int_equal(peer_recv(loop, p[1], buf, sizeof buf, NULL, 3.0), 13);
    assert_memory_equal(buf, "over the pair", 13);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(p[1]));
    close_loop(loop);
}

/* "sends made while a batch is being delivered are sent together when the batch's
 * callbacks have returned": inside on_datagram the reply is in the queue (queued grew
 * by its length) and not yet at the peer; after the iteration it is. */
static void test_reply_inside_on_datagram_is_queued_until_the_batch_returns(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    struct rec r;
    rec_init(&r);
    r.echo = true;
    r.peer_watch = peer;
    adopt(loop, s, &r);
    peer_sendto(peer, "twenty-one bytes long", 21, &ep_addr);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.echo_failures, 0);
    assert_int_equal(r.min_queue_growth, 21);
    assert_int_equal(r.max_queue_growth, 21);
    assert_int_equal(r.peer_had_it_early, 0);
    /* The iteration that delivered the batch sent the reply. */
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    assert_false(peer_empty(peer));
    char buf[32];
    assert_int_equal(sockit_recvfrom(peer, buf, sizeof buf, MSG_DONTWAIT, NULL), 21);
    assert_memory_equal(buf, "twenty-one bytes long", 21);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Sends made during a batch are "copied to the queue", so they count against its
 * limit: with a limit of 50, two 24-byte replies fit and the third is -ENOBUFS and
 * queues nothing; the peer gets the two. */
static void test_sends_inside_a_batch_count_against_the_queue_limit(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    struct rec r;
    rec_init(&r);
    r.burst = 3;
    adopt(loop, s, &r);
    assert_ok(sockit_datagram_set_limit(r.d, 50));
    peer_sendto(peer, "twenty-four bytes, this.", 24, &ep_addr);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.burst_rc[0], 0);
    assert_int_equal(r.burst_queued[0], 24);
    assert_int_equal(r.burst_rc[1], 0);
    assert_int_equal(r.burst_queued[1], 48);
    assert_code(r.burst_rc[2], -ENOBUFS);
    assert_int_equal(r.burst_queued[2], 48);
    char buf[32];
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, NULL, 3.0), 24);
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, NULL, 3.0), 24);
    run_for(loop, 0.02);
    assert_true(peer_empty(peer));
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- batches -------------------------------------------------------------------- */

enum { BATCH = 200, BATCH_LEN = 24 };

/* 200 datagrams sent before the loop runs all arrive, in order, each once; the 200
 * replies made inside on_datagram all reach the peer, each once, in order. */
static void
test_200_datagrams_sent_before_the_loop_runs_arrive_in_order_and_are_answered(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    /* Room for all of them in both kernels, so a drop cannot be the kernel's. */
    assert_ok(sockit_set_rcvbuf(s, 1 << 20));
    assert_ok(sockit_set_rcvbuf(peer, 1 << 20));
    struct rec r;
    rec_init(&r);
    r.echo = true;
    adopt(loop, s, &r);
    for (int i = 0; i < BATCH; i++) {
        char buf[BATCH_LEN];
        numbered(buf, sizeof buf, i);
        peer_sendto(peer, buf, sizeof buf, &ep_addr);
    }
    int seen[BATCH] = {0}, replies = 0, bad_replies = 0, out_of_order = 0, last = -1;
    double until = harness_now() + 5.0;
    while ((r.n < BATCH || replies < BATCH) && harness_now() < until) {
        sockit_loop_run_once(loop, 0.01);
        for (;;) {
            char buf[64];
            sockit_addr from;
            ssize_t n = sockit_recvfrom(peer, buf, sizeof buf, MSG_DONTWAIT, &from);
            if (n < 0)
                break;
            int seq = seq_of(buf, (size_t)n);
            if (n != BATCH_LEN || seq < 0 || seq >= BATCH || !sockit_addr_equal(&from, &ep_addr)) {
                bad_replies++;
                continue;
            }
            seen[seq]++;
            if (seq <= last)
                out_of_order++;
            last = seq;
            replies++;
        }
    }
    /* Anything more would be a duplicate. */
    run_for(loop, 0.05);
    assert_int_equal(r.n, BATCH);
    for (int i = 0; i < BATCH; i++) {
        char want[BATCH_LEN];
        numbered(want, sizeof want, i);
        assert_int_equal(r.g[i].len, BATCH_LEN);
        assert_memory_equal(r.g[i].data, want, BATCH_LEN);
        assert_false(r.g[i].truncated);
        assert_true(r.g[i].has_from);
        assert_true(sockit_addr_equal(&r.g[i].from, &peer_addr));
    }
    assert_int_equal(r.echo_failures, 0);
    assert_int_equal(r.min_queue_growth, BATCH_LEN); /* each reply went to the queue */
    assert_int_equal(bad_replies, 0);
    assert_int_equal(replies, BATCH);
    for (int i = 0; i < BATCH; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(out_of_order, 0);
    assert_true(peer_empty(peer));
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    assert_int_equal(r.errors, 0);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- sizes ---------------------------------------------------------------------- */

static void test_max_size_truncates_longer_datagrams_and_flags_them(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    assert_code(sockit_datagram_set_max_size(r.d, 0), -EINVAL);
    assert_code(sockit_datagram_set_max_size(r.d, 65537), -EINVAL);
    assert_ok(sockit_datagram_set_max_size(r.d, 65536));
    assert_ok(sockit_datagram_set_max_size(r.d, 1));
    assert_ok(sockit_datagram_set_max_size(r.d, 8));
    peer_sendto(peer, "abcdefghijklmnopqrst", 20, &ep_addr);
    peer_sendto(peer, "ABCDEFGH", 8, &ep_addr);
    peer_sendto(peer, "123456789", 9, &ep_addr);
    RUN_UNTIL(loop, r.n >= 3, 3.0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.g[0].len, 8);
    assert_memory_equal(r.g[0].data, "abcdefgh", 8);
    assert_true(r.g[0].truncated);
    assert_true(r.g[0].has_from);
    assert_true(sockit_addr_equal(&r.g[0].from, &peer_addr));
    assert_int_equal(r.g[1].len, 8);
    assert_memory_equal(r.g[1].data, "ABCDEFGH", 8);
    assert_false(r.g[1].truncated);
    assert_int_equal(r.g[2].len, 8);
    assert_memory_equal(r.g[2].data, "12345678", 8);
    assert_true(r.g[2].truncated);
    /* A truncated datagram is delivered, not an error. */
    assert_int_equal(r.errors, 0);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* The default max_size (65,536) holds the largest UDP datagram whole, and the
 * endpoint can send one that size back. */
static void test_default_max_size_delivers_a_65507_byte_udp_datagram_whole(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    struct rec r;
    rec_init(&r);
    r.echo = true;
    adopt(loop, s, &r);
    unsigned char *big = pattern(65507);
    peer_sendto(peer, big, 65507, &ep_addr);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.g[0].len, 65507);
    assert_false(r.g[0].truncated);
    assert_memory_equal(r.g[0].data, big, 65507);
    assert_int_equal(r.echo_failures, 0);
    unsigned char *in = malloc(65536);
    assert_non_null(in);
    assert_int_equal(peer_recv(loop, peer, in, 65536, NULL, 3.0), 65507);
    assert_memory_equal(in, big, 65507);
    free(in);
    free(big);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* The default max_size (65,536) holds a Unix datagram of that size whole; one byte
 * more comes truncated, with its first 65,536 bytes. */
static void test_unix_datagram_one_byte_past_the_default_max_size_is_flagged(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    struct rec r;
    rec_init(&r);
    adopt(loop, p[0], &r);
    /* Two 64 KiB datagrams wait unread before the loop runs. A Unix socket is
     * writable only while what it has in flight is at most a quarter of its send
     * buffer: with the default one, a second send refused by an injected EAGAIN (the
     * fault runs) would wait for ever although the kernel has room. */
    assert_ok(sockit_set_sndbuf(p[1], 212992));
    unsigned char *big = pattern(65537);
    peer_send(p[1], big, 65536);
    peer_send(p[1], big, 65537);
    RUN_UNTIL(loop, r.n >= 2, 3.0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.g[0].len, 65536);
    assert_false(r.g[0].truncated);
    assert_memory_equal(r.g[0].data, big, 65536);
    assert_int_equal(r.g[1].len, 65536);
    assert_true(r.g[1].truncated);
    assert_memory_equal(r.g[1].data, big, 65536);
    assert_int_equal(r.errors, 0);
    free(big);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(p[1]));
    close_loop(loop);
}

/* An empty datagram is a datagram (len 0), not an end of stream: the next arrives and
 * the endpoint stays open. The endpoint sends one too (NULL buffer, len 0). */
static void check_empty_datagram(bool unix_pair)
{
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    memset(&ep_addr, 0, sizeof ep_addr);
    memset(&peer_addr, 0, sizeof peer_addr);
    sockit *s, *peer;
    if (unix_pair) {
        sockit *p[2];
        assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
        s = p[0];
        peer = p[1];
    } else {
        s = udp_bound(AF_INET, &ep_addr);
        peer = udp_bound(AF_INET, &peer_addr);
    }
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    if (unix_pair) {
        peer_send(peer, "", 0);
        peer_send(peer, "after", 5);
    } else {
        peer_sendto(peer, "", 0, &ep_addr);
        peer_sendto(peer, "after", 5, &ep_addr);
    }
    RUN_UNTIL(loop, r.n >= 2, 3.0);
    run_for(loop, 0.02);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.g[0].len, 0);
    assert_false(r.g[0].truncated);
    assert_int_equal(r.g[1].len, 5);
    assert_memory_equal(r.g[1].data, "after", 5);
    if (!unix_pair) {
        assert_true(r.g[0].has_from);
        assert_true(sockit_addr_equal(&r.g[0].from, &peer_addr));
    }
    assert_int_equal(r.closes, 0);
    assert_int_equal(r.errors, 0);

    assert_ok(sockit_datagram_send(r.d, NULL, 0, unix_pair ? NULL : &peer_addr));
    char buf[16];
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, NULL, 3.0), 0);
    assert_ok(sockit_datagram_send(r.d, "next", 4, unix_pair ? NULL : &peer_addr));
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, NULL, 3.0), 4);
    assert_memory_equal(buf, "next", 4);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_empty_udp_datagram_arrives_as_length_zero(void **state)
{
    (void)state;
    check_empty_datagram(false);
}

static void test_empty_unix_datagram_arrives_as_length_zero(void **state)
{
    (void)state;
    check_empty_datagram(true);
}

/* ---- sending errors -------------------------------------------------------------- */

static void check_send_errors(int family)
{
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(family, &ep_addr);
    sockit *peer = udp_bound(family, &peer_addr);
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    /* What UDP carries: 65,507 bytes over IPv4, 65,527 over IPv6. */
    size_t most = family == AF_INET ? 65507 : 65527;
    unsigned char *big = pattern(most + 1);

    assert_code(sockit_datagram_send(r.d, big, most + 1, &peer_addr), -EMSGSIZE);
    assert_code(sockit_datagram_send(r.d, big, 100000, &peer_addr), -EMSGSIZE);
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    /* The most it carries goes, whole. */
    assert_ok(sockit_datagram_send(r.d, big, most, &peer_addr));
    unsigned char *in = malloc(65536);
    assert_non_null(in);
    assert_int_equal(peer_recv(loop, peer, in, 65536, NULL, 3.0), (ssize_t)most);
    assert_memory_equal(in, big, most);
    free(in);

    assert_code(sockit_datagram_send(r.d, NULL, 5, &peer_addr), -EINVAL);
    assert_code(sockit_datagram_send(r.d, "x", 1, NULL), -EDESTADDRREQ);
    sockit_addr empty;
    memset(&empty, 0, sizeof empty);
    assert_code(sockit_datagram_send(r.d, "x", 1, &empty), SOCKIT_EBADADDR);
    if (family == AF_INET) {
        /* An IPv6 socket may send to an IPv4 address (mapped), so only this way round. */
        sockit_addr other;
        assert_ok(sockit_addr_ip(&other, "::1", sockit_addr_port(&peer_addr)));
        assert_code(sockit_datagram_send(r.d, "x", 1, &other), -EAFNOSUPPORT);
    }
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    /* None of those sent anything. */
    run_for(loop, 0.02);
    assert_true(peer_empty(peer));
    /* Refused sends are the caller's to hear of, not on_error's. */
    assert_int_equal(r.errors, 0);

    assert_int_equal(rec_close(&r), 0);
    assert_code(sockit_datagram_send(r.d, "x", 1, &peer_addr), -EPIPE);
    wait_closed(loop, &r);
    run_for(loop, 0.02);
    assert_true(peer_empty(peer));
    free(big);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

static void test_refused_sends_over_udp4(void **state)
{
    (void)state;
    check_send_errors(AF_INET);
}

/* Over IPv6 the bound is 65,527 bytes. */
static void test_refused_sends_over_udp6(void **state)
{
    (void)state;
    check_send_errors(AF_INET6);
}

/* A connected UDP endpoint whose peer port is closed: the ICMP refusal reaches
 * on_error as -ECONNREFUSED, naming the address; the endpoint stays open, receives
 * and sends to its peer once something listens there. */
static void test_icmp_refusal_reaches_on_error_and_the_endpoint_stays_usable(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr gone;
    sockit *tmp = udp_bound(AF_INET, &gone);
    int port = sockit_addr_port(&gone);
    assert_ok(sockit_close(tmp)); /* nobody on that port now */
    sockit_addr ep_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    assert_ok(sockit_connect_addr(s, &gone));
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    assert_ok(sockit_datagram_send(r.d, "anyone?", 7, NULL));
    RUN_UNTIL(loop, r.errors >= 1, 3.0);
    assert_int_equal(r.errors, 1);
    assert_code(r.codes[0], -ECONNREFUSED);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    if (strstr(r.errmsg, want) == NULL)
        fail_msg("on_error's message \"%s\" does not name %s", r.errmsg, want);
    run_for(loop, 0.05);
    assert_int_equal(r.errors, 1); /* reported once, not on every iteration */
    assert_int_equal(r.closes, 0);
    assert_int_equal(r.n, 0);

    /* Still open and usable: a socket on that port now talks to it both ways. */
    sockit *peer = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(peer);
    assert_ok(sockit_bind_addr(peer, &gone));
    peer_sendto(peer, "here now", 8, &ep_addr);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    assert_int_equal(r.n, 1);
    assert_memory_equal(r.g[0].data, "here now", 8);
    assert_true(r.g[0].has_from);
    assert_true(sockit_addr_equal(&r.g[0].from, &gone));
    assert_ok(sockit_datagram_send(r.d, "hello", 5, NULL));
    char buf[16];
    sockit_addr from;
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, &from, 3.0), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_true(sockit_addr_equal(&from, &ep_addr));
    assert_int_equal(r.errors, 1);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* The refusal of a send tried at once is returned: the first datagram to a closed
 * port goes, the kernel then holds the ICMP refusal, and the next send tried at once
 * gets it (-ECONNREFUSED). The endpoint stays open. */
static void test_a_send_tried_at_once_returns_the_kernels_refusal(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr gone;
    sockit *tmp = udp_bound(AF_INET, &gone);
    assert_ok(sockit_close(tmp));
    sockit_addr ep_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    assert_ok(sockit_connect_addr(s, &gone));
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    assert_ok(sockit_datagram_send(r.d, "first", 5, NULL));
    assert_code(sockit_datagram_send(r.d, "second", 6, NULL), -ECONNREFUSED);
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    run_for(loop, 0.02);
    assert_int_equal(r.closes, 0);
    assert_ok(sockit_datagram_send(r.d, "third", 5, NULL)); /* the error was consumed */
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    close_loop(loop);
}

/* ---- the queue ----------------------------------------------------------------- */

enum { QLEN = 100, QLIMIT = 1000 };

/* A Unix pair whose endpoint side has the smallest send buffer: the peer does not
 * read, so the kernel soon refuses with EAGAIN and sends queue. Sends numbered
 * datagrams of QLEN bytes until -ENOBUFS, checking the queue on the way; returns how
 * many were accepted (sent at once or queued). */
static int fill_queue(struct rec *r)
{
    int accepted = 0, first_queued = -1;
    for (int i = 0; i < 5000; i++) {
        char buf[QLEN];
        numbered(buf, sizeof buf, i);
        size_t before = sockit_datagram_queued(r->d);
        int rc = sockit_datagram_send(r->d, buf, sizeof buf, NULL);
        if (rc == -ENOBUFS) {
            assert_int_equal(sockit_datagram_queued(r->d), before); /* queued nothing */
            break;
        }
        assert_ok(rc);
        accepted++;
        size_t after = sockit_datagram_queued(r->d);
        if (after > 0 && first_queued < 0)
            first_queued = i;
        if (first_queued >= 0) /* once one is queued, every later one queues behind it */
            assert_int_equal(after, before + QLEN);
        else
            assert_int_equal(after, 0);
        assert_true(after <= QLIMIT);
    }
    /* Some went straight to the kernel, then exactly the limit's worth queued. */
    assert_true(first_queued > 0);
    assert_int_equal(sockit_datagram_queued(r->d), QLIMIT);
    assert_int_equal(accepted, first_queued + QLIMIT / QLEN);
    return accepted;
}

static void small_pair(sockit *p[2])
{
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    assert_ok(sockit_set_sndbuf(p[0], 1)); /* the kernel's minimum */
}

/* Reads what the peer has without waiting; checks the numbers follow on. */
static void peer_take(sockit *peer, int *got, int *bad)
{
    for (;;) {
        char buf[QLEN * 2];
        ssize_t n = recv(sockit_fileno(peer), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0)
            return;
        if (n != QLEN || seq_of(buf, (size_t)n) != *got)
            (*bad)++;
        (*got)++;
    }
}

static void test_sends_queue_to_the_limit_then_enobufs_and_drain_in_order(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    small_pair(p);
    struct rec r;
    rec_init(&r);
    adopt(loop, p[0], &r);
    assert_code(sockit_datagram_set_limit(r.d, 0), -EINVAL);
    assert_ok(sockit_datagram_set_limit(r.d, QLIMIT));
    int accepted = fill_queue(&r);
    /* Full: a 1-byte datagram would go past the limit too; one longer than the limit
     * is -EMSGSIZE. Neither changes the queue. */
    assert_code(sockit_datagram_send(r.d, "x", 1, NULL), -ENOBUFS);
    char over[QLIMIT + 1];
    memset(over, 'o', sizeof over);
    assert_code(sockit_datagram_send(r.d, over, sizeof over, NULL), -EMSGSIZE);
    assert_int_equal(sockit_datagram_queued(r.d), QLIMIT);
    /* Nobody reads: the queue stays, nothing is reported. */
    run_for(loop, 0.05);
    assert_int_equal(sockit_datagram_queued(r.d), QLIMIT);
    assert_int_equal(r.errors, 0);

    /* The peer reads: the queue drains and every accepted datagram arrives in order. */
    int got = 0, bad = 0;
    double until = harness_now() + 5.0;
    while ((got < accepted || sockit_datagram_queued(r.d) > 0) && harness_now() < until) {
        peer_take(p[1], &got, &bad);
        sockit_loop_run_once(loop, 0.01);
    }
    run_for(loop, 0.02);
    peer_take(p[1], &got, &bad);
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    assert_int_equal(bad, 0);
    assert_int_equal(got, accepted);
    assert_int_equal(r.errors, 0);
    /* And the endpoint takes sends again. */
    char buf[QLEN];
    numbered(buf, sizeof buf, got);
    assert_ok(sockit_datagram_send(r.d, buf, sizeof buf, NULL));
    accepted++;
    until = harness_now() + 3.0;
    while (got < accepted && harness_now() < until) {
        sockit_loop_run_once(loop, 0.01);
        peer_take(p[1], &got, &bad);
    }
    assert_int_equal(got, accepted);
    assert_int_equal(bad, 0);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(p[1]));
    close_loop(loop);
}

/* "-EMSGSIZE for more than ... the queue's limit": such a datagram could never be
 * queued, so it is refused even while the kernel would take it. */
static void test_datagram_longer_than_the_queue_limit_is_emsgsize(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    struct rec r;
    rec_init(&r);
    adopt(loop, p[0], &r);
    assert_ok(sockit_datagram_set_limit(r.d, QLIMIT));
    char over[QLIMIT + 1];
    memset(over, 'o', sizeof over);
    assert_code(sockit_datagram_send(r.d, over, sizeof over, NULL), -EMSGSIZE);
    assert_ok(sockit_datagram_send(r.d, over, QLIMIT, NULL)); /* the limit itself is fine */
    char buf[QLIMIT + 16];
    assert_int_equal(peer_recv(loop, p[1], buf, sizeof buf, NULL, 3.0), QLIMIT);
    run_for(loop, 0.02);
    assert_true(peer_empty(p[1]));
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(p[1]));
    close_loop(loop);
}

/* The default limit is 1 MiB: with the kernel full, sixteen 64 KiB datagrams queue,
 * one byte more is -ENOBUFS; closing drops the sixteen. */
static void test_default_queue_limit_is_one_mebibyte(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    struct rec r;
    rec_init(&r);
    adopt(loop, p[0], &r);
    enum { BIG = 65536 };
    unsigned char *big = pattern(BIG);
    int sent_at_once = 0;
    while (sockit_datagram_queued(r.d) == 0 && sent_at_once < 1000) {
        assert_ok(sockit_datagram_send(r.d, big, BIG, NULL));
        if (sockit_datagram_queued(r.d) == 0)
            sent_at_once++;
    }
    assert_int_equal(sockit_datagram_queued(r.d), BIG);
    for (int i = 1; i < 16; i++)
        assert_ok(sockit_datagram_send(r.d, big, BIG, NULL));
    assert_int_equal(sockit_datagram_queued(r.d), 16 * BIG); /* 1 MiB */
    assert_code(sockit_datagram_send(r.d, "x", 1, NULL), -ENOBUFS);
    assert_int_equal(sockit_datagram_queued(r.d), 16 * BIG);
    close_and_wait(loop, &r, 16);
    int got = 0;
    char *in = malloc(BIG + 16);
    assert_non_null(in);
    while (recv(sockit_fileno(p[1]), in, BIG + 16, MSG_DONTWAIT) == BIG)
        got++;
    assert_int_equal(got, sent_at_once);
    free(in);
    free(big);
    rec_free(&r);
    assert_ok(sockit_close(p[1]));
    close_loop(loop);
}

/* Close with a queue the kernel cannot take now: it returns how many it dropped, and
 * the peer gets only what went before. */
static void test_close_returns_the_datagrams_it_dropped(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    small_pair(p);
    struct rec r;
    rec_init(&r);
    adopt(loop, p[0], &r);
    assert_ok(sockit_datagram_set_limit(r.d, QLIMIT));
    int accepted = fill_queue(&r);
    int direct = accepted - QLIMIT / QLEN;
    close_and_wait(loop, &r, QLIMIT / QLEN);
    int got = 0, bad = 0;
    peer_take(p[1], &got, &bad);
    assert_int_equal(bad, 0);
    assert_int_equal(got, direct);
    assert_int_equal(r.errors, 0);
    rec_free(&r);
    assert_ok(sockit_close(p[1]));
    close_loop(loop);
}

/* The peer goes away with datagrams queued: each one the kernel refuses reaches
 * on_error (the first -ECONNREFUSED), is dropped, and the endpoint stays open. */
static void test_queued_sends_refused_by_the_kernel_reach_on_error_and_are_dropped(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    small_pair(p);
    struct rec r;
    rec_init(&r);
    adopt(loop, p[0], &r);
    assert_ok(sockit_datagram_set_limit(r.d, QLIMIT));
    fill_queue(&r);
    assert_ok(sockit_close(p[1]));
    RUN_UNTIL(loop, sockit_datagram_queued(r.d) == 0 && r.errors >= QLIMIT / QLEN, 3.0);
    run_for(loop, 0.02);
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    assert_int_equal(r.errors, QLIMIT / QLEN);
    assert_code(r.codes[0], -ECONNREFUSED);
    assert_int_equal(r.closes, 0);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    close_loop(loop);
}

/* ---- pause and resume ----------------------------------------------------------- */

static void test_paused_endpoint_delivers_nothing_until_resumed(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    sockit_datagram_pause(r.d);
    for (int i = 0; i < 3; i++) {
        char buf[10];
        numbered(buf, sizeof buf, i);
        peer_sendto(peer, buf, sizeof buf, &ep_addr);
    }
    run_for(loop, 0.1);
    assert_int_equal(r.n, 0);
    sockit_datagram_resume(r.d);
    RUN_UNTIL(loop, r.n >= 3, 3.0);
    run_for(loop, 0.02);
    assert_int_equal(r.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seq_of(r.g[i].data, r.g[i].len), i);

    /* Paused from inside on_datagram: whatever was already read in that batch is
     * neither lost nor doubled, and what is sent during the pause waits for resume. */
    r.pause_at = r.n + 1;
    for (int i = 3; i < 8; i++) {
        char buf[10];
        numbered(buf, sizeof buf, i);
        peer_sendto(peer, buf, sizeof buf, &ep_addr);
    }
    RUN_UNTIL(loop, r.n >= 4, 3.0);
    run_for(loop, 0.05);
    int during = r.n;
    assert_true(during >= 4 && during <= 8);
    char buf[10];
    numbered(buf, sizeof buf, 8);
    peer_sendto(peer, buf, sizeof buf, &ep_addr);
    run_for(loop, 0.1);
    assert_int_equal(r.n, during);
    sockit_datagram_resume(r.d);
    RUN_UNTIL(loop, r.n >= 9, 3.0);
    run_for(loop, 0.02);
    assert_int_equal(r.n, 9);
    for (int i = 0; i < 9; i++)
        assert_int_equal(seq_of(r.g[i].data, r.g[i].len), i);
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- closing ------------------------------------------------------------------- */

/* Closed from outside the callbacks: close returns 0 (nothing queued), on_close runs
 * once from the loop (not inside close), nothing is delivered after close even if it
 * was waiting, and closing again does nothing. */
static void test_close_runs_on_close_once_from_the_loop_and_twice_is_harmless(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    int fd = sockit_fileno(s);
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    peer_sendto(peer, "too late", 8, &ep_addr);
    sockit_datagram *d = r.d;
    assert_int_equal(rec_close(&r), 0);
    assert_int_equal(r.closes, 0);
    assert_int_equal(sockit_datagram_close(d), 0); /* again: nothing */
    assert_int_equal(r.closes, 0);
    assert_code(sockit_datagram_send(d, "x", 1, &peer_addr), -EPIPE);
    wait_closed(loop, &r);
    run_for(loop, 0.05);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.errors, 0);
    /* The socket went with the endpoint. */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* Closed from inside on_datagram: the rest of the batch is not delivered, the reply
 * queued just before is sent (the kernel takes it now: nothing dropped), and sends
 * after the close are -EPIPE. */
static void test_close_inside_on_datagram_stops_the_batch(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    struct rec r;
    rec_init(&r);
    r.echo = true;
    r.close_at = 1;
    adopt(loop, s, &r);
    for (int i = 0; i < 5; i++) {
        char buf[10];
        numbered(buf, sizeof buf, i);
        peer_sendto(peer, buf, sizeof buf, &ep_addr);
    }
    wait_closed(loop, &r);
    run_for(loop, 0.05);
    assert_int_equal(r.n, 1);
    assert_int_equal(seq_of(r.g[0].data, r.g[0].len), 0);
    assert_int_equal(r.close_rc, 0);
    assert_code(r.send_after_close_rc, -EPIPE);
    assert_int_equal(r.echo_failures, 0);
    char buf[16];
    assert_int_equal(peer_recv(loop, peer, buf, sizeof buf, NULL, 1.0), 10);
    assert_int_equal(seq_of(buf, 10), 0);
    assert_true(peer_empty(peer)); /* one reply only */
    rec_free(&r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- making endpoints ------------------------------------------------------------ */

static void test_datagram_new_refusals_leave_the_sockit_to_the_caller(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct rec r;
    rec_init(&r);

    sockit_addr a;
    sockit *u = udp_bound(AF_INET, &a);
    assert_null(sockit_datagram_new(NULL, u, &rec_cb, &r));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_true(fcntl(sockit_fileno(u), F_GETFD) >= 0); /* still open */
    sockit_addr again;
    assert_ok(sockit_getsockname(u, &again)); /* and usable */
    assert_true(sockit_addr_equal(&again, &a));
    assert_ok(sockit_close(u));

    assert_null(sockit_datagram_new(loop, NULL, &rec_cb, &r));
    assert_int_equal(sockit_errcode(), -EINVAL);

    sockit *st = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(st);
    assert_null(sockit_datagram_new(loop, st, &rec_cb, &r));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_true(fcntl(sockit_fileno(st), F_GETFD) >= 0);
    assert_ok(sockit_bind(st, "127.0.0.1", 0));
    assert_ok(sockit_close(st));

    sockit *sp[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, sp));
    assert_null(sockit_datagram_new(loop, sp[0], &rec_cb, &r));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_int_equal(sockit_sendall(sp[0], "ok", 2, 0, NULL), 2); /* still a working stream */
    assert_ok(sockit_close(sp[0]));
    assert_ok(sockit_close(sp[1]));

    /* Nothing was registered: the loop has nothing to run and closes. */
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    assert_int_equal(r.n + r.errors + r.closes, 0);
    close_loop(loop);
}

static void test_accessors(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr, peer_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    sockit *peer = udp_bound(AF_INET, &peer_addr);
    int fd = sockit_fileno(s);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK); /* new sockits are blocking */
    struct rec r, other;
    rec_init(&r);
    rec_init(&other);
    adopt(loop, s, &r);
    assert_int_equal(sockit_datagram_fd(r.d), fd);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK); /* switched to non-blocking */
    assert_ptr_equal(sockit_datagram_loop(r.d), loop);
    assert_ptr_equal(sockit_datagram_user(r.d), &r);
    sockit_addr bound;
    assert_ok(sockit_datagram_address(r.d, &bound));
    assert_true(sockit_addr_equal(&bound, &ep_addr));
    assert_int_equal(sockit_addr_port(&bound), sockit_addr_port(&ep_addr));

    /* set_user: the callbacks get the new pointer from now on. */
    peer_sendto(peer, "first", 5, &ep_addr);
    RUN_UNTIL(loop, r.n >= 1, 3.0);
    assert_int_equal(r.n, 1);
    sockit_datagram_set_user(r.d, &other);
    assert_ptr_equal(sockit_datagram_user(r.d), &other);
    other.d = r.d;
    peer_sendto(peer, "second", 6, &ep_addr);
    RUN_UNTIL(loop, other.n >= 1, 3.0);
    assert_int_equal(other.n, 1);
    assert_int_equal(r.n, 1);
    assert_memory_equal(other.g[0].data, "second", 6);
    /* on_close gets it too. */
    close_and_wait(loop, &other, 0);
    assert_int_equal(r.closes, 0);
    rec_free(&r);
    rec_free(&other);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- the loop ------------------------------------------------------------------ */

static void test_an_open_endpoint_keeps_the_loop_alive_and_busy(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    struct rec r;
    rec_init(&r);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    adopt(loop, s, &r);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    assert_code(sockit_loop_close(loop), -EBUSY);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    /* Paused with nothing queued: it no longer keeps the loop going, but it is still
     * open, so the loop cannot be closed. */
    sockit_datagram_pause(r.d);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    assert_code(sockit_loop_close(loop), -EBUSY);
    sockit_datagram_resume(r.d);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    close_and_wait(loop, &r, 0);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    rec_free(&r);
    close_loop(loop);
}

/* Paused with datagrams queued: the queue keeps the loop going until it has drained. */
static void test_a_paused_endpoint_with_a_queue_keeps_the_loop_alive(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit *p[2];
    small_pair(p);
    struct rec r;
    rec_init(&r);
    adopt(loop, p[0], &r);
    assert_ok(sockit_datagram_set_limit(r.d, QLIMIT));
    int accepted = fill_queue(&r);
    sockit_datagram_pause(r.d);
    assert_int_equal(sockit_loop_run_once(loop, 0), 1);
    int got = 0, bad = 0;
    double until = harness_now() + 3.0;
    while ((got < accepted || sockit_datagram_queued(r.d) > 0) && harness_now() < until) {
        peer_take(p[1], &got, &bad);
        sockit_loop_run_once(loop, 0.01);
    }
    assert_int_equal(sockit_datagram_queued(r.d), 0);
    assert_int_equal(got, accepted);
    assert_int_equal(bad, 0);
    sockit_loop_run_once(loop, 0);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0); /* paused, nothing queued */
    close_and_wait(loop, &r, 0);
    rec_free(&r);
    assert_ok(sockit_close(p[1]));
    close_loop(loop);
}

struct run_state {
    struct rec *r;
    sockit_loop *loop;
    bool closed_by_timer;
    bool stopped_by_guard;
};

static void close_from_timer(sockit_timer *t, void *user)
{
    (void)t;
    struct run_state *rs = user;
    rs->closed_by_timer = true;
    rec_close(rs->r);
}

static void stop_guard(sockit_timer *t, void *user)
{
    (void)t;
    struct run_state *rs = user;
    rs->stopped_by_guard = true;
    sockit_loop_stop(rs->loop);
}

/* sockit_loop_run goes on while the endpoint is open (the timers here do not keep it
 * alive) and returns once it has closed. */
static void test_loop_run_lasts_while_the_endpoint_is_open(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    sockit_addr ep_addr;
    sockit *s = udp_bound(AF_INET, &ep_addr);
    struct rec r;
    rec_init(&r);
    adopt(loop, s, &r);
    struct run_state rs = {&r, loop, false, false};
    sockit_timer *closer = sockit_timer_new(loop, close_from_timer, &rs);
    sockit_timer *guard = sockit_timer_new(loop, stop_guard, &rs);
    assert_sock(closer);
    assert_sock(guard);
    sockit_timer_keepalive(closer, false);
    sockit_timer_keepalive(guard, false);
    assert_ok(sockit_timer_start(closer, 0.1, 0));
    assert_ok(sockit_timer_start(guard, 3.0, 0));
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    double took = harness_now() - t0;
    assert_true(rs.closed_by_timer);
    assert_false(rs.stopped_by_guard);
    assert_true(took >= 0.08);
    assert_true(took < 2.0);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.close_inside_call, 0);
    sockit_timer_close(closer);
    sockit_timer_close(guard);
    rec_free(&r);
    close_loop(loop);
}

/* ---- regressions from review ------------------------------------------------------ */

struct fix {
    sockit_datagram *d;
    int datagrams, errors, closes;
    int first_error;
    size_t big;            /* on_datagram sends this many bytes of its own */
    const sockit_addr *to; /* ... to here (NULL: the sender) */
    bool close_in_error;   /* on_error closes the endpoint */
    char *own;             /* the caller's buffer of big bytes */
};

static void fix_datagram(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                         bool truncated, void *user)
{
    (void)data;
    (void)len;
    (void)truncated;
    struct fix *f = user;
    f->datagrams++;
    if (f->big > 0) {
        int rc = sockit_datagram_send(d, f->own, f->big, f->to != NULL ? f->to : from);
        assert_true(rc == 0 || rc == -EPIPE);
    }
}

static void fix_error(sockit_datagram *d, int code, void *user)
{
    struct fix *f = user;
    if (f->errors++ == 0)
        f->first_error = code;
    if (f->close_in_error)
        sockit_datagram_close(d);
}

static void fix_close(sockit_datagram *d, void *user)
{
    (void)d;
    ((struct fix *)user)->closes++;
}

static const sockit_datagram_callbacks fix_cb = {
    .on_datagram = fix_datagram, .on_error = fix_error, .on_close = fix_close};

/* A reply bigger than the batch's 64 KiB arena, from the caller's own buffer, over a
 * Unix datagram socket (no 65,507-byte cap): it must go whole, through the queue. */
static void test_a_reply_bigger_than_the_batch_arena_arrives_whole(void **state)
{
    (void)state;
    make_tmpdir();
    char sp[128], pp[128];
    tmp_path(sp, sizeof sp, "srv");
    tmp_path(pp, sizeof pp, "peer");
    sockit_addr saddr, paddr;
    sockit *srv = unix_bound(sp, &saddr);
    sockit *peer = unix_bound(pp, &paddr);
    int big = 1 << 20;
    setsockopt(sockit_fileno(peer), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(sockit_fileno(srv), SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    sockit_loop *loop = new_loop();
    struct fix f = {.big = 100 * 1024};
    f.own = (char *)pattern(f.big);
    f.d = sockit_datagram_new(loop, srv, &fix_cb, &f);
    assert_sock(f.d);
    peer_sendto(peer, "go", 2, &saddr);
    char *got = malloc(f.big + 1);
    assert_non_null(got);
    ssize_t n = peer_recv(loop, peer, got, f.big + 1, NULL, 3.0);
    assert_int_equal(n, (ssize_t)f.big);
    assert_memory_equal(got, f.own, f.big);
    free(got);
    free(f.own);
    sockit_datagram_close(f.d);
    RUN_UNTIL(loop, f.closes == 1, 2.0);
    close_loop(loop);
    sockit_close(peer);
    const char *names[] = {"srv", "peer"};
    remove_tmpdir(names, 2);
}

/* An unconnected Unix socket is always "writable", even when its receiver is full:
 * a queue waiting for that receiver must not spin the loop. */
static void test_a_full_unix_receiver_does_not_spin_the_loop(void **state)
{
    (void)state;
    make_tmpdir();
    char rp[128];
    tmp_path(rp, sizeof rp, "full");
    sockit_addr raddr, me;
    sockit *rcv = unix_bound(rp, &raddr); /* never reads */
    int small = 4096;
    setsockopt(sockit_fileno(rcv), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockit *snd = sockit_socket(AF_UNIX, SOCK_DGRAM);
    assert_sock(snd);
    sockit_loop *loop = new_loop();
    struct fix f = {0};
    f.d = sockit_datagram_new(loop, snd, &fix_cb, &f);
    assert_sock(f.d);
    (void)me;
    char block[512] = {0};
    for (int i = 0; i < 2000 && sockit_datagram_queued(f.d) == 0; i++)
        assert_ok(sockit_datagram_send(f.d, block, sizeof block, &raddr));
    assert_true(sockit_datagram_queued(f.d) > 0);
    /* Waiting 0.3 s in steps of up to 0.1 s: a spinning loop would return at once,
     * thousands of times. */
    int iterations = 0;
    double until = harness_now() + 0.3;
    while (harness_now() < until) {
        sockit_loop_run_once(loop, 0.1);
        iterations++;
    }
    assert_true(iterations < 200);
    assert_true(sockit_datagram_queued(f.d) > 0);
    /* Once the receiver reads, the queue drains (the back-off tries again). */
    char sink[1024];
    until = harness_now() + 3.0;
    while (sockit_datagram_queued(f.d) > 0 && harness_now() < until) {
        while (recv(sockit_fileno(rcv), sink, sizeof sink, MSG_DONTWAIT) > 0)
            continue;
        sockit_loop_run_once(loop, 0.01);
    }
    assert_int_equal(sockit_datagram_queued(f.d), 0);
    sockit_datagram_close(f.d);
    RUN_UNTIL(loop, f.closes == 1, 2.0);
    close_loop(loop);
    sockit_close(rcv);
    const char *names[] = {"full"};
    remove_tmpdir(names, 1);
}

/* A reply the kernel refuses while a batch is settled reaches on_error after the
 * batch is consistent: closing there is safe and nothing is sent twice. */
static void test_closing_in_on_error_while_a_batch_is_settled(void **state)
{
    (void)state;
    make_tmpdir();
    char sp[128], pp[128], gone[128];
    tmp_path(sp, sizeof sp, "srv");
    tmp_path(pp, sizeof pp, "peer");
    tmp_path(gone, sizeof gone, "nobody");
    sockit_addr saddr, paddr, nobody;
    sockit *srv = unix_bound(sp, &saddr);
    sockit *peer = unix_bound(pp, &paddr);
    assert_ok(sockit_addr_unix(&nobody, gone));
    sockit_loop *loop = new_loop();
    struct fix f = {.big = 8, .to = &nobody, .close_in_error = true};
    f.own = (char *)pattern(8);
    f.d = sockit_datagram_new(loop, srv, &fix_cb, &f);
    assert_sock(f.d);
    for (int i = 0; i < 5; i++)
        peer_sendto(peer, "x", 1, &saddr);
    RUN_UNTIL(loop, f.closes == 1, 2.0);
    assert_int_equal(f.closes, 1);
    assert_true(f.errors >= 1);
    assert_true(f.first_error == -ENOENT || f.first_error == -ECONNREFUSED);
    free(f.own);
    close_loop(loop);
    sockit_close(peer);
    const char *names[] = {"srv", "peer"};
    remove_tmpdir(names, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_udp4_datagram_arrives_with_its_sender_and_the_reply_returns),
        harness_test(test_loop_close_waits_for_a_closed_endpoints_on_close),
        harness_test(test_udp6_datagram_arrives_with_its_sender_and_the_reply_returns),
        harness_test(test_unix_path_datagram_arrives_with_its_sender_and_the_reply_returns),
        harness_test(test_unix_abstract_datagram_arrives_with_its_sender_and_the_reply_returns),
        harness_test(test_endpoint_on_a_create_server_udp_socket),
        harness_test(test_connect_takes_a_peer_and_keeps_others_out),
        harness_test(test_unnamed_unix_sender_comes_with_a_null_address),
        harness_test(test_unix_socketpair_endpoint_answers_its_connected_peer),
        harness_test(test_reply_inside_on_datagram_is_queued_until_the_batch_returns),
        harness_test(test_sends_inside_a_batch_count_against_the_queue_limit),
        harness_test(test_200_datagrams_sent_before_the_loop_runs_arrive_in_order_and_are_answered),
        harness_test(test_max_size_truncates_longer_datagrams_and_flags_them),
        harness_test(test_default_max_size_delivers_a_65507_byte_udp_datagram_whole),
        harness_test(test_unix_datagram_one_byte_past_the_default_max_size_is_flagged),
        harness_test(test_empty_udp_datagram_arrives_as_length_zero),
        harness_test(test_empty_unix_datagram_arrives_as_length_zero),
        harness_test(test_refused_sends_over_udp4),
        harness_test(test_refused_sends_over_udp6),
        harness_test(test_icmp_refusal_reaches_on_error_and_the_endpoint_stays_usable),
        harness_test(test_a_send_tried_at_once_returns_the_kernels_refusal),
        harness_test(test_sends_queue_to_the_limit_then_enobufs_and_drain_in_order),
        harness_test(test_datagram_longer_than_the_queue_limit_is_emsgsize),
        harness_test(test_default_queue_limit_is_one_mebibyte),
        harness_test(test_close_returns_the_datagrams_it_dropped),
        harness_test(test_queued_sends_refused_by_the_kernel_reach_on_error_and_are_dropped),
        harness_test(test_paused_endpoint_delivers_nothing_until_resumed),
        harness_test(test_close_runs_on_close_once_from_the_loop_and_twice_is_harmless),
        harness_test(test_close_inside_on_datagram_stops_the_batch),
        harness_test(test_datagram_new_refusals_leave_the_sockit_to_the_caller),
        harness_test(test_accessors),
        harness_test(test_an_open_endpoint_keeps_the_loop_alive_and_busy),
        harness_test(test_a_paused_endpoint_with_a_queue_keeps_the_loop_alive),
        harness_test(test_loop_run_lasts_while_the_endpoint_is_open),
        harness_test(test_a_reply_bigger_than_the_batch_arena_arrives_whole),
        harness_test(test_a_full_unix_receiver_does_not_spin_the_loop),
        harness_test(test_closing_in_on_error_while_a_batch_is_settled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
