/* What the counts count: sockit_server_active is handlers running, and
 * sockit_server_waiting is requests a pool has accepted but no worker has started;
 * max_connections bounds the two together. */
#include "socketserver_harness.h"

/* Waits (bounded) until active and waiting are want_active and want_waiting. */
static bool counts_become(sockit_server *srv, int want_active, int want_waiting, double seconds)
{
    double end = harness_now() + seconds;
    while (harness_now() < end) {
        if (sockit_server_active(srv) == want_active && sockit_server_waiting(srv) == want_waiting)
            return true;
        srv_sleep(0.005);
    }
    print_message("active %d (want %d), waiting %d (want %d)\n", sockit_server_active(srv),
                  want_active, sockit_server_waiting(srv), want_waiting);
    return false;
}

/* Clients that connect and say nothing: each holds a handler in readline. */
static void open_idle(const srv_place *p, sockit **c, int n)
{
    for (int i = 0; i < n; i++) {
        c[i] = client_open(p);
        assert_sock(c[i]);
    }
}

static void close_all(sockit **c, int n)
{
    for (int i = 0; i < n; i++)
        sockit_close(c[i]);
}

static void test_pool_active_counts_running_handlers_and_waiting_the_queue(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_POOL);
    cfg.threads = 2;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit *c[6];
    open_idle(&p, c, 6);
    /* 2 threads, 6 idle clients: 2 handlers run, 4 requests wait for a worker. */
    assert_true(counts_become(srv, 2, 4, 5.0));
    /* Two clients leave: their workers take the next two from the queue. */
    close_all(c, 2);
    assert_true(counts_become(srv, 2, 2, 5.0));
    close_all(c + 2, 4);
    assert_true(counts_become(srv, 0, 0, 5.0));
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
}

static void test_threads_mode_runs_every_request_at_once_so_none_waits(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_THREADS);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit *c[3];
    open_idle(&p, c, 3);
    assert_true(counts_become(srv, 3, 0, 5.0));
    close_all(c, 3);
    assert_true(counts_become(srv, 0, 0, 5.0));
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
}

/* max_connections = 4 with 2 workers: 2 run, 2 wait, and the fifth and sixth
 * clients are refused because the waiting ones count too. */
static void test_pool_max_connections_counts_waiting_requests_too(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_POOL);
    cfg.threads = 2;
    cfg.max_connections = 4;
    cfg.overflow = SOCKIT_OVERFLOW_REFUSE;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit *c[6];
    open_idle(&p, c, 4);
    assert_true(counts_become(srv, 2, 2, 5.0));
    open_idle(&p, c + 4, 2);
    for (int i = 4; i < 6; i++) {
        char b;
        assert_ok(sockit_settimeout(c[i], 2.0));
        ssize_t n = sockit_recv(c[i], &b, 1, 0);
        assert_true(n == 0 || n == -ECONNRESET);
    }
    assert_true(counts_become(srv, 2, 2, 5.0));
    close_all(c, 6);
    assert_true(counts_become(srv, 0, 0, 5.0));
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
}

static void test_counts_of_null_are_0(void **state)
{
    (void)state;
    assert_int_equal(sockit_server_active(NULL), 0);
    assert_int_equal(sockit_server_waiting(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_pool_active_counts_running_handlers_and_waiting_the_queue),
        harness_test(test_threads_mode_runs_every_request_at_once_so_none_waits),
        harness_test(test_pool_max_connections_counts_waiting_requests_too),
        harness_test(test_counts_of_null_are_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
