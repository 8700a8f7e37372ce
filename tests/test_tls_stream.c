/* TLS streams on the loop (sockit_tls.h's second half): a listener serving TLS,
 * sockit_stream_connect_tls, sockit_stream_start_tls on a plain stream, the
 * handshake's deadlines on both sides, verification failures that never show the
 * stream, close_notify and ragged ends, bulk bytes through the write queue's
 * backpressure, and python3's ssl module as a client. Runs once per loop backend.
 * Certificates come from tests/tls/make_certs.sh, made once per run. */
#include "harness.h"
#include "loop_harness.h"
#include "sockit_proxy.h"
#include "sockit_tls.h"
#include "tls_certs.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sockit_tls_ctx *server_ctx(const char *name)
{
    sockit_tls_ctx *ctx = sockit_tls_ctx_new(SOCKIT_TLS_SERVER);
    assert_sock(ctx);
    char pem[64], key[64];
    snprintf(pem, sizeof pem, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    assert_ok(sockit_tls_ctx_load_cert_chain(ctx, path_of(pem), path_of(key)));
    return ctx;
}

static sockit_tls_ctx *client_ctx(bool trust_test_ca)
{
    sockit_tls_ctx *ctx = sockit_tls_ctx_new(SOCKIT_TLS_CLIENT);
    assert_sock(ctx);
    if (trust_test_ca)
        assert_ok(sockit_tls_ctx_load_verify_locations(ctx, path_of("ca.pem"), NULL));
    return ctx;
}

/* ---- an echo server: a listener whose streams send back what they get -------- */

static struct {
    int accepted, eofs, errors, closes;
    int last_error;
    char errmsg[512];
    char version[32];
    bool close_after_echo; /* the reply ends the connection (close_notify, then FIN) */
} srv;

static void echo_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)user;
    if (srv.version[0] == '\0' && sockit_stream_tls_version(st) != NULL)
        snprintf(srv.version, sizeof srv.version, "%s", sockit_stream_tls_version(st));
    assert_ok(sockit_stream_write(st, data, len));
    if (srv.close_after_echo) {
        sockit_stream_close(st, 5);
        return;
    }
    /* Backpressure end to end: a client that does not read stops this reader. */
    if (sockit_stream_write_blocked(st))
        sockit_stream_pause(st);
}

static void echo_drain(sockit_stream *st, void *user)
{
    (void)user;
    sockit_stream_resume(st);
}

static void echo_eof(sockit_stream *st, void *user)
{
    (void)user;
    srv.eofs++;
    sockit_stream_close(st, 5);
}

static void echo_error(sockit_stream *st, int code, void *user)
{
    (void)st, (void)user;
    srv.errors++;
    srv.last_error = code;
    snprintf(srv.errmsg, sizeof srv.errmsg, "%s", sockit_errmsg());
}

static void echo_close(sockit_stream *st, void *user)
{
    (void)st, (void)user;
    srv.closes++;
}

static const sockit_stream_callbacks echo_cb = {
    .on_data = echo_data,
    .on_eof = echo_eof,
    .on_drain = echo_drain,
    .on_error = echo_error,
    .on_close = echo_close,
};

static void accepted(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)l, (void)peer, (void)user;
    assert_true(sockit_stream_is_tls(st));
    srv.accepted++;
}

static sockit_listener *tls_listener(sockit_loop *loop, sockit_tls_ctx *ctx, double hs_timeout,
                                     int *port)
{
    memset(&srv, 0, sizeof srv);
    sockit *ls = harness_tcp_listener(AF_INET, port);
    sockit_listener_config cfg = {.on_accept = accepted,
                                  .callbacks = &echo_cb,
                                  .tls = ctx,
                                  .tls_handshake_timeout = hs_timeout};
    sockit_listener *l = sockit_listener_new(loop, ls, &cfg);
    assert_sock(l);
    return l;
}

/* ---- a client stream that records what it sees --------------------------------- */

typedef struct client {
    sockit_stream *st;
    int done, code;
    char msg[512];
    char *got;
    size_t got_len, got_cap;
    int eofs, errors, closes, error_code;
    char errmsg[512];
    bool reused;
} client;

static void client_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    client *c = user;
    if (c->got_len + len > c->got_cap) {
        c->got_cap = (c->got_len + len) * 2;
        c->got = realloc(c->got, c->got_cap);
        assert_non_null(c->got);
    }
    memcpy(c->got + c->got_len, data, len);
    c->got_len += len;
}

static void client_eof(sockit_stream *st, void *user)
{
    client *c = user;
    c->eofs++;
    sockit_stream_close(st, 0);
}

static void client_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    client *c = user;
    c->errors++;
    c->error_code = code;
    snprintf(c->errmsg, sizeof c->errmsg, "%s", sockit_errmsg());
}

static void client_close(sockit_stream *st, void *user)
{
    (void)st;
    client *c = user;
    c->closes++;
    c->st = NULL;
}

static const sockit_stream_callbacks client_cb = {
    .on_data = client_data,
    .on_eof = client_eof,
    .on_error = client_error,
    .on_close = client_close,
};

static void connected(sockit_connector *cn, sockit_stream *st, int code, void *user)
{
    (void)cn;
    client *c = user;
    c->done++;
    c->code = code;
    c->st = st;
    snprintf(c->msg, sizeof c->msg, "%s", code < 0 ? sockit_errmsg() : "");
    if (st != NULL)
        c->reused = sockit_stream_tls_session_reused(st);
}

static void client_free(client *c) { free(c->got); }

/* ---- tests ------------------------------------------------------------------------ */

static void test_connect_tls_to_a_tls_listener_echoes(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *sctx = server_ctx("server");
    sockit_tls_ctx *cctx = client_ctx(true);
    int port;
    sockit_listener *l = tls_listener(loop, sctx, 0, &port);
    client c = {0};
    assert_sock(sockit_stream_connect_tls(loop, "localhost", port, 5.0, NULL, cctx, &client_cb,
                                          connected, &c));
    RUN_UNTIL(loop, c.done > 0, 5);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.code, 0);
    assert_non_null(c.st);
    assert_true(sockit_stream_is_tls(c.st));
    assert_string_equal(sockit_stream_tls_version(c.st), "TLSv1.3");
    assert_non_null(sockit_stream_tls_cipher(c.st));
    assert_null(sockit_stream_tls_alpn(c.st));
    char subject[128];
    assert_true(sockit_stream_tls_peer_subject(c.st, subject, sizeof subject) > 0);
    assert_non_null(strstr(subject, "CN=localhost"));
    assert_false(c.reused);

    assert_ok(sockit_stream_write(c.st, "hello over tls\n", 15));
    RUN_UNTIL(loop, c.got_len >= 15, 5);
    assert_int_equal(c.got_len, 15);
    assert_memory_equal(c.got, "hello over tls\n", 15);
    assert_string_equal(srv.version, "TLSv1.3");

    /* Shutdown sends close_notify: the server sees a clean end, echoes nothing more
     * and closes; the client sees a clean end too. */
    assert_ok(sockit_stream_shutdown(c.st));
    RUN_UNTIL(loop, c.closes > 0 && srv.closes > 0, 5);
    assert_int_equal(srv.eofs, 1);
    assert_int_equal(srv.errors, 0);
    assert_int_equal(c.eofs, 1);
    assert_int_equal(c.errors, 0);

    /* A second connection with the same client context resumes the session. */
    client d = {0};
    assert_sock(sockit_stream_connect_tls(loop, "localhost", port, 5.0, NULL, cctx, &client_cb,
                                          connected, &d));
    RUN_UNTIL(loop, d.done > 0, 5);
    assert_int_equal(d.code, 0);
    assert_true(d.reused);
    sockit_stream_close(d.st, 0);
    RUN_UNTIL(loop, d.closes > 0 && srv.closes > 1, 5);

    sockit_listener_close(l);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
    client_free(&c);
    client_free(&d);
    close_loop(loop);
}

static void test_verification_failure_never_shows_the_stream(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *sctx = server_ctx("other");
    sockit_tls_ctx *cctx = client_ctx(true);
    int port;
    sockit_listener *l = tls_listener(loop, sctx, 0, &port);
    client c = {0};
    assert_sock(sockit_stream_connect_tls(loop, "localhost", port, 5.0, NULL, cctx, &client_cb,
                                          connected, &c));
    RUN_UNTIL(loop, c.done > 0, 5);
    assert_int_equal(c.code, SOCKIT_ETLSVERIFY);
    assert_null(c.st);
    if (strstr(c.msg, "hostname mismatch") == NULL)
        fail_msg("message: %s", c.msg);
    assert_non_null(strstr(c.msg, "CN=other.test"));
    /* The server hears the alert the client sent. */
    RUN_UNTIL(loop, srv.closes > 0, 5);
    assert_int_equal(srv.errors, 1);
    assert_int_equal(srv.last_error, SOCKIT_ETLS);
    assert_non_null(strstr(srv.errmsg, "alert"));
    /* No callback of the hidden stream reached the user's table. */
    assert_int_equal(c.closes + c.errors + c.eofs, 0);

    /* The system's CAs do not know the test CA. */
    sockit_tls_ctx *sys = client_ctx(false);
    client d = {0};
    assert_sock(sockit_stream_connect_tls(loop, "localhost", port, 5.0, NULL, sys, &client_cb,
                                          connected, &d));
    RUN_UNTIL(loop, d.done > 0, 5);
    assert_int_equal(d.code, SOCKIT_ETLSVERIFY);
    assert_non_null(strstr(d.msg, "local issuer"));
    RUN_UNTIL(loop, srv.closes > 1, 5);

    sockit_listener_close(l);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
    sockit_tls_ctx_free(sys);
    close_loop(loop);
}

static void test_connect_deadline_covers_the_handshake(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *cctx = client_ctx(true);
    /* Listening, never accepting: the kernel completes TCP, nobody speaks TLS. */
    int port;
    sockit *mute = harness_tcp_listener(AF_INET, &port);
    client c = {0};
    double t0 = harness_now();
    assert_sock(sockit_stream_connect_tls(loop, "127.0.0.1", port, 0.5, NULL, cctx, &client_cb,
                                          connected, &c));
    RUN_UNTIL(loop, c.done > 0, 5);
    double took = harness_now() - t0;
    assert_int_equal(c.code, SOCKIT_ETIMEOUT);
    assert_null(c.st);
    assert_true(took >= 0.4);
    assert_true(took < 3.0);
    assert_non_null(strstr(c.msg, "tls handshake"));

    /* Cancelled while the handshake waits: done gets -ECANCELED, nothing leaks. */
    client d = {0};
    sockit_connector *cn = sockit_stream_connect_tls(loop, "127.0.0.1", port, 5.0, NULL, cctx,
                                                     &client_cb, connected, &d);
    assert_sock(cn);
    run_for(loop, 0.2);
    assert_int_equal(d.done, 0);
    sockit_connector_cancel(cn);
    RUN_UNTIL(loop, d.done > 0, 5);
    assert_int_equal(d.code, -ECANCELED);

    sockit_close(mute);
    sockit_tls_ctx_free(cctx);
    close_loop(loop);
}

static void test_server_handshake_timeout_frees_a_silent_client(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *sctx = server_ctx("server");
    int port;
    sockit_listener *l = tls_listener(loop, sctx, 0.3, &port);
    sockit *mute = sockit_create_connection("127.0.0.1", port, 2.0, NULL);
    assert_sock(mute);
    RUN_UNTIL(loop, srv.closes > 0, 5);
    assert_int_equal(srv.errors, 1);
    assert_int_equal(srv.last_error, SOCKIT_ETIMEOUT);
    assert_non_null(strstr(srv.errmsg, "tls handshake"));
    /* The client is let go: end of stream (or a reset), not a hang. */
    sockit_settimeout(mute, 2.0);
    char b[8];
    ssize_t n = sockit_recv(mute, b, sizeof b, 0);
    assert_true(n == 0 || n == -ECONNRESET);
    sockit_close(mute);
    sockit_listener_close(l);
    sockit_tls_ctx_free(sctx);
    close_loop(loop);
}

/* start_tls on a plain stream, with a write before the handshake finished. */
static void started(sockit_stream *st, int status, void *user)
{
    (void)st;
    client *c = user;
    c->done++;
    c->code = status;
}

static void plain_connected(sockit_connector *cn, sockit_stream *st, int code, void *user)
{
    (void)cn;
    client *c = user;
    assert_int_equal(code, 0);
    c->st = st;
}

static void test_start_tls_keeps_early_writes(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *sctx = server_ctx("server");
    sockit_tls_ctx *cctx = client_ctx(true);
    int port;
    sockit_listener *l = tls_listener(loop, sctx, 0, &port);
    client c = {0};
    assert_sock(
        sockit_stream_connect(loop, "127.0.0.1", port, 5.0, NULL, &client_cb, plain_connected, &c));
    RUN_UNTIL(loop, c.st != NULL, 5);
    assert_non_null(c.st);
    assert_false(sockit_stream_is_tls(c.st));
    assert_code(sockit_stream_start_tls(c.st, NULL, "localhost", 5, started), -EINVAL);
    assert_ok(sockit_stream_start_tls(c.st, cctx, "127.0.0.1", 5, started));
    assert_code(sockit_stream_start_tls(c.st, cctx, "127.0.0.1", 5, started), -EEXIST);
    assert_true(sockit_stream_is_tls(c.st));
    assert_null(sockit_stream_tls_version(c.st)); /* not yet */
    /* Kept until the handshake is done, and counted as queued bytes are: the
     * watermarks see them, and the hard limit refuses a write without harm. */
    assert_ok(sockit_stream_set_watermarks(c.st, 4, 8, 1024));
    assert_ok(sockit_stream_write(c.st, "early", 5));
    assert_int_equal(sockit_stream_queued(c.st), 5);
    assert_false(sockit_stream_write_blocked(c.st));
    assert_ok(sockit_stream_write(c.st, "0123456789abcdefghij", 20));
    assert_int_equal(sockit_stream_queued(c.st), 25);
    assert_true(sockit_stream_write_blocked(c.st));
    static char big[1000];
    assert_code(sockit_stream_write(c.st, big, sizeof big), -ENOBUFS);
    RUN_UNTIL(loop, c.got_len >= 25, 5);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.code, 0);
    assert_int_equal(c.got_len, 25);
    assert_memory_equal(c.got, "early0123456789abcdefghij", 25);
    RUN_UNTIL(loop, sockit_stream_queued(c.st) == 0, 5);
    assert_false(sockit_stream_write_blocked(c.st));
    assert_int_equal(c.errors, 0);
    sockit_stream_close(c.st, 1);
    RUN_UNTIL(loop, c.closes > 0 && srv.closes > 0, 5);
    assert_int_equal(srv.errors, 0);

    sockit_listener_close(l);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
    client_free(&c);
    close_loop(loop);
}

static uint8_t pattern(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }

/* 8 MiB written at once (the queue holds plaintext up to its hard limit) comes back
 * byte-exact through a server that pauses whenever its own queue is full. */
static void test_bulk_through_backpressure(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *sctx = server_ctx("server");
    sockit_tls_ctx *cctx = client_ctx(true);
    int port;
    sockit_listener *l = tls_listener(loop, sctx, 0, &port);
    client c = {0};
    assert_sock(sockit_stream_connect_tls(loop, "localhost", port, 5.0, NULL, cctx, &client_cb,
                                          connected, &c));
    RUN_UNTIL(loop, c.done > 0, 5);
    assert_int_equal(c.code, 0);
    enum { TOTAL = 8 << 20, PIECE = 65536 };
    uint8_t *buf = malloc(PIECE);
    assert_non_null(buf);
    for (size_t off = 0; off < TOTAL; off += PIECE) {
        for (size_t i = 0; i < PIECE; i++)
            buf[i] = pattern(off + i);
        assert_ok(sockit_stream_write(c.st, buf, PIECE));
    }
    /* The queue counts plaintext: everything written and not yet sent. */
    assert_true(sockit_stream_queued(c.st) > 0);
    assert_true(sockit_stream_queued(c.st) <= TOTAL);
    RUN_UNTIL(loop, c.got_len >= TOTAL, 60);
    assert_int_equal(c.got_len, TOTAL);
    size_t bad = 0;
    for (size_t i = 0; i < TOTAL; i++)
        bad += (uint8_t)c.got[i] != pattern(i);
    assert_int_equal(bad, 0);
    sockit_stream_close(c.st, 1);
    RUN_UNTIL(loop, c.closes > 0 && srv.closes > 0, 5);
    assert_int_equal(srv.errors, 0);
    free(buf);
    sockit_listener_close(l);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
    client_free(&c);
    close_loop(loop);
}

/* A blocking TLS server in a thread that sends a line and then closes TCP without
 * close_notify (detach drops the session). */
struct ragged {
    sockit *listener;
    sockit_tls_ctx *ctx;
};

static void *ragged_main(void *arg)
{
    struct ragged *r = arg;
    sockit *conn = sockit_accept(r->listener, NULL);
    if (conn == NULL)
        return NULL;
    sockit_settimeout(conn, 5.0);
    if (sockit_tls_wrap(conn, r->ctx, NULL) == 0)
        sockit_sendall(conn, "bye\n", 4, 0, NULL);
    int fd = sockit_detach(conn);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void ragged_round(sockit_loop *loop, bool accept_ragged, client *c)
{
    struct ragged r = {.ctx = server_ctx("server")};
    int port;
    r.listener = harness_tcp_listener(AF_INET, &port);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ragged_main, &r), 0);
    sockit_tls_ctx *cctx = client_ctx(true);
    assert_ok(sockit_tls_ctx_set_ragged_eofs(cctx, accept_ragged));
    assert_sock(sockit_stream_connect_tls(loop, "localhost", port, 5.0, NULL, cctx, &client_cb,
                                          connected, c));
    RUN_UNTIL(loop, c->closes > 0 || c->code < 0, 5);
    pthread_join(th, NULL);
    sockit_close(r.listener);
    sockit_tls_ctx_free(r.ctx);
    sockit_tls_ctx_free(cctx);
}

static void test_ragged_end_is_an_error_unless_accepted(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    client c = {0};
    ragged_round(loop, false, &c);
    assert_int_equal(c.code, 0);
    assert_int_equal(c.got_len, 4);
    assert_memory_equal(c.got, "bye\n", 4);
    assert_int_equal(c.errors, 1);
    assert_int_equal(c.error_code, SOCKIT_ETLSEOF);
    assert_non_null(strstr(c.errmsg, "without close_notify"));
    assert_int_equal(c.eofs, 0);

    client d = {0};
    ragged_round(loop, true, &d);
    assert_int_equal(d.got_len, 4);
    assert_int_equal(d.errors, 0);
    assert_int_equal(d.eofs, 1);
    client_free(&c);
    client_free(&d);
    close_loop(loop);
}

/* python3's ssl module as the client of a sockit TLS listener. */
static void test_python_client_against_the_listener(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *sctx = server_ctx("server");
    assert_ok(sockit_tls_ctx_set_alpn(sctx, "h2,http/1.1"));
    int port;
    sockit_listener *l = tls_listener(loop, sctx, 0, &port);
    srv.close_after_echo = true;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "timeout 20 python3 %s/tests/tls/peer.py client --port %d --server-name localhost "
             "--ca %s --alpn http/1.1 --send 'from python' > %s/py.out 2>&1",
             SOCKIT_SOURCE_DIR, port, path_of("ca.pem"), certdir);
    /* The client runs in a thread of its own (system waits); the loop serves it. */
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    RUN_UNTIL(loop, srv.closes > 0, 15);
    int status = pclose(p);
    FILE *out = fopen(path_of("py.out"), "r");
    assert_non_null(out);
    char got[512] = {0};
    size_t n = fread(got, 1, sizeof got - 1, out);
    fclose(out);
    if (status != 0)
        fail_msg("python client: status %d: %s (server: %s)", status, got, srv.errmsg);
    assert_int_equal(srv.accepted, 1);
    assert_int_equal(srv.errors, 0);
    assert_true(n > 0);
    assert_non_null(strstr(got, "from python"));
    sockit_listener_close(l);
    sockit_tls_ctx_free(sctx);
    close_loop(loop);
}

/* sockit_proxy with TLS on both sides: a TLS client of the proxy, the proxy a TLS
 * client of the echo server; and TLS on one side only (a plain client, TLS upstream). */
static void test_proxy_speaks_tls_on_either_side(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *sctx = server_ctx("server");
    sockit_tls_ctx *cctx = client_ctx(true);
    int port;
    sockit_listener *l = tls_listener(loop, sctx, 0, &port);
    for (int both = 1; both >= 0; both--) {
        sockit_proxy_config pc = {.upstream_host = "127.0.0.1",
                                  .upstream_port = port,
                                  .listen_tls = both ? sctx : NULL,
                                  .upstream_tls = cctx,
                                  .upstream_tls_name = "localhost"};
        sockit_proxy *px = sockit_proxy_new(loop, &pc);
        assert_sock(px);
        sockit_addr a;
        assert_ok(sockit_proxy_address(px, &a));
        client c = {0};
        if (both)
            assert_sock(sockit_stream_connect_tls(loop, "localhost", sockit_addr_port(&a), 5.0,
                                                  NULL, cctx, &client_cb, connected, &c));
        else
            assert_sock(sockit_stream_connect(loop, "127.0.0.1", sockit_addr_port(&a), 5.0, NULL,
                                              &client_cb, connected, &c));
        RUN_UNTIL(loop, c.done > 0, 5);
        assert_int_equal(c.code, 0);
        assert_int_equal(sockit_stream_is_tls(c.st), both == 1);
        assert_ok(sockit_stream_write(c.st, "through the proxy", 17));
        RUN_UNTIL(loop, c.got_len >= 17, 5);
        assert_int_equal(c.got_len, 17);
        assert_memory_equal(c.got, "through the proxy", 17);
        sockit_stream_close(c.st, 1);
        RUN_UNTIL(loop, c.closes > 0, 5);
        sockit_proxy_close(px);
        run_for(loop, 0.2);
        client_free(&c);
    }
    /* The wrong side's context is refused. */
    sockit_proxy_config bad = {
        .upstream_host = "127.0.0.1", .upstream_port = port, .listen_tls = cctx};
    assert_null(sockit_proxy_new(loop, &bad));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit_listener_close(l);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
    close_loop(loop);
}

static void test_arguments_are_checked(void **state)
{
    NEED_TLS();
    sockit_loop *loop = new_loop();
    sockit_tls_ctx *sctx = server_ctx("server");
    sockit_tls_ctx *cctx = client_ctx(true);
    client c = {0};
    /* A server context cannot connect; none at all is -EINVAL. */
    assert_null(
        sockit_stream_connect_tls(loop, "localhost", 1, 1, NULL, sctx, &client_cb, connected, &c));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(
        sockit_stream_connect_tls(loop, "localhost", 1, 1, NULL, NULL, &client_cb, connected, &c));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_null(
        sockit_stream_connect_tls(loop, "localhost", 0, 1, NULL, cctx, &client_cb, connected, &c));
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
    /* A listener takes only a server context. */
    int port;
    sockit *ls = harness_tcp_listener(AF_INET, &port);
    sockit_listener_config cfg = {.callbacks = &echo_cb, .tls = cctx};
    assert_null(sockit_listener_new(loop, ls, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    cfg.tls = sctx;
    cfg.tls_handshake_timeout = -1;
    assert_null(sockit_listener_new(loop, ls, &cfg));
    assert_int_equal(sockit_errcode(), -EINVAL);
    sockit_close(ls);
    /* A refused port is done's code, as for a plain connect. */
    sockit *gone = harness_tcp_listener(AF_INET, &port);
    sockit_close(gone);
    assert_sock(sockit_stream_connect_tls(loop, "127.0.0.1", port, 2, NULL, cctx, &client_cb,
                                          connected, &c));
    RUN_UNTIL(loop, c.done > 0, 5);
    assert_int_equal(c.code, -ECONNREFUSED);
    /* Accessors on a plain stream. */
    assert_false(sockit_stream_is_tls(NULL));
    assert_null(sockit_stream_tls_version(NULL));
    char b[8];
    assert_code(sockit_stream_tls_peer_subject(NULL, b, sizeof b), -EINVAL);
    sockit_tls_ctx_free(sctx);
    sockit_tls_ctx_free(cctx);
    close_loop(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_connect_tls_to_a_tls_listener_echoes),
        harness_test(test_verification_failure_never_shows_the_stream),
        harness_test(test_connect_deadline_covers_the_handshake),
        harness_test(test_server_handshake_timeout_frees_a_silent_client),
        harness_test(test_start_tls_keeps_early_writes),
        harness_test(test_bulk_through_backpressure),
        harness_test(test_ragged_end_is_an_error_unless_accepted),
        harness_test(test_python_client_against_the_listener),
        harness_test(test_proxy_speaks_tls_on_either_side),
        harness_test(test_arguments_are_checked),
    };
    return cmocka_run_group_tests(tests, certs_setup, certs_teardown);
}
