/* Datagram servers (UDP and Unix) in every mode: right answers, 200 clients at
 * once, a slow request that holds up nobody (except in sequential mode), the
 * largest UDP datagram whole, and the hooks: verify_request drops, handle_error
 * hears of failures and of datagrams too big for max_datagram. */
#include "socketserver_harness.h"

static const sockit_server_mode all_modes[] = {SOCKIT_SEQUENTIAL, SOCKIT_THREADS, SOCKIT_PROCESSES,
                                               SOCKIT_POOL};

static void check_mode_answers(sockit_server_mode mode, srv_kind kind)
{
    srv_reset_counters();
    sockit_server_config cfg = srv_echo_config(mode);
    srv_place p;
    sockit_server *srv = srv_new(&p, kind, &cfg);
    serve_clients(srv, mode, &p, answers_script, NULL, NULL);
    assert_ok(sockit_server_close(srv));
    srv_place_free(&p);
    /* Lost datagrams are sent again, so a handler may run more than once per client;
     * in process mode it runs in the children, never here. */
    if (mode == SOCKIT_PROCESSES)
        assert_int_equal(atomic_load(&srv_handler_calls), 0);
    else
        assert_true(atomic_load(&srv_handler_calls) >= 22);
}

static void test_every_mode_answers_udp_clients(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_modes / sizeof all_modes[0]; i++)
        check_mode_answers(all_modes[i], KIND_UDP);
}

static void test_every_mode_answers_unix_datagram_clients(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_modes / sizeof all_modes[0]; i++)
        check_mode_answers(all_modes[i], KIND_UNIX_DGRAM);
}

static void test_threads_mode_answers_200_concurrent_datagram_clients(void **state)
{
    (void)state;
    check_200_at_once(SOCKIT_THREADS, KIND_UDP);
    check_200_at_once(SOCKIT_THREADS, KIND_UNIX_DGRAM);
}

static void test_processes_mode_answers_200_concurrent_datagram_clients(void **state)
{
    (void)state;
    check_200_at_once(SOCKIT_PROCESSES, KIND_UDP);
    check_200_at_once(SOCKIT_PROCESSES, KIND_UNIX_DGRAM);
}

static void test_pool_mode_answers_200_concurrent_datagram_clients(void **state)
{
    (void)state;
    check_200_at_once(SOCKIT_POOL, KIND_UDP);
    check_200_at_once(SOCKIT_POOL, KIND_UNIX_DGRAM);
}

/* Seconds after the slow datagram was sent until the others were all answered. */
static double others_answered_after_slow(sockit_server_mode mode)
{
    sockit_server_config cfg = srv_echo_config(mode);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_UDP, &cfg);
    client_report rep;
    serve_clients(srv, mode, &p, slow_client_script, NULL, &rep);
    assert_ok(sockit_server_close(srv));
    assert_true(rep.t[1] >= 1.4);
    return rep.t[0];
}

static void test_slow_datagram_does_not_hold_up_others_in_threads_mode(void **state)
{
    (void)state;
    assert_true(others_answered_after_slow(SOCKIT_THREADS) < 1.0);
}

static void test_slow_datagram_does_not_hold_up_others_in_processes_mode(void **state)
{
    (void)state;
    assert_true(others_answered_after_slow(SOCKIT_PROCESSES) < 1.0);
}

static void test_slow_datagram_does_not_hold_up_others_in_pool_mode(void **state)
{
    (void)state;
    assert_true(others_answered_after_slow(SOCKIT_POOL) < 1.0);
}

static void test_slow_datagram_holds_up_others_in_sequential_mode(void **state)
{
    (void)state;
    assert_true(others_answered_after_slow(SOCKIT_SEQUENTIAL) >= 1.4);
}

/* ---- big datagrams ------------------------------------------------------------------ */

static char pattern_byte(size_t i) { return (char)(i * 7 + i / 251); }

/* Answers a datagram that arrived whole and unchanged with itself, anything else
 * with a short complaint. */
static int whole_datagram_handler(sockit_request *req)
{
    size_t want = *(const size_t *)req->user;
    bool whole = req->len == want;
    for (size_t i = 0; whole && i < req->len; i++)
        whole = req->data[i] == pattern_byte(i);
    ssize_t n = whole ? sockit_sendto_addr(req->sock, req->data, req->len, 0, &req->peer)
                      : sockit_sendto_addr(req->sock, "cut", 3, 0, &req->peer);
    return n < 0 ? (int)n : 0;
}

static void big_datagram_script(const srv_place *p, client_report *rep, void *arg)
{
    size_t size = *(const size_t *)arg;
    char *out = malloc(size), *in = malloc(size + 16);
    sockit *c = client_open(p);
    if (client_check(rep, out != NULL && in != NULL && c != NULL, "set up the client")) {
        for (size_t i = 0; i < size; i++)
            out[i] = pattern_byte(i);
        client_check(rep, sockit_sendto_addr(c, out, size, 0, &p->addr) == (ssize_t)size,
                     "send the whole datagram");
        ssize_t n = sockit_recvfrom(c, in, size + 16, 0, NULL);
        rep->n[0] = (int)n;
        client_check(rep, n == (ssize_t)size, "the reply has the datagram's size");
        client_check(rep, n == (ssize_t)size && memcmp(in, out, size) == 0,
                     "the reply is the datagram");
    }
    sockit_close(c);
    free(out);
    free(in);
}

static void check_big_datagram(srv_kind kind, size_t size)
{
    for (size_t i = 0; i < sizeof all_modes / sizeof all_modes[0]; i++) {
        sockit_server_config cfg = {
            .handler = whole_datagram_handler, .mode = all_modes[i], .user = &size};
        srv_place p;
        sockit_server *srv = srv_new(&p, kind, &cfg);
        client_report rep;
        serve_clients(srv, all_modes[i], &p, big_datagram_script, &size, &rep);
        assert_int_equal(rep.n[0], (int)size);
        assert_ok(sockit_server_close(srv));
        srv_place_free(&p);
    }
}

static void test_udp_datagram_of_65507_bytes_arrives_whole_and_is_answered(void **state)
{
    (void)state;
    check_big_datagram(KIND_UDP, 65507);
}

/* The default max_datagram (65536) holds a Unix datagram of that size whole. */
static void test_unix_datagram_of_65536_bytes_arrives_whole_and_is_answered(void **state)
{
    (void)state;
    check_big_datagram(KIND_UNIX_DGRAM, 65536);
}

/* Waits (bounded) until counter reaches n. */
static bool wait_count(atomic_int *counter, int n, double seconds)
{
    double end = harness_now() + seconds;
    while (atomic_load(counter) < n && harness_now() < end)
        srv_sleep(0.005);
    return atomic_load(counter) >= n;
}

/* A datagram beyond max_datagram reaches handle_error as SOCKIT_ETRUNCATED, never
 * the handler cut short; the next one that fits is served. */
static void test_datagram_bigger_than_max_datagram_is_reported_not_served_cut(void **state)
{
    (void)state;
    srv_reset_counters();
    sockit_server_config cfg = srv_echo_config(SOCKIT_THREADS);
    cfg.max_datagram = 1000;
    cfg.handle_error = srv_quiet_error;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_UDP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit *c = client_open(&p);
    assert_sock(c);
    char big[1500];
    memset(big, 'b', sizeof big);
    big[sizeof big - 1] = '\n';
    assert_int_equal(sockit_sendto_addr(c, big, sizeof big, 0, &p.addr), (ssize_t)sizeof big);
    assert_true(wait_count(&srv_error_calls, 1, 5.0));
    assert_int_equal(atomic_load(&srv_last_error), SOCKIT_ETRUNCATED);
    assert_int_equal(atomic_load(&srv_handler_calls), 0);
    /* 1000 bytes exactly: fits, served whole. */
    assert_int_equal(sockit_sendto_addr(c, big + 500, 1000, 0, &p.addr), 1000);
    char in[1100];
    assert_int_equal(sockit_recvfrom(c, in, sizeof in, 0, NULL), 1000);
    assert_memory_equal(in, big + 500, 1000);
    sockit_close(c);
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
    assert_int_equal(atomic_load(&srv_error_calls), 1);
}

/* ---- hooks ---------------------------------------------------------------------------- */

static atomic_int rejected_port;
static atomic_int verify_calls;

static bool reject_one_port(sockit_server *server, const sockit_addr *peer, void *user)
{
    (void)server;
    (void)user;
    atomic_fetch_add(&verify_calls, 1);
    return sockit_addr_port(peer) != atomic_load(&rejected_port);
}

static sockit *bound_udp_client(int *port)
{
    sockit *c = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(c);
    assert_ok(sockit_settimeout(c, 5.0));
    assert_ok(sockit_bind(c, "127.0.0.1", 0));
    sockit_addr me;
    assert_ok(sockit_getsockname(c, &me));
    *port = sockit_addr_port(&me);
    return c;
}

static void check_verify_drops(sockit_server_mode mode)
{
    srv_reset_counters();
    atomic_store(&verify_calls, 0);
    sockit_server_config cfg = srv_echo_config(mode);
    cfg.verify_request = reject_one_port;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_UDP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    int bad_port, good_port;
    sockit *bad = bound_udp_client(&bad_port), *good = bound_udp_client(&good_port);
    atomic_store(&rejected_port, bad_port);
    assert_int_equal(sockit_sendto_addr(bad, "rejected\n", 9, 0, &p.addr), 9);
    assert_true(wait_count(&verify_calls, 1, 5.0));
    assert_ok(sockit_settimeout(bad, 0.3));
    char in[64];
    assert_code(sockit_recvfrom(bad, in, sizeof in, 0, NULL), SOCKIT_ETIMEOUT);
    assert_int_equal(atomic_load(&srv_handler_calls), 0);
    assert_int_equal(sockit_sendto_addr(good, "accepted\n", 9, 0, &p.addr), 9);
    assert_int_equal(sockit_recvfrom(good, in, sizeof in, 0, NULL), 9);
    assert_memory_equal(in, "accepted\n", 9);
    assert_int_equal(atomic_load(&verify_calls), 2);
    assert_int_equal(atomic_load(&srv_handler_calls), 1);
    sockit_close(bad);
    sockit_close(good);
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
}

static void test_datagram_rejected_by_verify_request_is_dropped(void **state)
{
    (void)state;
    check_verify_drops(SOCKIT_SEQUENTIAL);
    check_verify_drops(SOCKIT_THREADS);
    check_verify_drops(SOCKIT_POOL);
}

static void check_failure_reported(sockit_server_mode mode)
{
    srv_reset_counters();
    sockit_server_config cfg = srv_echo_config(mode);
    cfg.handle_error = srv_quiet_error;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_UDP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit *c = client_open(&p);
    assert_sock(c);
    assert_int_equal(sockit_sendto_addr(c, "fail now\n", 9, 0, &p.addr), 9);
    assert_true(wait_count(&srv_error_calls, 1, 5.0));
    assert_int_equal(atomic_load(&srv_last_error), -EPROTO);
    assert_int_equal(atomic_load(&srv_error_had_request), 1);
    assert_int_equal(sockit_sendto_addr(c, "next\n", 5, 0, &p.addr), 5);
    char in[64];
    assert_int_equal(sockit_recvfrom(c, in, sizeof in, 0, NULL), 5);
    assert_memory_equal(in, "next\n", 5);
    sockit_close(c);
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
    assert_int_equal(atomic_load(&srv_error_calls), 1);
}

static void test_datagram_handler_failure_goes_to_handle_error_and_serving_goes_on(void **state)
{
    (void)state;
    check_failure_reported(SOCKIT_SEQUENTIAL);
    check_failure_reported(SOCKIT_THREADS);
    check_failure_reported(SOCKIT_POOL);
}

/* handle_request serves exactly one datagram and says so. */
static void test_handle_request_serves_one_datagram(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_SEQUENTIAL);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_UDP, &cfg);
    sockit *c = client_open(&p);
    assert_sock(c);
    assert_int_equal(sockit_sendto_addr(c, "one\n", 4, 0, &p.addr), 4);
    assert_int_equal(sockit_sendto_addr(c, "two\n", 4, 0, &p.addr), 4);
    assert_int_equal(sockit_server_handle_request(srv, 5.0), 1);
    char in[16];
    assert_int_equal(sockit_recvfrom(c, in, sizeof in, 0, NULL), 4);
    assert_memory_equal(in, "one\n", 4);
    /* The second is still waiting: not answered until the next call. */
    assert_ok(sockit_settimeout(c, 0.2));
    assert_code(sockit_recvfrom(c, in, sizeof in, 0, NULL), SOCKIT_ETIMEOUT);
    assert_int_equal(sockit_server_handle_request(srv, 5.0), 1);
    assert_int_equal(sockit_recvfrom(c, in, sizeof in, 0, NULL), 4);
    assert_memory_equal(in, "two\n", 4);
    sockit_close(c);
    assert_ok(sockit_server_close(srv));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_every_mode_answers_udp_clients),
        harness_test(test_every_mode_answers_unix_datagram_clients),
        harness_test(test_threads_mode_answers_200_concurrent_datagram_clients),
        harness_test(test_processes_mode_answers_200_concurrent_datagram_clients),
        harness_test(test_pool_mode_answers_200_concurrent_datagram_clients),
        harness_test(test_slow_datagram_does_not_hold_up_others_in_threads_mode),
        harness_test(test_slow_datagram_does_not_hold_up_others_in_processes_mode),
        harness_test(test_slow_datagram_does_not_hold_up_others_in_pool_mode),
        harness_test(test_slow_datagram_holds_up_others_in_sequential_mode),
        harness_test(test_udp_datagram_of_65507_bytes_arrives_whole_and_is_answered),
        harness_test(test_unix_datagram_of_65536_bytes_arrives_whole_and_is_answered),
        harness_test(test_datagram_bigger_than_max_datagram_is_reported_not_served_cut),
        harness_test(test_datagram_rejected_by_verify_request_is_dropped),
        harness_test(test_datagram_handler_failure_goes_to_handle_error_and_serving_goes_on),
        harness_test(test_handle_request_serves_one_datagram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
