/* The graceful close has a grace period: handlers get close_grace seconds to end by
 * themselves, then their connections are shut down and they are joined, so idle
 * clients cannot hold a close forever. Handlers can ask sockit_server_stopping, and
 * a SOCKIT_SEQUENTIAL handler blocked on its client is woken by a shutdown from a
 * signal handler. */
#include "socketserver_harness.h"

enum { IDLE = 50 };

/* 50 clients connect and say nothing. Stage 1: all connected. After step 1 (close
 * was called), each must see its connection end: n[0] ended, t[0] the seconds from
 * step 1 until the last ended. */
static void idle_script(const srv_place *p, client_report *rep, void *arg)
{
    (void)arg;
    sockit *c[IDLE] = {NULL};
    for (int i = 0; i < IDLE; i++)
        if (!client_check(rep, (c[i] = client_open(p)) != NULL, "connect"))
            goto out;
    if (!clients_sync(rep, 1, 20.0))
        goto out;
    double t0 = harness_now();
    for (int i = 0; i < IDLE; i++) {
        char ans[64];
        sockit_settimeout(c[i], 3.0);
        ssize_t n = client_recv(p, c[i], ans, sizeof ans);
        rep->n[0] += n == 0 || n == -ECONNRESET;
    }
    rep->t[0] = harness_now() - t0;
out:
    for (int i = 0; i < IDLE; i++)
        sockit_close(c[i]);
}

/* Returns the seconds close took with 50 idle clients connected. */
static double close_with_idle_clients(sockit_server_mode mode, double grace)
{
    int fds0 = harness_count_fds();
    sockit_server_config cfg = srv_echo_config(mode);
    cfg.threads = IDLE;
    cfg.max_children = IDLE + 10;
    cfg.close_grace = grace;
    cfg.handle_error = srv_quiet_error;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    clients cl;
    clients_start(&cl, mode, &p, idle_script, NULL);
    srv_run r;
    srv_start(&r, srv);
    assert_true(clients_reached(&cl, 1, 20.0));
    assert_true(srv_wait_active(srv, IDLE, 10.0));
    srv_stop(&r);
    atomic_store(&cl.rep->step, 1);
    double t0 = harness_now();
    assert_ok(sockit_server_close(srv));
    double took = harness_now() - t0;
    client_report rep;
    bool ended = clients_finish(&cl, 20.0, &rep);
    if (rep.failed)
        fail_msg("clients: %s", rep.why);
    assert_true(ended);
    assert_int_equal(rep.n[0], IDLE);
    print_message("close took %.3f s, the last client saw its end after %.3f s\n", took, rep.t[0]);
    assert_int_equal(harness_count_fds(), fds0);
    return took;
}

static void check_grace(sockit_server_mode mode)
{
    double took = close_with_idle_clients(mode, 0.3);
    assert_true(took >= 0.25);
    assert_true(took < 1.5);
}

static void test_close_shuts_idle_connections_down_after_the_grace_in_threads_mode(void **state)
{
    (void)state;
    check_grace(SOCKIT_THREADS);
}

static void test_close_shuts_idle_connections_down_after_the_grace_in_pool_mode(void **state)
{
    (void)state;
    check_grace(SOCKIT_POOL);
}

static void test_close_shuts_idle_connections_down_after_the_grace_in_processes_mode(void **state)
{
    (void)state;
    check_grace(SOCKIT_PROCESSES);
}

static void test_negative_close_grace_shuts_connections_down_at_once(void **state)
{
    (void)state;
    assert_true(close_with_idle_clients(SOCKIT_THREADS, -1.0) < 0.5);
}

/* One idle client, close_grace left at 0: close waits the default 5 s for it. */
static void test_default_close_grace_is_5_seconds(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_THREADS);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit *c = client_open(&p);
    assert_sock(c);
    assert_true(srv_wait_active(srv, 1, 5.0));
    srv_stop(&r);
    double t0 = harness_now();
    assert_ok(sockit_server_close(srv));
    double took = harness_now() - t0;
    char b;
    assert_int_equal(sockit_recv(c, &b, 1, 0), 0);
    sockit_close(c);
    print_message("close took %.3f s\n", took);
    assert_true(took >= 4.9 && took < 7.0);
}

/* ---- sockit_server_stopping ------------------------------------------------------- */

/* Answers lines until the client ends, or until the server is stopping. */
static int polite_echo(sockit_request *req)
{
    char line[256];
    for (;;) {
        ssize_t n = sockit_readline(req->sock, line, sizeof line);
        if (n <= 0)
            return (int)n;
        /* Asked as the line arrives, not after the answer: a client that has its
         * answer may stop the server before this handler runs on. */
        bool stopping = sockit_server_stopping(req->server);
        n = sockit_sendall(req->sock, line, (size_t)n, 0, NULL);
        if (n < 0)
            return (int)n;
        if (stopping)
            return 0;
    }
}

/* Stage 1: one exchange done. After step 1 (shutdown asked), a second line is
 * answered and then the connection ends: n[0] = 1 when all of that held. */
static void polite_script(const srv_place *p, client_report *rep, void *arg)
{
    (void)arg;
    sockit *c = client_open(p);
    char ans[64];
    if (!client_check(rep, c != NULL, "connect") ||
        !client_check(rep, client_send(p, c, "one\n", false) >= 0, "send one") ||
        !client_check(rep, client_recv(p, c, ans, sizeof ans) > 0 && strcmp(ans, "one\n") == 0,
                      "answer one") ||
        !clients_sync(rep, 1, 20.0))
        goto out;
    if (client_check(rep, client_send(p, c, "two\n", false) >= 0, "send two") &&
        client_check(rep, client_recv(p, c, ans, sizeof ans) > 0 && strcmp(ans, "two\n") == 0,
                     "answer two") &&
        client_check(rep, client_recv(p, c, ans, sizeof ans) == 0,
                     "the handler ends after its answer once the server is stopping"))
        rep->n[0] = 1;
out:
    sockit_close(c);
}

static void check_stopping(sockit_server_mode mode)
{
    sockit_server_config cfg = {.handler = polite_echo, .mode = mode};
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    assert_false(sockit_server_stopping(srv));
    clients cl;
    clients_start(&cl, mode, &p, polite_script, NULL);
    srv_run r;
    srv_start(&r, srv);
    assert_true(clients_reached(&cl, 1, 20.0));
    assert_false(sockit_server_stopping(srv));
    srv_stop(&r);
    assert_true(sockit_server_stopping(srv));
    atomic_store(&cl.rep->step, 1);
    client_report rep;
    bool ended = clients_finish(&cl, 20.0, &rep);
    if (rep.failed)
        fail_msg("client: %s", rep.why);
    assert_true(ended);
    assert_int_equal(rep.n[0], 1);
    /* Serving again is a new run: not stopping any more. */
    srv_start(&r, srv);
    srv_sleep(0.1);
    assert_false(sockit_server_stopping(srv));
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
}

static void test_handler_sees_the_server_stopping_in_threads_mode(void **state)
{
    (void)state;
    check_stopping(SOCKIT_THREADS);
}

static void test_handler_in_a_child_sees_the_server_stopping_in_processes_mode(void **state)
{
    (void)state;
    check_stopping(SOCKIT_PROCESSES);
}

static void test_stopping_of_null_is_false(void **state)
{
    (void)state;
    assert_false(sockit_server_stopping(NULL));
}

/* ---- SOCKIT_SEQUENTIAL: shutdown from a signal handler ------------------------------- */

static sockit_server *_Atomic signal_server;

static void shutdown_on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(atomic_load(&signal_server));
}

/* The handler runs in the serving thread and blocks reading a client that says
 * nothing; the signal's handler asks for shutdown, and serve_forever returns soon
 * instead of when the client gives up. */
static void test_signal_shutdown_wakes_a_sequential_handler_blocked_in_recv(void **state)
{
    (void)state;
    srv_reset_counters();
    sockit_server_config cfg = srv_echo_config(SOCKIT_SEQUENTIAL);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    atomic_store(&signal_server, srv);
    harness_signal_no_restart(SIGINT, shutdown_on_signal);
    /* Connected through the backlog before serving starts; it never sends. */
    sockit *idle = client_open(&p);
    assert_sock(idle);
    harness_signal_after(SIGINT, 0.3);
    double t0 = harness_now();
    assert_int_equal(sockit_server_serve_forever(srv), 0);
    double took = harness_now() - t0;
    signal(SIGINT, SIG_DFL);
    atomic_store(&signal_server, NULL);
    assert_int_equal(atomic_load(&srv_handler_calls), 1);
    char b;
    assert_int_equal(sockit_recv(idle, &b, 1, 0), 0);
    sockit_close(idle);
    assert_ok(sockit_server_close(srv));
    print_message("serve_forever returned %.3f s after it started\n", took);
    assert_true(took >= 0.25 && took < 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_close_shuts_idle_connections_down_after_the_grace_in_threads_mode),
        harness_test(test_close_shuts_idle_connections_down_after_the_grace_in_pool_mode),
        harness_test(test_close_shuts_idle_connections_down_after_the_grace_in_processes_mode),
        harness_test(test_negative_close_grace_shuts_connections_down_at_once),
        harness_test(test_default_close_grace_is_5_seconds),
        harness_test(test_handler_sees_the_server_stopping_in_threads_mode),
        harness_test(test_handler_in_a_child_sees_the_server_stopping_in_processes_mode),
        harness_test(test_stopping_of_null_is_false),
        harness_test(test_signal_shutdown_wakes_a_sequential_handler_blocked_in_recv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
