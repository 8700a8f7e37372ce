/* Stream servers (TCP and Unix) in every mode: right answers, 200 clients at once,
 * a slow client that holds up nobody (except in sequential mode, as documented),
 * and a line protocol written with readline, recv_exact and sendall. */
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
    /* A process per connection runs the handler in the child, never here. */
    assert_int_equal(atomic_load(&srv_handler_calls), mode == SOCKIT_PROCESSES ? 0 : 22);
}

static void test_every_mode_answers_tcp_clients(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_modes / sizeof all_modes[0]; i++)
        check_mode_answers(all_modes[i], KIND_TCP);
}

static void test_every_mode_answers_unix_stream_clients(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_modes / sizeof all_modes[0]; i++)
        check_mode_answers(all_modes[i], KIND_UNIX_STREAM);
}

static void test_threads_mode_answers_200_concurrent_clients(void **state)
{
    (void)state;
    check_200_at_once(SOCKIT_THREADS, KIND_TCP);
    check_200_at_once(SOCKIT_THREADS, KIND_UNIX_STREAM);
}

static void test_processes_mode_answers_200_concurrent_clients(void **state)
{
    (void)state;
    check_200_at_once(SOCKIT_PROCESSES, KIND_TCP);
    check_200_at_once(SOCKIT_PROCESSES, KIND_UNIX_STREAM);
}

static void test_pool_mode_answers_200_concurrent_clients(void **state)
{
    (void)state;
    check_200_at_once(SOCKIT_POOL, KIND_TCP);
    check_200_at_once(SOCKIT_POOL, KIND_UNIX_STREAM);
}

static double others_answered_after_slow(sockit_server_mode mode)
{
    sockit_server_config cfg = srv_echo_config(mode);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    client_report rep;
    serve_clients(srv, mode, &p, slow_client_script, NULL, &rep);
    assert_ok(sockit_server_close(srv));
    assert_true(rep.t[1] >= 1.4);
    return rep.t[0];
}

static void test_slow_client_does_not_hold_up_others_in_threads_mode(void **state)
{
    (void)state;
    assert_true(others_answered_after_slow(SOCKIT_THREADS) < 1.0);
}

static void test_slow_client_does_not_hold_up_others_in_processes_mode(void **state)
{
    (void)state;
    assert_true(others_answered_after_slow(SOCKIT_PROCESSES) < 1.0);
}

static void test_slow_client_does_not_hold_up_others_in_pool_mode(void **state)
{
    (void)state;
    assert_true(others_answered_after_slow(SOCKIT_POOL) < 1.0);
}

/* Sequential mode handles one request at a time: the others wait for the slow one. */
static void test_slow_client_holds_up_others_in_sequential_mode(void **state)
{
    (void)state;
    assert_true(others_answered_after_slow(SOCKIT_SEQUENTIAL) >= 1.4);
}

/* ---- a line protocol ------------------------------------------------------------------ */

/* "PUT n\n" then n raw bytes: answers "OK n sum\n" then the bytes reversed.
 * "QUIT\n": answers "BYE\n" and ends. Anything else: "ERR\n". */
static int line_protocol_handler(sockit_request *req)
{
    enum { MAX_BODY = 70000 };
    char line[128];
    char *body = malloc(MAX_BODY);
    if (body == NULL)
        return -ENOMEM;
    int rc = 0;
    for (int i = 0; i < 100; i++) {
        ssize_t n = sockit_readline(req->sock, line, sizeof line);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        size_t len;
        const char *reply = NULL;
        if (strcmp(line, "QUIT\n") == 0)
            reply = "BYE\n";
        else if (sscanf(line, "PUT %zu\n", &len) != 1 || len > MAX_BODY)
            reply = "ERR\n";
        if (reply != NULL) {
            ssize_t w = sockit_sendall(req->sock, reply, strlen(reply), 0, NULL);
            if (w < 0 || reply[0] == 'B') {
                rc = w < 0 ? (int)w : 0;
                break;
            }
            continue;
        }
        ssize_t got = sockit_recv_exact(req->sock, body, len, NULL);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        unsigned sum = 0;
        for (size_t k = 0; k < len / 2; k++) {
            char c = body[k];
            body[k] = body[len - 1 - k];
            body[len - 1 - k] = c;
        }
        for (size_t k = 0; k < len; k++)
            sum += (unsigned char)body[k];
        char head[64];
        snprintf(head, sizeof head, "OK %zu %u\n", len, sum);
        ssize_t w = sockit_sendall(req->sock, head, strlen(head), 0, NULL);
        if (w >= 0)
            w = sockit_sendall(req->sock, body, len, 0, NULL);
        if (w < 0) {
            rc = (int)w;
            break;
        }
    }
    free(body);
    return rc;
}

static void check_line_protocol(sockit_server_mode mode)
{
    sockit_server_config cfg = {.handler = line_protocol_handler, .mode = mode};
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit *c = client_open(&p);
    assert_sock(c);

    static const size_t sizes[] = {1, 2, 100, 4096, 65536};
    char *body = malloc(65536), *back = malloc(65536), line[128], want[64];
    assert_non_null(body);
    assert_non_null(back);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned sum = 0;
        /* Newlines and NULs inside the body: recv_exact must not care about lines. */
        for (size_t k = 0; k < n; k++) {
            body[k] = k % 7 == 0 ? '\n' : (char)(k * 31 + i);
            sum += (unsigned char)body[k];
        }
        snprintf(line, sizeof line, "PUT %zu\n", n);
        assert_ok(sockit_sendall(c, line, strlen(line), 0, NULL));
        assert_ok(sockit_sendall(c, body, n, 0, NULL));
        assert_ok(sockit_readline(c, line, sizeof line));
        snprintf(want, sizeof want, "OK %zu %u\n", n, sum);
        assert_string_equal(line, want);
        assert_int_equal(sockit_recv_exact(c, back, n, NULL), (ssize_t)n);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(back[k], body[n - 1 - k]);
    }
    assert_ok(sockit_sendall(c, "HELLO\nQUIT\n", 11, 0, NULL));
    assert_ok(sockit_readline(c, line, sizeof line));
    assert_string_equal(line, "ERR\n");
    assert_ok(sockit_readline(c, line, sizeof line));
    assert_string_equal(line, "BYE\n");
    /* The server closes the connection once the handler returns. */
    assert_int_equal(sockit_recv(c, line, sizeof line, 0), 0);
    free(body);
    free(back);
    sockit_close(c);
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
}

static void test_handler_speaks_a_line_protocol_with_readline_and_recv_exact(void **state)
{
    (void)state;
    check_line_protocol(SOCKIT_SEQUENTIAL);
    check_line_protocol(SOCKIT_THREADS);
    check_line_protocol(SOCKIT_POOL);
}

/* ---- addresses ---------------------------------------------------------------------- */

static void test_port_zero_gives_the_real_port(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_SEQUENTIAL);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    assert_int_equal(sockit_addr_family(&p.addr), AF_INET);
    int port = sockit_addr_port(&p.addr);
    assert_true(port > 0 && port <= 65535);
    char text[SOCKIT_ADDRSTRLEN], want[SOCKIT_ADDRSTRLEN];
    assert_ok(sockit_addr_format(&p.addr, text, sizeof text));
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_string_equal(text, want);
    /* The port is really listening: a connection is accepted by the server. */
    sockit *c = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    assert_sock(c);
    assert_ok(sockit_sendall(c, "hi\n", 3, 0, NULL));
    assert_ok(sockit_shutdown(c, SHUT_WR));
    assert_int_equal(sockit_server_handle_request(srv, 5.0), 1);
    char line[16];
    assert_int_equal(sockit_readline(c, line, sizeof line), 3);
    assert_string_equal(line, "hi\n");
    sockit_close(c);
    assert_ok(sockit_server_close(srv));
}

static void test_unix_server_address_is_its_path(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_SEQUENTIAL);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_UNIX_STREAM, &cfg);
    assert_int_equal(sockit_addr_family(&p.addr), AF_UNIX);
    char text[SOCKIT_ADDRSTRLEN], want[SOCKIT_ADDRSTRLEN];
    assert_ok(sockit_addr_format(&p.addr, text, sizeof text));
    snprintf(want, sizeof want, "unix:%s", p.path);
    assert_string_equal(text, want);
    assert_int_equal(access(p.path, F_OK), 0);
    assert_ok(sockit_server_close(srv));
    srv_place_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_every_mode_answers_tcp_clients),
        harness_test(test_every_mode_answers_unix_stream_clients),
        harness_test(test_threads_mode_answers_200_concurrent_clients),
        harness_test(test_processes_mode_answers_200_concurrent_clients),
        harness_test(test_pool_mode_answers_200_concurrent_clients),
        harness_test(test_slow_client_does_not_hold_up_others_in_threads_mode),
        harness_test(test_slow_client_does_not_hold_up_others_in_processes_mode),
        harness_test(test_slow_client_does_not_hold_up_others_in_pool_mode),
        harness_test(test_slow_client_holds_up_others_in_sequential_mode),
        harness_test(test_handler_speaks_a_line_protocol_with_readline_and_recv_exact),
        harness_test(test_port_zero_gives_the_real_port),
        harness_test(test_unix_server_address_is_its_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
