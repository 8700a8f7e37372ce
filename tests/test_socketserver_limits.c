/* What a server refuses and bounds: verify_request, handler failures reported to
 * handle_error, idle_timeout, max_connections (wait or refuse), handle_request's
 * timeout, and bad configurations. */
#include "socketserver_harness.h"

#include <math.h>

/* ---- verify_request --------------------------------------------------------------- */

static atomic_int verify_calls;
static atomic_int verified_port;
static atomic_int rejected_port;

static bool reject_one_port(sockit_server *server, const sockit_addr *peer, void *user)
{
    (void)server;
    (void)user;
    atomic_fetch_add(&verify_calls, 1);
    atomic_store(&verified_port, sockit_addr_port(peer));
    return sockit_addr_port(peer) != atomic_load(&rejected_port);
}

static int local_port(const sockit *s)
{
    sockit_addr a;
    assert_ok(sockit_getsockname(s, &a));
    return sockit_addr_port(&a);
}

static void check_verify_rejects(sockit_server_mode mode)
{
    srv_reset_counters();
    atomic_store(&verify_calls, 0);
    sockit_server_config cfg = srv_echo_config(mode);
    cfg.verify_request = reject_one_port;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    /* The client's port is known before it connects, so verify can single it out. */
    sockit *bad = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(bad);
    assert_ok(sockit_bind(bad, "127.0.0.1", 0));
    atomic_store(&rejected_port, local_port(bad));
    srv_run r;
    srv_start(&r, srv);
    assert_ok(sockit_settimeout(bad, 2.0));
    assert_ok(sockit_connect_addr(bad, &p.addr));
    double t0 = harness_now();
    char buf[64];
    assert_int_equal(sockit_recv(bad, buf, sizeof buf, 0), 0);
    assert_true(harness_now() - t0 < 1.0);
    assert_int_equal(atomic_load(&verify_calls), 1);
    assert_int_equal(atomic_load(&verified_port), local_port(bad));
    sockit_close(bad);
    expect_echo(&p, "verified\n");
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
    assert_int_equal(atomic_load(&verify_calls), 2);
    assert_int_equal(atomic_load(&srv_handler_calls), 1);
}

static void test_rejected_client_reads_end_of_stream_and_no_handler_runs(void **state)
{
    (void)state;
    check_verify_rejects(SOCKIT_SEQUENTIAL);
    check_verify_rejects(SOCKIT_THREADS);
    check_verify_rejects(SOCKIT_POOL);
}

/* ---- handle_error ------------------------------------------------------------------- */

static atomic_int error_calls;
static atomic_int error_code;
static atomic_int error_port;
static _Atomic(void *) error_user;

static void record_error(sockit_request *req, int code, void *user)
{
    atomic_store(&error_code, code);
    atomic_store(&error_port, req != NULL ? sockit_addr_port(&req->peer) : -1);
    atomic_store(&error_user, user);
    atomic_fetch_add(&error_calls, 1);
}

static bool wait_count(atomic_int *counter, int n, double seconds)
{
    double end = harness_now() + seconds;
    while (atomic_load(counter) < n && harness_now() < end)
        srv_sleep(0.005);
    return atomic_load(counter) >= n;
}

static void check_failure_reported(sockit_server_mode mode)
{
    atomic_store(&error_calls, 0);
    static int user_data;
    sockit_server_config cfg = srv_echo_config(mode);
    cfg.handle_error = record_error;
    cfg.user = &user_data;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit *c = client_open(&p);
    assert_sock(c);
    assert_ok(client_send(&p, c, "fail please\n", true));
    char buf[64];
    /* The connection is closed after the failed handler. */
    assert_int_equal(sockit_recv(c, buf, sizeof buf, 0), 0);
    assert_true(wait_count(&error_calls, 1, 5.0));
    assert_int_equal(atomic_load(&error_code), -EPROTO);
    assert_int_equal(atomic_load(&error_port), local_port(c));
    assert_ptr_equal(atomic_load(&error_user), &user_data);
    sockit_close(c);
    expect_echo(&p, "the next client\n");
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
    assert_int_equal(atomic_load(&error_calls), 1);
}

static void test_handler_failure_goes_to_handle_error_and_the_next_client_is_served(void **state)
{
    (void)state;
    check_failure_reported(SOCKIT_SEQUENTIAL);
    check_failure_reported(SOCKIT_THREADS);
    check_failure_reported(SOCKIT_POOL);
}

/* ---- idle_timeout -------------------------------------------------------------------- */

static atomic_int idle_result;
static atomic_int idle_ms;

/* Echoes lines; records how the last read ended and how long it waited. */
static int idle_handler(sockit_request *req)
{
    char line[128];
    for (int i = 0; i < 100; i++) {
        double t0 = harness_now();
        ssize_t n = sockit_readline(req->sock, line, sizeof line);
        atomic_store(&idle_ms, (int)((harness_now() - t0) * 1000));
        atomic_store(&idle_result, (int)n);
        if (n <= 0)
            return (int)n;
        ssize_t w = sockit_sendall(req->sock, line, (size_t)n, 0, NULL);
        if (w < 0)
            return (int)w;
    }
    return 0;
}

static void check_idle_client_dropped(sockit_server_mode mode)
{
    atomic_store(&error_calls, 0);
    atomic_store(&idle_result, 1);
    sockit_server_config cfg = {
        .handler = idle_handler, .mode = mode, .idle_timeout = 0.3, .handle_error = record_error};
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);

    /* Silent: the handler's read fails after about 0.3 s and the connection closes. */
    sockit *idle = client_open(&p);
    assert_sock(idle);
    double t0 = harness_now();
    char buf[128];
    assert_int_equal(sockit_recv(idle, buf, sizeof buf, 0), 0);
    double closed_after = harness_now() - t0;
    assert_true(closed_after >= 0.25 && closed_after < 1.5);
    assert_int_equal(atomic_load(&idle_result), SOCKIT_ETIMEOUT);
    assert_true(atomic_load(&idle_ms) >= 250 && atomic_load(&idle_ms) < 1500);
    assert_true(wait_count(&error_calls, 1, 2.0));
    assert_int_equal(atomic_load(&error_code), SOCKIT_ETIMEOUT);
    sockit_close(idle);

    /* Slow but never idle that long: 5 lines 0.15 s apart outlast the timeout. */
    sockit *slow = client_open(&p);
    assert_sock(slow);
    for (int i = 0; i < 5; i++) {
        srv_sleep(0.15);
        snprintf(buf, sizeof buf, "line %d\n", i);
        assert_ok(sockit_sendall(slow, buf, strlen(buf), 0, NULL));
        char got[128];
        assert_ok(sockit_readline(slow, got, sizeof got));
        assert_string_equal(got, buf);
    }
    sockit_close(slow);
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
}

static void test_idle_connection_is_closed_after_idle_timeout(void **state)
{
    (void)state;
    check_idle_client_dropped(SOCKIT_SEQUENTIAL);
    check_idle_client_dropped(SOCKIT_THREADS);
    check_idle_client_dropped(SOCKIT_POOL);
}

/* ---- max_connections ------------------------------------------------------------------- */

/* A and B are served and hold their connections. With WAIT, C's request gets no
 * answer (stage 1, checked by the test) until A leaves; n[0] = 1 when C was
 * answered then. With REFUSE, C reads end of stream at once (t[0] how soon), and
 * once A left a new client D is served (n[0] = 1). */
static void max_connections_script(const srv_place *p, client_report *rep, void *arg)
{
    bool refuse = *(const bool *)arg;
    sockit *a = client_open(p), *b = client_open(p), *c = NULL, *d = NULL;
    char ans[64];
    if (!client_check(rep, a != NULL && b != NULL, "connect A and B") ||
        !client_check(rep, client_send(p, a, "A\n", false) >= 0, "send A") ||
        !client_check(rep, client_recv(p, a, ans, sizeof ans) > 0, "A is served") ||
        !client_check(rep, client_send(p, b, "B\n", false) >= 0, "send B") ||
        !client_check(rep, client_recv(p, b, ans, sizeof ans) > 0, "B is served"))
        goto out;
    c = client_open(p);
    if (!client_check(rep, c != NULL, "connect C"))
        goto out;
    if (refuse) {
        double t0 = harness_now();
        client_check(rep, sockit_recv(c, ans, sizeof ans, 0) == 0, "C reads end of stream");
        rep->t[0] = harness_now() - t0;
        if (!clients_sync(rep, 1, 10.0))
            goto out;
        sockit_close(a);
        a = NULL;
        /* A's handler ends a moment after A leaves; until then D may be refused. */
        for (int i = 0; i < 40 && !rep->n[0]; i++) {
            d = client_open(p);
            if (d != NULL && client_send(p, d, "D\n", true) >= 0 &&
                client_recv(p, d, ans, sizeof ans) > 0 && strcmp(ans, "D\n") == 0)
                rep->n[0] = 1;
            sockit_close(d);
            d = NULL;
            if (!rep->n[0])
                srv_sleep(0.05);
        }
        goto out;
    }
    if (!client_check(rep, client_send(p, c, "C\n", true) >= 0, "send C"))
        goto out;
    sockit_settimeout(c, 0.4);
    client_check(rep, client_recv(p, c, ans, sizeof ans) == SOCKIT_ETIMEOUT,
                 "C must not be answered while A and B are served");
    if (!clients_sync(rep, 1, 10.0))
        goto out;
    sockit_close(a);
    a = NULL;
    sockit_settimeout(c, 3.0);
    rep->n[0] = client_recv(p, c, ans, sizeof ans) > 0 && strcmp(ans, "C\n") == 0;
out:
    sockit_close(a);
    sockit_close(b);
    sockit_close(c);
}

/* max_children: SOCKIT_PROCESSES' table, 0 for the default. */
static void check_max_connections(sockit_server_mode mode, bool refuse, int max_children)
{
    sockit_server_config cfg = srv_echo_config(mode);
    cfg.max_connections = 2;
    cfg.max_children = max_children;
    cfg.overflow = refuse ? SOCKIT_OVERFLOW_REFUSE : SOCKIT_OVERFLOW_WAIT;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    clients cl;
    clients_start(&cl, mode, &p, max_connections_script, &refuse);
    srv_run r;
    srv_start(&r, srv);
    assert_true(clients_reached(&cl, 1, 10.0));
    /* C is not counted: it waits in the backlog, or was refused. */
    assert_int_equal(sockit_server_active(srv), 2);
    atomic_store(&cl.rep->step, 1);
    client_report rep;
    bool ended = clients_finish(&cl, 20.0, &rep);
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
    if (rep.failed)
        fail_msg("clients: %s", rep.why);
    assert_true(ended);
    assert_int_equal(rep.n[0], 1);
    if (refuse)
        assert_true(rep.t[0] < 1.0);
}

static void test_max_connections_wait_serves_the_third_client_once_one_ends(void **state)
{
    (void)state;
    check_max_connections(SOCKIT_THREADS, false, 0);
    check_max_connections(SOCKIT_POOL, false, 0);
    check_max_connections(SOCKIT_PROCESSES, false, 0);
}

static void test_max_connections_refuse_closes_the_third_client_at_once(void **state)
{
    (void)state;
    check_max_connections(SOCKIT_THREADS, true, 0);
    check_max_connections(SOCKIT_POOL, true, 0);
    check_max_connections(SOCKIT_PROCESSES, true, 0);
}

/* A table of children as full as max_connections: C is still refused, not left
 * waiting (the fault probes do the same for a pool whose queue fills at the limit). */
static void test_max_connections_refuse_wins_over_a_full_table_of_children(void **state)
{
    (void)state;
    check_max_connections(SOCKIT_PROCESSES, true, 2);
}

/* ---- handle_request ------------------------------------------------------------------ */

static atomic_int timeouts;

static void count_timeout(sockit_server *server, void *user)
{
    (void)server;
    (void)user;
    atomic_fetch_add(&timeouts, 1);
}

static void test_handle_request_without_client_times_out_and_calls_handle_timeout(void **state)
{
    (void)state;
    static const sockit_server_mode modes[] = {SOCKIT_SEQUENTIAL, SOCKIT_THREADS};
    for (size_t i = 0; i < 2; i++) {
        atomic_store(&timeouts, 0);
        sockit_server_config cfg = srv_echo_config(modes[i]);
        cfg.handle_timeout = count_timeout;
        srv_place p;
        sockit_server *srv = srv_new(&p, i == 0 ? KIND_TCP : KIND_UDP, &cfg);
        double t0 = harness_now();
        assert_int_equal(sockit_server_handle_request(srv, 0.3), 0);
        double took = harness_now() - t0;
        assert_true(took >= 0.28 && took < 1.0);
        assert_int_equal(atomic_load(&timeouts), 1);
        /* A zero timeout only looks. */
        t0 = harness_now();
        assert_int_equal(sockit_server_handle_request(srv, 0.0), 0);
        assert_true(harness_now() - t0 < 0.1);
        assert_int_equal(atomic_load(&timeouts), 2);
        assert_ok(sockit_server_close(srv));
    }
}

/* ---- configuration ------------------------------------------------------------------- */

static void expect_bad_config(int type, const sockit_server_config *cfg, const char *field)
{
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, type, cfg);
    if (srv != NULL) {
        sockit_server_close(srv);
        fail_msg("a config with a bad %s was accepted", field);
    }
    assert_int_equal(sockit_errcode(), -EINVAL);
    if (strstr(sockit_errmsg(), field) == NULL)
        fail_msg("message does not name %s: %s", field, sockit_errmsg());
}

static void test_bad_config_is_einval_naming_the_field(void **state)
{
    (void)state;
    const sockit_server_config good = srv_echo_config(SOCKIT_THREADS);
    sockit_server_config c;

    c = good;
    c.handler = NULL;
    expect_bad_config(SOCK_STREAM, &c, "handler");
    c = good;
    c.mode = (sockit_server_mode)17;
    expect_bad_config(SOCK_STREAM, &c, "mode");
    c = good;
    c.mode = (sockit_server_mode)-1;
    expect_bad_config(SOCK_STREAM, &c, "mode");
    c = good;
    c.threads = -1;
    expect_bad_config(SOCK_STREAM, &c, "threads");
    c = good;
    c.queue = -1;
    expect_bad_config(SOCK_STREAM, &c, "queue");
    c = good;
    c.max_children = -1;
    expect_bad_config(SOCK_STREAM, &c, "max_children");
    c = good;
    c.max_connections = -1;
    expect_bad_config(SOCK_STREAM, &c, "max_connections");
    c = good;
    c.overflow = (sockit_overflow)5;
    expect_bad_config(SOCK_STREAM, &c, "overflow");
    c = good;
    c.idle_timeout = NAN;
    expect_bad_config(SOCK_STREAM, &c, "idle_timeout");
    c = good;
    c.close_grace = NAN;
    expect_bad_config(SOCK_STREAM, &c, "close_grace");
    expect_bad_config(0, &good, "type");
    expect_bad_config(SOCK_RAW, &good, "type");
    expect_bad_config(SOCK_SEQPACKET, &good, "type");
    expect_bad_config(SOCK_STREAM | SOCK_NONBLOCK, &good, "type");
}

static void test_server_new_with_null_config_is_einval(void **state)
{
    (void)state;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
}

static void test_bad_port_is_ebadport(void **state)
{
    (void)state;
    const sockit_server_config cfg = srv_echo_config(SOCKIT_SEQUENTIAL);
    assert_null(sockit_server_new("127.0.0.1", 65536, SOCK_STREAM, &cfg));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
    assert_non_null(strstr(sockit_errmsg(), "65536"));
    assert_null(sockit_server_new("127.0.0.1", -1, SOCK_DGRAM, &cfg));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
}

static void test_port_in_use_fails_naming_the_address(void **state)
{
    (void)state;
    const sockit_server_config cfg = srv_echo_config(SOCKIT_SEQUENTIAL);
    srv_place p;
    sockit_server *first = srv_new(&p, KIND_TCP, &cfg);
    int port = sockit_addr_port(&p.addr);
    assert_null(sockit_server_new("127.0.0.1", port, SOCK_STREAM, &cfg));
    assert_int_equal(sockit_errcode(), -EADDRINUSE);
    char want[32];
    snprintf(want, sizeof want, "%d", port);
    assert_non_null(strstr(sockit_errmsg(), want));
    assert_ok(sockit_server_close(first));
}

static void test_close_null_is_a_no_op(void **state)
{
    (void)state;
    assert_int_equal(sockit_server_close(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_rejected_client_reads_end_of_stream_and_no_handler_runs),
        harness_test(test_handler_failure_goes_to_handle_error_and_the_next_client_is_served),
        harness_test(test_idle_connection_is_closed_after_idle_timeout),
        harness_test(test_max_connections_wait_serves_the_third_client_once_one_ends),
        harness_test(test_max_connections_refuse_closes_the_third_client_at_once),
        harness_test(test_max_connections_refuse_wins_over_a_full_table_of_children),
        harness_test(test_handle_request_without_client_times_out_and_calls_handle_timeout),
        harness_test(test_bad_config_is_einval_naming_the_field),
        harness_test(test_server_new_with_null_config_is_einval),
        harness_test(test_bad_port_is_ebadport),
        harness_test(test_port_in_use_fails_naming_the_address),
        harness_test(test_close_null_is_a_no_op),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
