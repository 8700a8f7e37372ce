/* SOCKIT_EVENTS, the event-driven server: stream callbacks answer TCP and Unix
 * clients, all at once on one loop; shutdown from another thread and from a signal
 * handler; verify; max_connections (wait and refuse); the idle timeout; close with
 * 1,000 connections open returns within the grace; sockit_server_active; bad config.
 * Runs once per loop backend ($SOCKIT_LOOP_BACKEND). */
#include "socketserver_harness.h"

#include <math.h>

/* ---- a line echo server ------------------------------------------------------------ */

static atomic_int ev_connects, ev_closes, ev_errors;

static void ev_line(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)user;
    sockit_stream_write(st, data, len);
}

static void ev_close(sockit_stream *st, void *user)
{
    (void)st;
    (void)user;
    atomic_fetch_add(&ev_closes, 1);
}

static void ev_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    (void)code;
    (void)user;
    atomic_fetch_add(&ev_errors, 1);
}

static const sockit_stream_callbacks ev_callbacks = {
    .on_data = ev_line, .on_error = ev_error, .on_close = ev_close};

static void ev_connected(sockit_server *srv, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)srv;
    (void)peer;
    (void)user;
    atomic_fetch_add(&ev_connects, 1);
    sockit_stream_read_lines(st, 0);
}

static atomic_int ev_dgrams, ev_dgram_closes;

/* Echoes each datagram; a truncated one comes back as "T" and what arrived. */
static void ev_datagram(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user)
{
    (void)user;
    atomic_fetch_add(&ev_dgrams, 1);
    char out[64];
    if (truncated && len < sizeof out) {
        out[0] = 'T';
        memcpy(out + 1, data, len);
        sockit_datagram_send(d, out, len + 1, from);
        return;
    }
    sockit_datagram_send(d, data, len, from);
}

static void ev_datagram_closed(sockit_datagram *d, void *user)
{
    (void)d;
    (void)user;
    atomic_fetch_add(&ev_dgram_closes, 1);
}

static const sockit_datagram_callbacks ev_datagram_callbacks = {.on_datagram = ev_datagram,
                                                                .on_close = ev_datagram_closed};

static sockit_server_config ev_dgram_config(void)
{
    atomic_store(&ev_dgrams, 0);
    atomic_store(&ev_dgram_closes, 0);
    return (sockit_server_config){.mode = SOCKIT_EVENTS, .datagram = &ev_datagram_callbacks};
}

static sockit_server_config ev_config(void)
{
    atomic_store(&ev_connects, 0);
    atomic_store(&ev_closes, 0);
    atomic_store(&ev_errors, 0);
    return (sockit_server_config){
        .mode = SOCKIT_EVENTS, .stream = &ev_callbacks, .on_connect = ev_connected};
}

typedef struct ev_run {
    sockit_server *srv;
    pthread_t tid;
    int rc;
    int port;
    char path[108];
} ev_run;

static void *ev_serve(void *arg)
{
    ev_run *r = arg;
    r->rc = sockit_server_serve_forever(r->srv);
    return NULL;
}

static void ev_start(ev_run *r, const sockit_server_config *cfg, bool unix_socket)
{
    memset(r, 0, sizeof *r);
    if (unix_socket) {
        char host[120];
        snprintf(r->path, sizeof r->path, "/tmp/sockit-ev-%d-%ld.sock", (int)getpid(),
                 (long)random());
        snprintf(host, sizeof host, "unix:%s", r->path);
        r->srv = sockit_server_new(host, 0, SOCK_STREAM, cfg);
    } else {
        r->srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, cfg);
    }
    assert_sock(r->srv);
    sockit_addr a;
    assert_ok(sockit_server_address(r->srv, &a));
    r->port = unix_socket ? 0 : sockit_addr_port(&a);
    assert_int_equal(pthread_create(&r->tid, NULL, ev_serve, r), 0);
}

static void ev_stop(ev_run *r)
{
    sockit_server_shutdown(r->srv);
    assert_int_equal(pthread_join(r->tid, NULL), 0);
    assert_int_equal(r->rc, 0);
    assert_ok(sockit_server_close(r->srv));
    if (r->path[0] != '\0')
        unlink(r->path);
}

static sockit *ev_client(const ev_run *r)
{
    char host[120];
    if (r->path[0] != '\0')
        snprintf(host, sizeof host, "unix:%s", r->path);
    else
        snprintf(host, sizeof host, "127.0.0.1");
    sockit *c = sockit_create_connection(host, r->port, 5.0, NULL);
    assert_sock(c);
    assert_ok(sockit_settimeout(c, 5.0));
    return c;
}

static void ev_roundtrip(sockit *c, const char *line)
{
    size_t len = strlen(line);
    assert_ok(sockit_sendall(c, line, len, 0, NULL));
    char buf[256];
    assert_int_equal(sockit_recv_exact(c, buf, len, 0), (ssize_t)len);
    assert_memory_equal(buf, line, len);
}

/* Waits until cond() or 5 s. */
static bool ev_wait_for(bool (*cond)(void))
{
    double end = harness_now() + 5.0;
    while (!cond() && harness_now() < end)
        srv_sleep(0.005);
    return cond();
}

/* ---- tests --------------------------------------------------------------------------- */

static void check_backend(void)
{
    const char *want = getenv("SOCKIT_LOOP_BACKEND");
    sockit_loop *loop = sockit_loop_new(NULL);
    assert_non_null(loop);
    if (want != NULL)
        assert_string_equal(sockit_loop_backend(loop), want);
    assert_ok(sockit_loop_close(loop));
}

static void test_events_server_answers_many_tcp_clients_at_once(void **state)
{
    (void)state;
    check_backend();
    sockit_server_config cfg = ev_config();
    ev_run r;
    ev_start(&r, &cfg, false);
    enum { N = 50 };
    sockit *c[N];
    for (int i = 0; i < N; i++)
        c[i] = ev_client(&r);
    /* Every client is open at once, and each is answered while the others wait. */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            char line[64];
            snprintf(line, sizeof line, "client %d round %d\n", i, round);
            ev_roundtrip(c[i], line);
        }
    assert_int_equal(sockit_server_active(r.srv), N);
    for (int i = 0; i < N; i++)
        sockit_close(c[i]);
    ev_stop(&r);
    assert_int_equal(atomic_load(&ev_connects), N);
    assert_int_equal(atomic_load(&ev_closes), N);
}

static int no_handler(sockit_request *req)
{
    (void)req;
    return 0;
}

/* The server names its loop's backend: the one the CTest entry asked for. */
static void test_events_server_names_its_backend(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    ev_run r;
    ev_start(&r, &cfg, false);
    const char *want = getenv("SOCKIT_LOOP_BACKEND");
    const char *got = sockit_server_backend(r.srv);
    assert_non_null(got);
    if (want != NULL && want[0] != '\0') {
        assert_string_equal(got, want);
        assert_null(sockit_server_backend_fallback(r.srv)); /* named: never a fallback */
    }
    ev_stop(&r);
    /* Only the event server has a loop. */
    sockit_server_config seq = {.mode = SOCKIT_SEQUENTIAL, .handler = no_handler};
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &seq);
    assert_sock(srv);
    assert_null(sockit_server_backend(srv));
    assert_null(sockit_server_backend_fallback(srv));
    assert_ok(sockit_server_close(srv));
    assert_null(sockit_server_backend(NULL));
}

static void test_events_server_answers_unix_stream_clients(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    ev_run r;
    ev_start(&r, &cfg, true);
    sockit *a = ev_client(&r), *b = ev_client(&r);
    ev_roundtrip(a, "over a unix socket\n");
    ev_roundtrip(b, "another\n");
    sockit_close(a);
    sockit_close(b);
    ev_stop(&r);
    assert_int_equal(atomic_load(&ev_connects), 2);
}

static void test_events_server_frames_lines_split_across_sends(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    ev_run r;
    ev_start(&r, &cfg, false);
    sockit *c = ev_client(&r);
    assert_ok(sockit_sendall(c, "hel", 3, 0, NULL));
    srv_sleep(0.05);
    /* Nothing comes back before the line is whole. */
    char buf[64];
    assert_code(sockit_recv(c, buf, sizeof buf, MSG_DONTWAIT), SOCKIT_EWOULDBLOCK);
    assert_ok(sockit_sendall(c, "lo\nworld\n", 9, 0, NULL));
    assert_int_equal(sockit_recv_exact(c, buf, 12, 0), 12);
    assert_memory_equal(buf, "hello\nworld\n", 12);
    sockit_close(c);
    ev_stop(&r);
}

static sockit_server *stop_target;

static void stop_on_alarm(int sig)
{
    (void)sig;
    sockit_server_shutdown(stop_target);
}

static void test_events_server_stops_within_a_second_of_a_signal(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    assert_sock(srv);
    stop_target = srv;
    harness_signal_no_restart(SIGALRM, stop_on_alarm);
    harness_signal_after(SIGALRM, 0.1);
    double t0 = harness_now();
    assert_ok(sockit_server_serve_forever(srv));
    assert_true(harness_now() - t0 < 1.0);
    signal(SIGALRM, SIG_DFL);
    assert_ok(sockit_server_close(srv));
}

static void test_events_server_shutdown_before_serving_returns_at_once(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    assert_sock(srv);
    sockit_server_shutdown(srv);
    assert_ok(sockit_server_serve_forever(srv));
    assert_true(sockit_server_stopping(srv));
    assert_ok(sockit_server_close(srv));
}

static bool reject_all(sockit_server *srv, const sockit_addr *peer, void *user)
{
    (void)srv;
    (void)peer;
    (void)user;
    return false;
}

static void test_events_server_verify_rejects_a_client(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.verify_request = reject_all;
    ev_run r;
    ev_start(&r, &cfg, false);
    sockit *c = ev_client(&r);
    char buf[8];
    assert_int_equal(sockit_recv(c, buf, sizeof buf, 0), 0); /* closed at once */
    sockit_close(c);
    ev_stop(&r);
    assert_int_equal(atomic_load(&ev_connects), 0);
}

static bool two_connected(void) { return atomic_load(&ev_connects) == 2; }
static bool three_connected(void) { return atomic_load(&ev_connects) == 3; }

static void test_events_server_max_connections_makes_the_next_wait(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.max_connections = 2;
    ev_run r;
    ev_start(&r, &cfg, false);
    sockit *a = ev_client(&r), *b = ev_client(&r);
    ev_roundtrip(a, "a\n");
    ev_roundtrip(b, "b\n");
    sockit *c = ev_client(&r); /* connected in the backlog, not served */
    assert_ok(sockit_sendall(c, "c\n", 2, 0, NULL));
    srv_sleep(0.2);
    char buf[8];
    assert_code(sockit_recv(c, buf, sizeof buf, MSG_DONTWAIT), SOCKIT_EWOULDBLOCK);
    assert_true(two_connected());
    sockit_close(a);
    /* A freed place lets the waiting client in, and its early line is answered. */
    assert_int_equal(sockit_recv_exact(c, buf, 2, 0), 2);
    assert_memory_equal(buf, "c\n", 2);
    assert_true(ev_wait_for(three_connected));
    sockit_close(b);
    sockit_close(c);
    ev_stop(&r);
}

static void test_events_server_max_connections_refuse_closes_the_next(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.max_connections = 1;
    cfg.overflow = SOCKIT_OVERFLOW_REFUSE;
    ev_run r;
    ev_start(&r, &cfg, false);
    sockit *a = ev_client(&r);
    ev_roundtrip(a, "a\n");
    sockit *b = ev_client(&r);
    char buf[8];
    assert_int_equal(sockit_recv(b, buf, sizeof buf, 0), 0);
    sockit_close(b);
    sockit_close(a);
    ev_stop(&r);
    assert_int_equal(atomic_load(&ev_connects), 1);
}

static void test_events_server_idle_timeout_frees_a_silent_client(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.idle_timeout = 0.2;
    ev_run r;
    ev_start(&r, &cfg, false);
    sockit *c = ev_client(&r);
    double t0 = harness_now();
    char buf[8];
    assert_int_equal(sockit_recv(c, buf, sizeof buf, 0), 0);
    double took = harness_now() - t0;
    assert_true(took >= 0.15 && took < 2.0);
    sockit_close(c);
    ev_stop(&r);
    assert_int_equal(atomic_load(&ev_errors), 1); /* SOCKIT_ETIMEOUT, to on_error */
    assert_int_equal(atomic_load(&ev_closes), 1);
}

static void test_events_server_new_client_served_while_500_drip(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    ev_run r;
    ev_start(&r, &cfg, false);
    enum { N = 500 };
    sockit **drip = calloc(N, sizeof *drip);
    assert_non_null(drip);
    for (int i = 0; i < N; i++) {
        drip[i] = ev_client(&r);
        /* Half a line each: every one of them holds a partial frame. */
        assert_ok(sockit_sendall(drip[i], "x", 1, 0, NULL));
    }
    double t0 = harness_now();
    sockit *c = ev_client(&r);
    ev_roundtrip(c, "served\n");
    assert_true(harness_now() - t0 < 1.0);
    sockit_close(c);
    for (int i = 0; i < N; i++)
        sockit_close(drip[i]);
    free(drip);
    ev_stop(&r);
}

/* 500 clients drip a byte every 2 s (a quarter of them every 0.5 s, never a whole
 * line); a client that comes in the middle is served within 1 s, by concurrency: no
 * timeout is involved (the server's idle timeout is the default 300 s). */
static void test_events_server_new_client_served_while_500_drip_every_2s(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    ev_run r;
    ev_start(&r, &cfg, false);
    enum { N = 500 };
    sockit **drip = calloc(N, sizeof *drip);
    assert_non_null(drip);
    for (int i = 0; i < N; i++)
        drip[i] = ev_client(&r);
    double served_in = -1;
    for (int tick = 0; tick < 6; tick++) { /* 3 s */
        for (int i = tick % 4; i < N; i += 4)
            assert_ok(sockit_sendall(drip[i], "d", 1, 0, NULL));
        if (tick == 3) {
            double t0 = harness_now();
            sockit *c = ev_client(&r);
            ev_roundtrip(c, "in the middle\n");
            served_in = harness_now() - t0;
            sockit_close(c);
        }
        srv_sleep(0.5);
    }
    assert_true(served_in >= 0 && served_in < 1.0);
    /* The drippers are all still connected: nobody was timed out. */
    assert_int_equal(sockit_server_active(r.srv), N);
    assert_int_equal(atomic_load(&ev_errors), 0);
    for (int i = 0; i < N; i++)
        sockit_close(drip[i]);
    free(drip);
    ev_stop(&r);
}

static bool all_1000_connected(void) { return atomic_load(&ev_connects) == 1000; }

static void test_events_server_close_with_1000_open_returns_within_grace(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.close_grace = 0.5;
    ev_run r;
    ev_start(&r, &cfg, false);
    enum { N = 1000 };
    sockit **c = calloc(N, sizeof *c);
    assert_non_null(c);
    for (int i = 0; i < N; i++)
        c[i] = ev_client(&r);
    assert_true(ev_wait_for(all_1000_connected));
    sockit_server_shutdown(r.srv);
    assert_int_equal(pthread_join(r.tid, NULL), 0);
    double t0 = harness_now();
    assert_ok(sockit_server_close(r.srv));
    assert_true(harness_now() - t0 < 0.5 + 1.5);
    assert_int_equal(atomic_load(&ev_closes), N);
    /* Every client is told: end of stream or a reset, never silence. */
    for (int i = 0; i < N; i++) {
        char b;
        assert_true(sockit_recv(c[i], &b, 1, 0) <= 0);
        sockit_close(c[i]);
    }
    free(c);
}

static void test_events_server_handle_request_runs_one_iteration(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    assert_sock(srv);
    assert_int_equal(sockit_server_handle_request(srv, 0.01), 1);
    sockit_server_shutdown(srv);
    assert_int_equal(sockit_server_handle_request(srv, 0.01), 0);
    assert_code(sockit_server_handle_request(srv, NAN), -EINVAL);
    assert_ok(sockit_server_close(srv));
}

static void test_events_server_rejects_bad_config(void **state)
{
    (void)state;
    sockit_server_config cfg = {.mode = SOCKIT_EVENTS};
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "stream"));
    cfg = ev_config();
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_DGRAM, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "datagram"));
    cfg = ev_dgram_config();
    cfg.max_datagram = 65537;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_DGRAM, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "max_datagram"));
}

/* ---- datagram servers ----------------------------------------------------------------- */

static void ev_dgram_start(ev_run *r, const sockit_server_config *cfg)
{
    memset(r, 0, sizeof *r);
    r->srv = sockit_server_new("127.0.0.1", 0, SOCK_DGRAM, cfg);
    assert_sock(r->srv);
    sockit_addr a;
    assert_ok(sockit_server_address(r->srv, &a));
    r->port = sockit_addr_port(&a);
    assert_int_equal(pthread_create(&r->tid, NULL, ev_serve, r), 0);
}

static sockit *ev_dgram_client(const ev_run *r)
{
    sockit *c = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(c);
    assert_ok(sockit_connect(c, "127.0.0.1", r->port));
    assert_ok(sockit_settimeout(c, 2.0));
    return c;
}

static void test_events_server_echoes_datagrams_to_each_sender(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_dgram_config();
    ev_run r;
    ev_dgram_start(&r, &cfg);
    sockit *c[4];
    for (int k = 0; k < 4; k++)
        c[k] = ev_dgram_client(&r);
    for (int round = 0; round < 50; round++) {
        char msg[32], got[64];
        for (int k = 0; k < 4; k++) {
            int n = snprintf(msg, sizeof msg, "%d:%d", k, round);
            assert_ok(sockit_send(c[k], msg, (size_t)n, 0));
        }
        for (int k = 0; k < 4; k++) {
            int n = snprintf(msg, sizeof msg, "%d:%d", k, round);
            assert_int_equal(sockit_recv(c[k], got, sizeof got, 0), n);
            assert_memory_equal(got, msg, (size_t)n);
        }
    }
    assert_int_equal(atomic_load(&ev_dgrams), 200);
    /* No connections in a datagram server. */
    assert_int_equal(sockit_server_active(r.srv), 0);
    for (int k = 0; k < 4; k++)
        sockit_close(c[k]);
    ev_stop(&r);
    assert_int_equal(atomic_load(&ev_dgram_closes), 1);
}

static bool reject_odd_port(sockit_server *srv, const sockit_addr *peer, void *user)
{
    (void)srv;
    (void)user;
    return sockit_addr_port(peer) % 2 == 0;
}

static void test_events_server_verify_drops_a_datagram(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_dgram_config();
    cfg.verify_request = reject_odd_port;
    ev_run r;
    ev_dgram_start(&r, &cfg);
    /* One client on an even port and one on an odd one. */
    sockit *even = NULL, *odd = NULL;
    while (even == NULL || odd == NULL) {
        sockit *c = ev_dgram_client(&r);
        sockit_addr me;
        assert_ok(sockit_getsockname(c, &me));
        sockit **slot = sockit_addr_port(&me) % 2 == 0 ? &even : &odd;
        if (*slot == NULL)
            *slot = c;
        else
            sockit_close(c);
    }
    char got[16];
    assert_ok(sockit_send(odd, "no", 2, 0));
    assert_ok(sockit_send(even, "yes", 3, 0));
    assert_int_equal(sockit_recv(even, got, sizeof got, 0), 3);
    assert_ok(sockit_settimeout(odd, 0.2));
    assert_int_equal(sockit_recv(odd, got, sizeof got, 0), SOCKIT_ETIMEOUT);
    assert_int_equal(atomic_load(&ev_dgrams), 1);
    sockit_close(even);
    sockit_close(odd);
    ev_stop(&r);
}

static void test_events_server_truncates_past_max_datagram_flagged(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_dgram_config();
    cfg.max_datagram = 8;
    ev_run r;
    ev_dgram_start(&r, &cfg);
    sockit *c = ev_dgram_client(&r);
    char got[32];
    assert_ok(sockit_send(c, "0123456789abcdef", 16, 0));
    /* The truncated one is not echoed (ev_datagram answers "T" + its 8 bytes). */
    assert_int_equal(sockit_recv(c, got, sizeof got, 0), 9);
    assert_memory_equal(got, "T01234567", 9);
    sockit_close(c);
    ev_stop(&r);
}

static void test_events_datagram_server_stops_on_shutdown_from_another_thread(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_dgram_config();
    ev_run r;
    ev_dgram_start(&r, &cfg);
    double t0 = harness_now();
    ev_stop(&r);
    assert_true(harness_now() - t0 < 1.0);
}

static void test_events_server_closed_without_serving(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    assert_sock(srv);
    assert_ok(sockit_server_close(srv));
}

/* ---- several loops -------------------------------------------------------------------- */

#define EV_MAX_THREADS 8
static pthread_mutex_t ev_threads_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t ev_threads[EV_MAX_THREADS];
static int ev_nthreads;

static void ev_note_thread(void)
{
    pthread_mutex_lock(&ev_threads_mu);
    pthread_t me = pthread_self();
    bool seen = false;
    for (int i = 0; i < ev_nthreads; i++)
        seen = seen || pthread_equal(ev_threads[i], me);
    if (!seen && ev_nthreads < EV_MAX_THREADS)
        ev_threads[ev_nthreads++] = me;
    pthread_mutex_unlock(&ev_threads_mu);
}

static int ev_threads_seen(void)
{
    pthread_mutex_lock(&ev_threads_mu);
    int n = ev_nthreads;
    pthread_mutex_unlock(&ev_threads_mu);
    return n;
}

static void ev_connected_noting(sockit_server *srv, sockit_stream *st, const sockit_addr *peer,
                                void *user)
{
    ev_note_thread();
    ev_connected(srv, st, peer, user);
}

static void test_events_server_two_loops_spread_tcp_clients(void **state)
{
    (void)state;
    ev_nthreads = 0;
    sockit_server_config cfg = ev_config();
    cfg.loops = 2;
    cfg.on_connect = ev_connected_noting;
    ev_run r;
    ev_start(&r, &cfg, false);
    /* 40 connections from 40 source ports: SO_REUSEPORT hashes them over both
     * loops (all on one would be a 1 in 2^39 chance). */
    sockit *c[40];
    for (int i = 0; i < 40; i++)
        c[i] = ev_client(&r);
    for (int i = 0; i < 40; i++)
        ev_roundtrip(c[i], "spread\n");
    assert_int_equal(ev_threads_seen(), 2);
    assert_int_equal(sockit_server_active(r.srv), 40);
    for (int i = 0; i < 40; i++)
        sockit_close(c[i]);
    ev_stop(&r);
}

static void test_events_server_two_loops_share_a_unix_socket(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.loops = 2;
    ev_run r;
    ev_start(&r, &cfg, true);
    sockit *c[10];
    for (int i = 0; i < 10; i++)
        c[i] = ev_client(&r);
    for (int i = 0; i < 10; i++)
        ev_roundtrip(c[i], "unix\n");
    for (int i = 0; i < 10; i++)
        sockit_close(c[i]);
    ev_stop(&r);
}

static void test_events_server_two_loops_keep_max_connections_in_total(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.loops = 2;
    cfg.max_connections = 3;
    cfg.overflow = SOCKIT_OVERFLOW_REFUSE;
    ev_run r;
    ev_start(&r, &cfg, false);
    /* Refused clients read end of stream; the ones served answer. Each loop may
     * hold its part (2 and 1), so at most 3 are served whichever loop they reach. */
    int served = 0;
    sockit *c[12];
    for (int i = 0; i < 12; i++) {
        c[i] = ev_client(&r);
        assert_ok(sockit_sendall(c[i], "x\n", 2, 0, NULL));
        char buf[4];
        ssize_t n = sockit_recv(c[i], buf, sizeof buf, 0);
        if (n == 2)
            served++;
        else
            assert_true(n == 0 || n == -ECONNRESET);
    }
    assert_true(served >= 1 && served <= 3);
    assert_true(sockit_server_active(r.srv) <= 3);
    for (int i = 0; i < 12; i++)
        sockit_close(c[i]);
    ev_stop(&r);
}

static void test_events_server_two_loops_stop_and_close_within_grace(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.loops = 2;
    cfg.close_grace = 0.5;
    ev_run r;
    ev_start(&r, &cfg, false);
    sockit *c[20];
    for (int i = 0; i < 20; i++) {
        c[i] = ev_client(&r);
        ev_roundtrip(c[i], "hold\n");
    }
    double t0 = harness_now();
    sockit_server_shutdown(r.srv);
    assert_int_equal(pthread_join(r.tid, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_true(harness_now() - t0 < 1.0);
    /* Idle clients keep their streams open: close ends them within the grace. */
    t0 = harness_now();
    assert_ok(sockit_server_close(r.srv));
    assert_true(harness_now() - t0 < 0.5 + 1.0);
    assert_int_equal(atomic_load(&ev_closes), 20);
    for (int i = 0; i < 20; i++) {
        char buf[4];
        assert_int_equal(sockit_recv(c[i], buf, sizeof buf, 0), 0);
        sockit_close(c[i]);
    }
}

static void test_events_server_two_loops_serve_again_after_shutdown(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.loops = 2;
    ev_run r;
    ev_start(&r, &cfg, false);
    sockit_server_shutdown(r.srv);
    assert_int_equal(pthread_join(r.tid, NULL), 0);
    assert_int_equal(r.rc, 0);
    /* Serving again brings every loop back. */
    assert_int_equal(pthread_create(&r.tid, NULL, ev_serve, &r), 0);
    sockit *c[20];
    for (int i = 0; i < 20; i++)
        c[i] = ev_client(&r);
    for (int i = 0; i < 20; i++)
        ev_roundtrip(c[i], "again\n");
    for (int i = 0; i < 20; i++)
        sockit_close(c[i]);
    ev_stop(&r);
}

static void test_events_datagram_server_two_loops_answer_every_sender(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_dgram_config();
    cfg.loops = 2;
    ev_run r;
    ev_dgram_start(&r, &cfg);
    sockit *c[16];
    for (int k = 0; k < 16; k++)
        c[k] = ev_dgram_client(&r);
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 16; k++) {
            char msg[16], got[16];
            int n = snprintf(msg, sizeof msg, "%d.%d", k, round);
            assert_ok(sockit_send(c[k], msg, (size_t)n, 0));
            assert_int_equal(sockit_recv(c[k], got, sizeof got, 0), n);
            assert_memory_equal(got, msg, (size_t)n);
        }
    }
    for (int k = 0; k < 16; k++)
        sockit_close(c[k]);
    ev_stop(&r);
    assert_int_equal(atomic_load(&ev_dgram_closes), 2);
}

static void test_events_server_rejects_bad_loops(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_config();
    cfg.loops = 257;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "loops"));
    cfg.loops = -1;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit_server_config threads = {.mode = SOCKIT_THREADS, .handler = no_handler, .loops = 2};
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &threads));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "SOCKIT_EVENTS only"));
}

static atomic_int ev_verifies, ev_unnamed;

static bool count_verify(sockit_server *srv, const sockit_addr *peer, void *user)
{
    (void)srv;
    (void)user;
    atomic_fetch_add(&ev_verifies, 1);
    if (peer->len <= sizeof(sa_family_t))
        atomic_fetch_add(&ev_unnamed, 1);
    return true;
}

static void closing_datagram(sockit_datagram *d, const char *data, size_t len,
                             const sockit_addr *from, bool truncated, void *user)
{
    (void)from;
    (void)truncated;
    (void)user;
    atomic_fetch_add(&ev_dgrams, 1);
    if (len == 5 && memcmp(data, "close", 5) == 0)
        sockit_datagram_close(d);
}

static const sockit_datagram_callbacks closing_callbacks = {.on_datagram = closing_datagram,
                                                            .on_close = ev_datagram_closed};

/* A Unix datagram server: verify sees the unnamed sender too; a callback closes the
 * endpoint, and the server's close does not close it again. */
static void test_events_datagram_server_unnamed_sender_and_closing_callback(void **state)
{
    (void)state;
    sockit_server_config cfg = ev_dgram_config();
    cfg.datagram = &closing_callbacks;
    cfg.verify_request = count_verify;
    atomic_store(&ev_verifies, 0);
    atomic_store(&ev_unnamed, 0);
    char path[108], host[120];
    snprintf(path, sizeof path, "/tmp/sockit-evd-%d-%ld.sock", (int)getpid(), (long)random());
    snprintf(host, sizeof host, "unix:%s", path);
    ev_run r;
    memset(&r, 0, sizeof r);
    r.srv = sockit_server_new(host, 0, SOCK_DGRAM, &cfg);
    assert_sock(r.srv);
    assert_int_equal(pthread_create(&r.tid, NULL, ev_serve, &r), 0);
    sockit *c = sockit_socket(AF_UNIX, SOCK_DGRAM); /* never bound: unnamed */
    assert_sock(c);
    sockit_addr to;
    assert_ok(sockit_addr_unix(&to, path));
    assert_int_equal(sockit_sendto_addr(c, "hello", 5, 0, &to), 5);
    assert_int_equal(sockit_sendto_addr(c, "close", 5, 0, &to), 5);
    double until = harness_now() + 5.0;
    while (atomic_load(&ev_dgram_closes) == 0 && harness_now() < until)
        srv_sleep(0.005);
    assert_int_equal(atomic_load(&ev_dgram_closes), 1);
    assert_int_equal(atomic_load(&ev_dgrams), 2);
    assert_int_equal(atomic_load(&ev_verifies), 2);
    assert_int_equal(atomic_load(&ev_unnamed), 2);
    ev_stop(&r);
    assert_int_equal(atomic_load(&ev_dgram_closes), 1);
    sockit_close(c);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_server_answers_many_tcp_clients_at_once,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_names_its_backend, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_answers_unix_stream_clients,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_frames_lines_split_across_sends,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_stops_within_a_second_of_a_signal,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_shutdown_before_serving_returns_at_once,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_verify_rejects_a_client,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_max_connections_makes_the_next_wait,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_max_connections_refuse_closes_the_next,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_idle_timeout_frees_a_silent_client,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_new_client_served_while_500_drip,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(
            test_events_server_new_client_served_while_500_drip_every_2s, harness_fd_setup,
            harness_fd_teardown),
        cmocka_unit_test_setup_teardown(
            test_events_server_close_with_1000_open_returns_within_grace, harness_fd_setup,
            harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_handle_request_runs_one_iteration,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_rejects_bad_config, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_echoes_datagrams_to_each_sender,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_verify_drops_a_datagram,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_truncates_past_max_datagram_flagged,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(
            test_events_datagram_server_stops_on_shutdown_from_another_thread, harness_fd_setup,
            harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_two_loops_spread_tcp_clients,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_two_loops_share_a_unix_socket,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_two_loops_keep_max_connections_in_total,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_two_loops_stop_and_close_within_grace,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_two_loops_serve_again_after_shutdown,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_datagram_server_two_loops_answer_every_sender,
                                        harness_fd_setup, harness_fd_teardown),
        cmocka_unit_test_setup_teardown(
            test_events_datagram_server_unnamed_sender_and_closing_callback, harness_fd_setup,
            harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_rejects_bad_loops, harness_fd_setup,
                                        harness_fd_teardown),
        cmocka_unit_test_setup_teardown(test_events_server_closed_without_serving, harness_fd_setup,
                                        harness_fd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
