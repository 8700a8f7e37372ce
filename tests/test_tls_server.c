/* sockit_server_config.tls: a blocking-mode server (SOCKIT_THREADS, SOCKIT_SEQUENTIAL)
 * runs each handshake before its handler, and a SOCKIT_EVENTS server makes every
 * connection a TLS stream. Clients are blocking TLS sockets. A failed handshake
 * reaches handle_error, never the handler; a client that never speaks is let go
 * within tls_handshake_timeout. Certificates from tests/tls/make_certs.sh. */
#include "harness.h"
#include "sockit_tls.h"
#include "tls_certs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sockit_tls_ctx *server_ctx(void)
{
    sockit_tls_ctx *ctx = sockit_tls_ctx_new(SOCKIT_TLS_SERVER);
    assert_sock(ctx);
    assert_ok(sockit_tls_ctx_load_cert_chain(ctx, path_of("server.pem"), path_of("server.key")));
    return ctx;
}

static sockit_tls_ctx *client_ctx(void)
{
    sockit_tls_ctx *ctx = sockit_tls_ctx_new(SOCKIT_TLS_CLIENT);
    assert_sock(ctx);
    assert_ok(sockit_tls_ctx_load_verify_locations(ctx, path_of("ca.pem"), NULL));
    return ctx;
}

static atomic_int handled, errors, last_error, handler_saw_tls;

/* Blocking modes: one line back, upper-cased. */
static int line_handler(sockit_request *req)
{
    atomic_fetch_add(&handled, 1);
    if (sockit_is_tls(req->sock) && sockit_tls_version(req->sock) != NULL)
        atomic_fetch_add(&handler_saw_tls, 1);
    return (int)harness_upper_line(req->sock, 256);
}

static void count_error(sockit_request *req, int code, void *user)
{
    (void)req, (void)user;
    atomic_fetch_add(&errors, 1);
    atomic_store(&last_error, code);
}

/* SOCKIT_EVENTS: each line back as it came. */
static void ev_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)user;
    sockit_stream_write(st, data, len);
}

static void ev_error(sockit_stream *st, int code, void *user)
{
    (void)st, (void)user;
    atomic_fetch_add(&errors, 1);
    atomic_store(&last_error, code);
}

static const sockit_stream_callbacks ev_cb = {.on_data = ev_data, .on_error = ev_error};

static void ev_connected(sockit_server *srv, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)srv, (void)peer, (void)user;
    sockit_stream_read_lines(st, 0);
    if (sockit_stream_is_tls(st))
        atomic_fetch_add(&handler_saw_tls, 1);
}

typedef struct run {
    sockit_server *srv;
    pthread_t tid;
    int port;
} run;

static void *serve(void *arg)
{
    run *r = arg;
    sockit_server_serve_forever(r->srv);
    return NULL;
}

static void start(run *r, sockit_server_config *cfg)
{
    atomic_store(&handled, 0);
    atomic_store(&errors, 0);
    atomic_store(&last_error, 0);
    atomic_store(&handler_saw_tls, 0);
    r->srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, cfg);
    assert_sock(r->srv);
    sockit_addr a;
    assert_ok(sockit_server_address(r->srv, &a));
    r->port = sockit_addr_port(&a);
    assert_int_equal(pthread_create(&r->tid, NULL, serve, r), 0);
}

static void stop(run *r)
{
    sockit_server_shutdown(r->srv);
    pthread_join(r->tid, NULL);
    assert_ok(sockit_server_close(r->srv));
}

static void exchange(int port, sockit_tls_ctx *cctx, const char *send, const char *want)
{
    sockit *s = sockit_tls_create_connection("localhost", port, 5.0, NULL, cctx);
    assert_sock(s);
    assert_ok(sockit_sendall(s, send, strlen(send), 0, NULL));
    char line[256];
    ssize_t n = sockit_readline(s, line, sizeof line);
    assert_int_equal(n, (ssize_t)strlen(want));
    assert_string_equal(line, want);
    /* close sends close_notify only if that does not block (and a fault run's EAGAIN
     * would stop it); shutdown makes sure a server still reading sees a clean end. A
     * blocking-mode server has closed after its one line, so it may fail there. */
    (void)sockit_shutdown(s, SHUT_WR);
    assert_ok(sockit_close(s));
}

/* A client that connects and never says a word, and one that fails verification. */
static void bad_clients(int port, double wait_s)
{
    sockit *mute = sockit_create_connection("127.0.0.1", port, 2.0, NULL);
    assert_sock(mute);
    assert_ok(sockit_settimeout(mute, wait_s));
    char b[16];
    double t0 = harness_now();
    ssize_t n = sockit_recv(mute, b, sizeof b, 0);
    /* Let go by the server's handshake timeout, well within the wait. */
    assert_true(n == 0 || n == -ECONNRESET);
    assert_true(harness_now() - t0 < wait_s);
    sockit_close(mute);

    sockit_tls_ctx *wrong = sockit_tls_ctx_new(SOCKIT_TLS_CLIENT);
    assert_sock(wrong);
    assert_ok(sockit_tls_ctx_load_verify_locations(wrong, path_of("otherca.pem"), NULL));
    assert_null(sockit_tls_create_connection("localhost", port, 5.0, NULL, wrong));
    assert_int_equal(sockit_errcode(), SOCKIT_ETLSVERIFY);
    sockit_tls_ctx_free(wrong);
}

static void wait_errors(int n)
{
    double until = harness_now() + 5;
    while (atomic_load(&errors) < n && harness_now() < until)
        usleep(10000);
}

static void test_threads_server_handshakes_before_the_handler(void **state)
{
    NEED_TLS();
    sockit_tls_ctx *sctx = server_ctx(), *cctx = client_ctx();
    sockit_server_config cfg = {.handler = line_handler,
                                .mode = SOCKIT_THREADS,
                                .handle_error = count_error,
                                .tls = sctx,
                                .tls_handshake_timeout = 0.3};
    run r;
    start(&r, &cfg);
    sockit_tls_ctx_free(sctx); /* the server keeps its own reference */
    exchange(r.port, cctx, "hello threads\n", "HELLO THREADS\n");
    exchange(r.port, cctx, "again\n", "AGAIN\n");
    assert_int_equal(atomic_load(&handled), 2);
    assert_int_equal(atomic_load(&handler_saw_tls), 2);
    bad_clients(r.port, 3.0);
    wait_errors(2);
    /* Neither bad client reached the handler; both reached handle_error. */
    assert_int_equal(atomic_load(&handled), 2);
    assert_int_equal(atomic_load(&errors), 2);
    stop(&r);
    sockit_tls_ctx_free(cctx);
}

static void test_sequential_server_serves_tls_with_one_object(void **state)
{
    NEED_TLS();
    sockit_tls_ctx *sctx = server_ctx(), *cctx = client_ctx();
    sockit_server_config cfg = {.handler = line_handler,
                                .mode = SOCKIT_SEQUENTIAL,
                                .handle_error = count_error,
                                .tls = sctx};
    run r;
    start(&r, &cfg);
    for (int i = 0; i < 3; i++)
        exchange(r.port, cctx, "one at a time\n", "ONE AT A TIME\n");
    assert_int_equal(atomic_load(&handler_saw_tls), 3);
    stop(&r);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
}

static void test_events_server_makes_tls_streams(void **state)
{
    NEED_TLS();
    sockit_tls_ctx *sctx = server_ctx(), *cctx = client_ctx();
    sockit_server_config cfg = {.mode = SOCKIT_EVENTS,
                                .stream = &ev_cb,
                                .on_connect = ev_connected,
                                .tls = sctx,
                                .tls_handshake_timeout = 0.3};
    run r;
    start(&r, &cfg);
    exchange(r.port, cctx, "hello events\n", "hello events\n");
    exchange(r.port, cctx, "twice\n", "twice\n");
    assert_int_equal(atomic_load(&handler_saw_tls), 2);
    bad_clients(r.port, 3.0);
    wait_errors(2);
    assert_int_equal(atomic_load(&errors), 2);
    stop(&r);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
}

/* Calls that would put bytes beside TLS's records, or take the descriptor from under
 * the session, are refused; the session goes on unharmed. */
static void test_tls_socket_refuses_sendto_and_adoption_by_a_stream(void **state)
{
    NEED_TLS();
    sockit_tls_ctx *sctx = server_ctx(), *cctx = client_ctx();
    sockit_server_config cfg = {.handler = line_handler, .mode = SOCKIT_THREADS, .tls = sctx};
    run r;
    start(&r, &cfg);
    sockit *s = sockit_tls_create_connection("localhost", r.port, 5.0, NULL, cctx);
    assert_sock(s);
    assert_code(sockit_sendto(s, "raw\n", 4, 0, "127.0.0.1", r.port), -EOPNOTSUPP);
    sockit_addr to;
    assert_ok(sockit_getpeername(s, &to));
    assert_code(sockit_sendto_addr(s, "raw\n", 4, 0, &to), -EOPNOTSUPP);
    sockit_loop *loop = sockit_loop_new(NULL);
    assert_sock(loop);
    assert_null(sockit_stream_new(loop, s, NULL, NULL));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "TLS"));
    assert_ok(sockit_loop_close(loop));
    assert_ok(sockit_sendall(s, "still fine\n", 11, 0, NULL));
    char line[64];
    assert_int_equal(sockit_readline(s, line, sizeof line), 11);
    assert_string_equal(line, "STILL FINE\n");
    assert_ok(sockit_close(s));
    stop(&r);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
}

/* A host that can never be checked fails before any packet goes out. */
static void test_create_connection_refuses_an_uncheckable_host_at_once(void **state)
{
    NEED_TLS();
    sockit_tls_ctx *cctx = client_ctx();
    assert_null(sockit_tls_create_connection(NULL, 1, 1.0, NULL, cctx));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(sockit_tls_create_connection("unix:/nonexistent/x", 0, 1.0, NULL, cctx));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit_tls_ctx_free(cctx);
}

static void test_config_is_checked(void **state)
{
    NEED_TLS();
    sockit_tls_ctx *cctx = client_ctx();
    sockit_server_config cfg = {.handler = line_handler, .mode = SOCKIT_THREADS, .tls = cctx};
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit_tls_ctx *sctx = server_ctx();
    cfg.tls = sctx;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_DGRAM, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    cfg.tls_handshake_timeout = -1;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_threads_server_handshakes_before_the_handler),
        harness_test(test_sequential_server_serves_tls_with_one_object),
        harness_test(test_events_server_makes_tls_streams),
        harness_test(test_tls_socket_refuses_sendto_and_adoption_by_a_stream),
        harness_test(test_create_connection_refuses_an_uncheckable_host_at_once),
        harness_test(test_config_is_checked),
    };
    return cmocka_run_group_tests(tests, certs_setup, certs_teardown);
}
