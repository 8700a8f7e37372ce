/* Allocation torture (as curl's): each scenario below is a whole flow of the public
 * API, written as a careful program would write it (every call checked, everything
 * released on every path). It runs once counting the library's own allocations
 * (those through src/sys.c's allocation layer; OpenSSL's, liburing's and libc's
 * are not counted), then once more for each of them with that one failing. Every
 * run must end in success or a clean code, with the bytes right when it succeeds,
 * no descriptor or thread left behind, and (under ASan) no leak: LeakSanitizer
 * checks after each scenario, and again when the program exits. */
#include "harness.h"
#include "sys.h"
#include "tls_certs.h"

#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TORTURE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TORTURE_LSAN 1
#endif
#endif
#ifdef TORTURE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* A scenario's own failure, beside the library's codes: the bytes came back wrong. */
#define WRONG_BYTES (-999999)

/* Seconds a call waits for the other side: long for the run that must succeed,
 * short for the runs where a failure may have silenced the other side (a server
 * that could not start, a connection dropped). */
static double patience = 2.0;
static atomic_int allocations; /* counted since the run began */
static atomic_int fail_at;     /* the allocation that fails (0: none) */

static int alloc_hook(sockit__sysop op, size_t *len)
{
    (void)len;
    if (op != SOCKIT__SYS_ALLOC)
        return 0;
    int n = atomic_fetch_add(&allocations, 1) + 1;
    if (n != atomic_load(&fail_at))
        return 0;
    if (getenv("TORTURE_BACKTRACE") != NULL) {
        void *frames[12];
        backtrace_symbols_fd(frames, backtrace(frames, 12), 2);
    }
    return ENOMEM;
}

static int code_of(int rc) { return rc < 0 ? rc : 0; }

/* ---- the scenarios: 0 or a code, never an assertion (which would skip clean-up) */

/* Blocking TCP: a server socket, a client by name, a line there and back. */
static int tcp_exchange(void)
{
    int rc = 0;
    sockit *srv = NULL, *cli = NULL, *conn = NULL;
    if ((srv = sockit_create_server("127.0.0.1", 0, NULL)) == NULL)
        return sockit_errcode();
    sockit_addr a;
    char text[64];
    if ((rc = sockit_getsockname(srv, &a)) < 0 ||
        (rc = code_of(sockit_addr_format(&a, text, sizeof text))) < 0)
        goto out;
    if ((cli = sockit_create_connection("localhost", sockit_addr_port(&a), patience, NULL)) ==
        NULL) {
        rc = sockit_errcode();
        goto out;
    }
    if ((conn = sockit_accept(srv, NULL)) == NULL) {
        rc = sockit_errcode();
        goto out;
    }
    if ((rc = sockit_settimeout(conn, patience)) < 0 || (rc = sockit_settimeout(cli, patience)) < 0)
        goto out;
    if ((rc = code_of(sockit_sendall(cli, "ping\n", 5, 0, NULL))) < 0)
        goto out;
    char line[16];
    ssize_t n = sockit_readline(conn, line, sizeof line);
    if (n < 0) {
        rc = (int)n;
        goto out;
    }
    if (n != 5 || memcmp(line, "ping\n", 5) != 0) {
        rc = WRONG_BYTES;
        goto out;
    }
    if ((rc = code_of(sockit_sendall(conn, "pong", 4, 0, NULL))) < 0)
        goto out;
    char back[4];
    if ((rc = code_of(sockit_recv_exact(cli, back, sizeof back, NULL))) < 0)
        goto out;
    if (memcmp(back, "pong", 4) != 0)
        rc = WRONG_BYTES;
out:
    sockit_close(conn);
    sockit_close(cli);
    sockit_close(srv);
    return rc;
}

/* Blocking UDP with a name to resolve. */
static int udp_exchange(void)
{
    int rc = 0;
    sockit *a = sockit_socket(AF_INET, SOCK_DGRAM), *b = NULL;
    if (a == NULL)
        return sockit_errcode();
    if ((b = sockit_socket(AF_INET, SOCK_DGRAM)) == NULL) {
        rc = sockit_errcode();
        goto out;
    }
    sockit_addr at, from;
    if ((rc = sockit_bind(a, "127.0.0.1", 0)) < 0 || (rc = sockit_getsockname(a, &at)) < 0 ||
        (rc = sockit_settimeout(a, patience)) < 0)
        goto out;
    if ((rc = code_of(sockit_sendto(b, "dgram", 5, 0, "localhost", sockit_addr_port(&at)))) < 0)
        goto out;
    char buf[16];
    ssize_t n = sockit_recvfrom(a, buf, sizeof buf, 0, &from);
    if (n < 0)
        rc = (int)n;
    else if (n != 5 || memcmp(buf, "dgram", 5) != 0)
        rc = WRONG_BYTES;
out:
    sockit_close(b);
    sockit_close(a);
    return rc;
}

/* Python's selectors: register, select, unregister. */
static int selector_round(void)
{
    int rc = 0;
    sockit *p[2] = {NULL, NULL};
    if ((rc = sockit_socketpair(AF_UNIX, SOCK_STREAM, p)) < 0)
        return rc;
    sockit_selector *sel = sockit_selector_new(NULL);
    if (sel == NULL) {
        rc = sockit_errcode();
        goto out;
    }
    if ((rc = sockit_selector_register_socket(sel, p[0], SOCKIT_EVENT_READ, NULL)) < 0)
        goto out;
    if ((rc = code_of(sockit_send(p[1], "x", 1, 0))) < 0)
        goto out;
    sockit_selector_event ev[4];
    ssize_t n = sockit_selector_select(sel, patience, ev, 4);
    if (n < 0)
        rc = (int)n;
    else if (n != 1 || ev[0].key->sock != p[0])
        rc = WRONG_BYTES;
    if (rc == 0)
        rc = sockit_selector_unregister(sel, sockit_fileno(p[0]));
out:
    sockit_selector_close(sel);
    sockit_close(p[0]);
    sockit_close(p[1]);
    return rc;
}

/* The loop: a timer and a posted call. */
static void timer_fired(sockit_timer *t, void *user)
{
    (void)t;
    (*(int *)user)++;
}

static void soon(sockit_loop *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

static int loop_round(void)
{
    sockit_loop *loop = sockit_loop_new(NULL);
    if (loop == NULL)
        return sockit_errcode();
    int fired = 0, called = 0, rc = 0;
    sockit_timer *t = sockit_timer_new(loop, timer_fired, &fired);
    if (t == NULL) {
        rc = sockit_errcode();
        goto out;
    }
    if ((rc = sockit_timer_start(t, 0.001, 0)) < 0 ||
        (rc = sockit_loop_call_soon(loop, soon, &called)) < 0 || (rc = sockit_loop_run(loop)) < 0)
        goto out;
    if (fired != 1 || called != 1)
        rc = WRONG_BYTES;
out:
    sockit_timer_close(t);
    /* The closed timer is freed by the next iteration. */
    sockit_loop_run_once(loop, 0);
    int closed = sockit_loop_close(loop);
    return rc != 0 ? rc : closed;
}

/* Streams: a listener echoing lines, a client connecting by name. */
typedef struct stream_run {
    sockit_loop *loop;
    sockit_listener *listener;
    sockit_stream *client;
    int rc;      /* the first failure seen */
    bool echoed; /* the client got its line back */
} stream_run;

static void note(stream_run *r, int code)
{
    if (r->rc == 0)
        r->rc = code;
}

static void echo_line(sockit_stream *st, const char *data, size_t len, void *user)
{
    stream_run *r = user;
    int rc = sockit_stream_write(st, data, len);
    if (rc < 0) {
        note(r, rc);
        sockit_stream_abort(st);
    }
}

static void server_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    note(user, code);
}

static const sockit_stream_callbacks server_side = {.on_data = echo_line, .on_error = server_error};

static void client_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    stream_run *r = user;
    if (len != 5 || memcmp(data, "ping\n", 5) != 0)
        note(r, WRONG_BYTES);
    else
        r->echoed = true;
    sockit_stream_close(st, 0);
}

static void client_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    note(user, code);
}

/* However the client ends (its line back, an error, the server closing on it), the
 * listener goes with it, and the loop runs dry. */
static void client_closed(sockit_stream *st, void *user)
{
    stream_run *r = user;
    (void)st;
    sockit_listener_close(r->listener);
    r->listener = NULL;
}

static const sockit_stream_callbacks client_side = {
    .on_data = client_data, .on_error = client_error, .on_close = client_closed};

static void accepted(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)l, (void)peer;
    int rc = sockit_stream_read_lines(st, 0);
    if (rc < 0) {
        note(user, rc);
        sockit_stream_abort(st);
    }
}

static void listener_error(sockit_listener *l, int code, void *user)
{
    (void)l;
    note(user, code);
}

static void connected(sockit_connector *c, sockit_stream *st, int code, void *user)
{
    (void)c;
    stream_run *r = user;
    if (st == NULL) {
        note(r, code);
        sockit_listener_close(r->listener);
        r->listener = NULL;
        return;
    }
    int rc = sockit_stream_read_lines(st, 0);
    if (rc == 0)
        rc = sockit_stream_write(st, "ping\n", 5);
    if (rc < 0) {
        note(r, rc);
        sockit_stream_abort(st);
    }
}

static int stream_round(void)
{
    stream_run r = {0};
    if ((r.loop = sockit_loop_new(NULL)) == NULL)
        return sockit_errcode();
    sockit *ls = sockit_create_server("127.0.0.1", 0, NULL);
    if (ls == NULL) {
        r.rc = sockit_errcode();
        goto out;
    }
    sockit_listener_config cfg = {
        .on_accept = accepted, .callbacks = &server_side, .user = &r, .on_error = listener_error};
    if ((r.listener = sockit_listener_new(r.loop, ls, &cfg)) == NULL) {
        r.rc = sockit_errcode();
        sockit_close(ls);
        goto out;
    }
    sockit_addr a;
    if ((r.rc = sockit_listener_address(r.listener, &a)) < 0)
        goto out;
    if (sockit_stream_connect(r.loop, "localhost", sockit_addr_port(&a), patience, NULL,
                              &client_side, connected, &r) == NULL) {
        r.rc = sockit_errcode();
        goto out;
    }
    int ran = sockit_loop_run(r.loop);
    note(&r, ran < 0 ? ran : 0);
    if (r.rc == 0 && !r.echoed)
        r.rc = WRONG_BYTES;
out:
    sockit_listener_close(r.listener);
    /* What closing leaves (streams, io_uring cancellations) ends within a few runs. */
    for (int i = 0; i < 100 && sockit_loop_run_once(r.loop, 0.01) > 0; i++)
        ;
    int closed = sockit_loop_close(r.loop);
    return r.rc != 0 ? r.rc : closed;
}

/* The servers: one request through a blocking-mode server and through SOCKIT_EVENTS. */
static int upper_handler(sockit_request *req)
{
    return code_of((int)harness_upper_line(req->sock, 64));
}

static void quiet_error(sockit_request *req, int code, void *user)
{
    (void)req, (void)code, (void)user;
}

static void events_echo(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)user;
    char up[64];
    if (len > sizeof up) {
        sockit_stream_abort(st);
        return;
    }
    for (size_t i = 0; i < len; i++)
        up[i] = data[i] >= 'a' && data[i] <= 'z' ? (char)(data[i] - 'a' + 'A') : data[i];
    if (sockit_stream_write(st, up, len) < 0)
        sockit_stream_abort(st);
}

static const sockit_stream_callbacks events_side = {.on_data = events_echo};

static void events_connected(sockit_server *srv, sockit_stream *st, const sockit_addr *peer,
                             void *user)
{
    (void)srv, (void)peer, (void)user;
    if (sockit_stream_read_lines(st, 0) < 0)
        sockit_stream_abort(st);
}

typedef struct serving {
    sockit_server *srv;
    int rc; /* serve_forever's */
} serving;

static void *serve(void *arg)
{
    serving *sv = arg;
    sv->rc = sockit_server_serve_forever(sv->srv);
    return NULL;
}

/* A server context and a client one that trusts it, or a code. */
static int tls_contexts(sockit_tls_ctx **server, sockit_tls_ctx **client)
{
    *server = *client = NULL;
    int rc;
    if ((*server = sockit_tls_ctx_new(SOCKIT_TLS_SERVER)) == NULL)
        return sockit_errcode();
    if ((rc = sockit_tls_ctx_load_cert_chain(*server, path_of("server.pem"),
                                             path_of("server.key"))) < 0)
        goto fail;
    if ((*client = sockit_tls_ctx_new(SOCKIT_TLS_CLIENT)) == NULL) {
        rc = sockit_errcode();
        goto fail;
    }
    if ((rc = sockit_tls_ctx_load_verify_locations(*client, path_of("ca.pem"), NULL)) < 0)
        goto fail;
    return 0;
fail:
    sockit_tls_ctx_free(*server);
    sockit_tls_ctx_free(*client);
    *server = *client = NULL;
    return rc;
}

static int server_round(sockit_server_mode mode, bool tls)
{
    sockit_tls_ctx *sctx = NULL, *cctx = NULL;
    int rc;
    if (tls && (rc = tls_contexts(&sctx, &cctx)) < 0)
        return rc;
    sockit_server_config cfg = {.handler = upper_handler,
                                .mode = mode,
                                .handle_error = quiet_error,
                                .stream = &events_side,
                                .on_connect = events_connected,
                                .close_grace = -1,
                                .tls = sctx};
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    sockit_tls_ctx_free(sctx); /* the server holds its own reference */
    if (srv == NULL) {
        rc = sockit_errcode();
        sockit_tls_ctx_free(cctx);
        return rc;
    }
    sockit_addr a;
    pthread_t tid;
    if ((rc = sockit_server_address(srv, &a)) < 0)
        goto closed;
    serving sv = {.srv = srv};
    if (pthread_create(&tid, NULL, serve, &sv) != 0) {
        rc = -EAGAIN;
        goto closed;
    }
    sockit *c =
        tls ? sockit_tls_create_connection("localhost", sockit_addr_port(&a), patience, NULL, cctx)
            : sockit_create_connection("127.0.0.1", sockit_addr_port(&a), patience, NULL);
    if (c == NULL) {
        rc = sockit_errcode();
        goto stop;
    }
    char line[16];
    ssize_t n;
    if ((rc = sockit_settimeout(c, patience)) == 0 &&
        (rc = code_of(sockit_sendall(c, "ping\n", 5, 0, NULL))) == 0) {
        n = sockit_readline(c, line, sizeof line);
        if (n < 0)
            rc = (int)n;
        else if (n != 5 || memcmp(line, "PING\n", 5) != 0)
            /* A server that lost its request to the failure closes the connection. */
            rc = n == 0 ? SOCKIT_EEOF : WRONG_BYTES;
    }
    sockit_close(c);
stop:
    sockit_server_shutdown(srv);
    pthread_join(tid, NULL);
    /* A server that could not start serving says why; its client only waited. */
    if (sv.rc < 0)
        rc = sv.rc;
closed:;
    int closed = sockit_server_close(srv);
    sockit_tls_ctx_free(cctx);
    return rc != 0 ? rc : closed;
}

static int threads_server(void) { return server_round(SOCKIT_THREADS, false); }
static int pool_server(void) { return server_round(SOCKIT_POOL, false); }
static int events_server(void) { return server_round(SOCKIT_EVENTS, false); }
static int tls_threads_server(void) { return server_round(SOCKIT_THREADS, true); }
static int tls_events_server(void) { return server_round(SOCKIT_EVENTS, true); }

/* The loop's resolver: a name looked up on its thread, the answer posted back. */
typedef struct lookup {
    int code;
    size_t found;
} lookup;

static void resolved(sockit_resolve *r, int code, const sockit_addrinfo *ai, size_t n, void *user)
{
    (void)r, (void)ai;
    lookup *l = user;
    l->code = code;
    l->found = n;
}

static int loop_lookup(void)
{
    sockit_loop *loop = sockit_loop_new(NULL);
    if (loop == NULL)
        return sockit_errcode();
    lookup l = {.code = 1};
    int rc = 0;
    if (sockit_loop_getaddrinfo(loop, "localhost", "80", AF_INET, SOCK_STREAM, 0, patience,
                                resolved, &l) == NULL)
        rc = sockit_errcode();
    else if ((rc = sockit_loop_run(loop)) == 0)
        rc = l.code != 0 ? l.code : l.found == 0 ? WRONG_BYTES : 0;
    int closed = sockit_loop_close(loop);
    return rc != 0 ? rc : closed;
}

/* ---- the torture loop */

/* Threads a run started that have not ended yet (a resolver thread finishing) get
 * a moment: the check is that none is left behind, not that they end at once. */
static bool threads_back_to(int threads)
{
    for (int i = 0; i < 200 && harness_count_threads() > threads; i++)
        usleep(5000);
    return harness_count_threads() <= threads;
}

static void torture(const char *name, int (*scenario)(void))
{
    int fds = harness_count_fds(), threads = harness_count_threads();
    atomic_store(&fail_at, 0);
    atomic_store(&allocations, 0);
    sockit__set_fault_hook(alloc_hook);
    patience = 2.0;
    int rc = scenario();
    int total = atomic_load(&allocations);
    if (rc != 0)
        fail_msg("%s without failures: %d %s", name, rc, sockit_strerror(rc));
    /* The threads to come back to are those after a run that failed nothing: a
     * sanitizer's runtime starts one of its own with the first thread. */
    threads_back_to(threads);
    threads = harness_count_threads();
    assert_true(total > 0);
    int recovered = 0, enomem = 0, other = 0;
    int codes[8] = {0}, counts[8] = {0}, kinds = 0; /* the other codes seen, for the report */
    bool verbose = getenv("TORTURE_VERBOSE") != NULL;
    patience = 1.0;
    for (int k = 1; k <= total; k++) {
        atomic_store(&allocations, 0);
        atomic_store(&fail_at, k);
        rc = scenario();
        if (verbose)
            fprintf(stderr, "%s: allocation %d of %d failing: %s\n", name, k, total,
                    rc == 0 ? "ok" : sockit_strerror(rc));
        if (rc == WRONG_BYTES)
            fail_msg("%s with allocation %d of %d failing: wrong bytes, reported as success", name,
                     k, total);
        assert_true(rc <= 0);
        if (rc == 0)
            recovered++;
        else if (rc == -ENOMEM)
            enomem++;
        else {
            other++;
            int i = 0;
            while (i < kinds && codes[i] != rc)
                i++;
            if (i < 8) {
                codes[i] = rc;
                counts[i]++;
                kinds = i == kinds ? kinds + 1 : kinds;
            }
        }
        if (harness_count_fds() != fds)
            fail_msg("%s with allocation %d of %d failing: %d descriptors open, %d before", name, k,
                     total, harness_count_fds(), fds);
        if (!threads_back_to(threads))
            fail_msg("%s with allocation %d of %d failing: %d threads, %d before", name, k, total,
                     harness_count_threads(), threads);
    }
    sockit__set_fault_hook(NULL);
#ifdef TORTURE_LSAN
    if (__lsan_do_recoverable_leak_check() != 0)
        fail_msg("%s: leaks (LeakSanitizer's report above)", name);
#endif
    fprintf(stderr,
            "%s: %d allocations, each failed in turn: %d -ENOMEM, %d recovered, %d other:", name,
            total, enomem, recovered, other);
    for (int i = 0; i < kinds; i++)
        fprintf(stderr, " %dx %s;", counts[i], sockit_strerror(codes[i]));
    fprintf(stderr, "\n");
}

static void test_tcp_exchange(void **state)
{
    (void)state;
    torture("tcp_exchange", tcp_exchange);
}

static void test_udp_exchange(void **state)
{
    (void)state;
    torture("udp_exchange", udp_exchange);
}

static void test_selector_round(void **state)
{
    (void)state;
    torture("selector_round", selector_round);
}

static void test_loop_round(void **state)
{
    (void)state;
    torture("loop_round", loop_round);
}

static void test_stream_round(void **state)
{
    (void)state;
    torture("stream_round", stream_round);
}

static void test_threads_server(void **state)
{
    (void)state;
    torture("threads_server", threads_server);
}

static void test_pool_server(void **state)
{
    (void)state;
    torture("pool_server", pool_server);
}

static void test_events_server(void **state)
{
    (void)state;
    torture("events_server", events_server);
}

static void test_tls_threads_server(void **state)
{
    NEED_TLS();
    torture("tls_threads_server", tls_threads_server);
}

static void test_tls_events_server(void **state)
{
    NEED_TLS();
    torture("tls_events_server", tls_events_server);
}

static void test_loop_lookup(void **state)
{
    (void)state;
    torture("loop_lookup", loop_lookup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_tcp_exchange),       harness_test(test_udp_exchange),
        harness_test(test_selector_round),     harness_test(test_loop_round),
        harness_test(test_stream_round),       harness_test(test_threads_server),
        harness_test(test_pool_server),        harness_test(test_events_server),
        harness_test(test_tls_threads_server), harness_test(test_tls_events_server),
        harness_test(test_loop_lookup),
    };
    return cmocka_run_group_tests(tests, certs_setup, certs_teardown);
}
