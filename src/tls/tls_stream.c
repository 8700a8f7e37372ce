/* TLS on a loop's stream: the stream's filter (stream_filter.c) over two memory
 * BIOs. Wire bytes the stream read go into one and come out of OpenSSL as plaintext
 * for on_data; the user's writes go into OpenSSL and what it makes of them comes out
 * of the other, onto the stream's queue. Nothing here touches the descriptor, so
 * every backend (io_uring owning its buffers included) carries TLS the same way. */
#include "../stream/stream_internal.h"
#include "tls_internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <string.h>

#define DEFAULT_HANDSHAKE_S 10.0
/* How long a failed connection waits for its alert to leave before it closes. */
#define ALERT_LINGER_S 1.0
/* The plaintext one SSL_write takes: one record's worth. */
#define RECORD_MAX 16384

typedef struct tls_stream {
    sockit__tls t; /* the connection's TLS state, as a TLS socket has it */
    sockit_stream *st;
    BIO *wire_in, *wire_out;
    sockit_timer *deadline; /* the handshake's, until it has finished */
    void (*done)(sockit_stream *st, int status, void *arg);
    void *done_arg;
    bool done_to_user;  /* done gets the stream's user pointer */
    bool peer_notified; /* the peer's close_notify came */
    char *early;        /* the user's bytes written before the handshake finished */
    size_t early_len, early_cap;
} tls_stream;

static const sockit__filter_ops tls_filter;

static void report_done(tls_stream *x, int status)
{
    void (*fn)(sockit_stream *, int, void *) = x->done;
    if (fn == NULL)
        return;
    x->done = NULL;
    fn(x->st, status, x->done_to_user ? sockit_stream_user(x->st) : x->done_arg);
}

/* Sends what OpenSSL wrote into the outgoing BIO. */
static int flush(tls_stream *x)
{
    char *data = NULL;
    long len = BIO_get_mem_data(x->wire_out, &data);
    if (len <= 0)
        return 0;
    int rc = sockit__filter_send_wire(x->st, data, (size_t)len);
    (void)BIO_reset(x->wire_out);
    return rc;
}

/* Records "what (peer A): the reason" for a TLS failure of x's stream. */
static void note(tls_stream *x, int code, const char *what)
{
    char name[SOCKIT_ADDRSTRLEN + 8];
    sockit__stream_name(x->st, name, sizeof name);
    if (x->t.detail[0] != '\0')
        sockit__failf(code, "%s (peer %s): %s", what, name, x->t.detail);
    else
        sockit__failf(code, "%s (peer %s)", what, name);
}

/* Ends the stream because of a TLS failure, with the reason in the message (the
 * filter seam's own message would name only the code). */
static int failed(tls_stream *x, int code, const char *what)
{
    flush(x); /* an alert OpenSSL made goes out first */
    if (x->deadline != NULL) {
        sockit_timer_close(x->deadline);
        x->deadline = NULL;
    }
    if (x->t.failed == 0)
        x->t.failed = code;
    note(x, code, what);
    report_done(x, code);
    if (!x->st->ended) {
        note(x, code, what); /* done may have made other calls */
        /* The alert tells the peer why; a completion backend has it queued still. */
        sockit__stream_fail_draining(x->st, code, ALERT_LINGER_S);
    }
    return code;
}

/* Encrypts len bytes onto the queue. A failure inside the user's write is only
 * returned: the filter seam ends the stream from the loop. */
static int encrypt(tls_stream *x, const char *data, size_t len, bool from_user)
{
    while (len > 0) {
        int n = len > RECORD_MAX ? RECORD_MAX : (int)len;
        sockit__tls_begin(&x->t);
        int r = SSL_write(x->t.ssl, data, n);
        if (r <= 0) {
            int rc = sockit__tls_result(&x->t, r);
            rc = rc == 0 || rc == -EAGAIN ? -EPIPE : rc;
            return from_user ? rc : failed(x, rc, "send (tls)");
        }
        data += r;
        len -= (size_t)r;
    }
    return flush(x);
}

static int handshake_finished(tls_stream *x)
{
    x->t.handshaken = true;
    if (x->deadline != NULL) {
        sockit_timer_close(x->deadline);
        x->deadline = NULL;
    }
    if (x->early_len > 0) {
        size_t n = x->early_len;
        int rc = encrypt(x, x->early, n, false);
        sockit__free(x->early);
        x->early = NULL;
        x->early_len = x->early_cap = 0;
        if (rc < 0)
            return rc;
        sockit__filter_held_out(x->st, n);
        if (x->st->ended)
            return 0;
    }
    report_done(x, 0);
    return 0;
}

/* Runs OpenSSL on what the wire brought: the handshake, then every record whole. */
static int pump(tls_stream *x)
{
    sockit_stream *st = x->st;
    if (!x->t.handshaken) {
        sockit__tls_begin(&x->t);
        int r = SSL_do_handshake(x->t.ssl);
        if (r != 1) {
            int rc = sockit__tls_result(&x->t, r);
            if (rc == -EAGAIN)
                return flush(x);
            return failed(x, rc == 0 ? SOCKIT_ETLSEOF : rc, "tls handshake");
        }
        int rc = flush(x);
        if (rc < 0)
            return failed(x, rc, "tls handshake");
        rc = handshake_finished(x);
        if (rc < 0 || st->ended || st->closing)
            return rc;
    }
    char *out = sockit__filter_buf(st->loop);
    if (out == NULL)
        return -ENOMEM;
    /* All of it now: the stream reads the wire again only when more comes, so a
     * record left in the BIO would wait for the peer's next one. */
    for (;;) {
        sockit__tls_begin(&x->t);
        int r = SSL_read(x->t.ssl, out, SOCKIT__STREAM_READ);
        if (r > 0) {
            sockit__filter_deliver(st, out, (size_t)r);
            if (st->ended)
                return 0;
            continue;
        }
        int rc = sockit__tls_result(&x->t, r);
        if (rc == -EAGAIN)
            break;
        if (rc == 0) {
            x->peer_notified = true;
            break;
        }
        return failed(x, rc, "recv (tls)");
    }
    /* What reading made OpenSSL say (a key update's answer) goes out too. */
    return flush(x);
}

static int tls_on_wire(void *ctx, sockit_stream *st, const char *data, size_t len)
{
    (void)st;
    tls_stream *x = ctx;
    if (x->t.failed != 0)
        return 0;
    int rc = BIO_write(x->wire_in, data, (int)len) == (int)len ? pump(x)
                                                               : failed(x, -ENOMEM, "recv (tls)");
    /* A failure this filter ended the stream for is told no further: the seam would
     * reset the connection and lose the alert on its way out. */
    return x->t.failed != 0 ? 0 : rc;
}

static int tls_on_wire_eof(void *ctx, sockit_stream *st)
{
    (void)st;
    tls_stream *x = ctx;
    if (x->t.failed != 0)
        return 0;
    if (x->t.handshaken && (x->peer_notified || x->t.ctx->ragged_eofs))
        return 0;
    /* The code's own text says the rest. */
    snprintf(x->t.detail, sizeof x->t.detail, "%s",
             x->t.handshaken ? "" : "the peer closed during the handshake");
    x->t.failed = SOCKIT_ETLSEOF;
    failed(x, SOCKIT_ETLSEOF, x->t.handshaken ? "recv (tls)" : "tls handshake");
    return 0;
}

static int tls_on_user(void *ctx, sockit_stream *st, const char *data, size_t len)
{
    tls_stream *x = ctx;
    if (x->t.failed != 0)
        return -EPIPE;
    if (x->t.handshaken)
        return encrypt(x, data, len, true);
    /* Kept until the handshake is done, within the stream's hard limit. */
    size_t limit = st->ext != NULL ? st->ext->limit : SOCKIT__STREAM_LIMIT;
    if (len > limit - x->early_len)
        return sockit__failf(-ENOBUFS, "stream_write (tls): %zu bytes wait for the handshake",
                             x->early_len);
    if (x->early_len + len > x->early_cap) {
        size_t cap = x->early_cap > 0 ? x->early_cap : 4096;
        while (cap < x->early_len + len)
            cap *= 2;
        char *grown = sockit__realloc(x->early, cap);
        if (grown == NULL)
            return -ENOMEM;
        x->early = grown;
        x->early_cap = cap;
    }
    memcpy(x->early + x->early_len, data, len);
    x->early_len += len;
    sockit__filter_hold(st, len);
    return 0;
}

static int tls_on_user_end(void *ctx, sockit_stream *st)
{
    (void)st;
    tls_stream *x = ctx;
    if (!x->t.handshaken || x->t.notified || x->t.failed != 0)
        return 0;
    x->t.notified = true;
    sockit__tls_begin(&x->t);
    SSL_shutdown(x->t.ssl);
    ERR_clear_error();
    return flush(x);
}

static void tls_free(void *ctx)
{
    tls_stream *x = ctx;
    if (x->deadline != NULL)
        sockit_timer_close(x->deadline);
    ERR_clear_error();
    SSL_free(x->t.ssl); /* and both BIOs */
    sockit_tls_ctx_free(x->t.ctx);
    sockit__free(x->early);
    sockit__free(x);
}

static const sockit__filter_ops tls_filter = {
    .name = "tls",
    .on_wire = tls_on_wire,
    .on_wire_eof = tls_on_wire_eof,
    .on_user = tls_on_user,
    .on_user_end = tls_on_user_end,
    .free = tls_free,
};

static void deadline_passed(sockit_timer *timer, void *arg)
{
    (void)timer;
    tls_stream *x = arg;
    sockit_timer_close(x->deadline);
    x->deadline = NULL;
    /* A stream that ended otherwise (a reset, a close) has told its user already. */
    if (x->st->ended || x->st->closing) {
        x->done = NULL;
        return;
    }
    x->t.failed = SOCKIT_ETIMEOUT;
    snprintf(x->t.detail, sizeof x->t.detail, "not finished in time");
    failed(x, SOCKIT_ETIMEOUT, "tls handshake");
}

static tls_stream *make(sockit_stream *st, sockit_tls_ctx *ctx)
{
    tls_stream *x = sockit__calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->st = st;
    x->t.fd = -1;
    x->t.ssl = SSL_new(ctx->ssl_ctx);
    x->wire_in = BIO_new(BIO_s_mem());
    x->wire_out = BIO_new(BIO_s_mem());
    if (x->t.ssl == NULL || x->wire_in == NULL || x->wire_out == NULL) {
        BIO_free(x->wire_in);
        BIO_free(x->wire_out);
        SSL_free(x->t.ssl);
        sockit__free(x);
        ERR_clear_error();
        return NULL;
    }
    /* An empty BIO asks OpenSSL to wait for more, as a socket would. */
    BIO_set_mem_eof_return(x->wire_in, -1);
    SSL_set_bio(x->t.ssl, x->wire_in, x->wire_out);
    /* An idle connection gives its record buffers back (about 34 KiB). */
    SSL_set_mode(x->t.ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_set_ex_data(x->t.ssl, sockit__tls_ex_index(), &x->t);
    x->t.ctx = sockit__tls_ctx_ref(ctx);
    return x;
}

int sockit__stream_tls(sockit_stream *st, sockit_tls_ctx *ctx, const char *host, double timeout,
                       void (*fn)(sockit_stream *st, int status, void *arg), void *arg)
{
    if (st == NULL || ctx == NULL)
        return sockit__failf(-EINVAL, "stream_start_tls: no %s", st == NULL ? "stream" : "context");
    if (timeout != timeout || timeout > 4e6)
        return sockit__failf(-EINVAL, "stream_start_tls: timeout %g", timeout);
    if (st->ended || st->closing)
        return sockit__failf(-EPIPE, "stream_start_tls: the stream is closed");
    int rc = sockit__tls_check_host(ctx, host, "stream_start_tls");
    if (rc < 0)
        return rc;
    tls_stream *x = make(st, ctx);
    if (x == NULL)
        return sockit__fail(-ENOMEM, "stream_start_tls");
    x->done = fn;
    x->done_arg = arg;
    x->done_to_user = fn != NULL && arg == NULL; /* sockit_stream_start_tls's */
    if (ctx->side == SOCKIT_TLS_CLIENT) {
        SSL_set_connect_state(x->t.ssl);
        sockit_addr peer;
        int port = sockit_stream_peer(st, &peer) == 0 ? sockit_addr_port(&peer) : 0;
        rc = sockit__tls_client_setup(&x->t, host, port);
    } else {
        SSL_set_accept_state(x->t.ssl);
    }
    if (rc == 0 && timeout >= 0) {
        x->deadline = sockit_timer_new(st->loop, deadline_passed, x);
        rc = x->deadline != NULL
                 ? sockit_timer_start(x->deadline, timeout > 0 ? timeout : DEFAULT_HANDSHAKE_S, 0)
                 : sockit_errcode();
        if (x->deadline != NULL)
            sockit_timer_keepalive(x->deadline, false);
    }
    if (rc == 0)
        rc = sockit__stream_set_filter(st, &tls_filter, x);
    if (rc < 0) {
        x->done = NULL;
        tls_free(x);
        return rc;
    }
    /* A client speaks first. */
    if (ctx->side == SOCKIT_TLS_CLIENT)
        pump(x);
    return 0;
}

int sockit_stream_start_tls(sockit_stream *st, sockit_tls_ctx *ctx, const char *server_hostname,
                            double timeout, sockit_stream_tls_fn done)
{
    return sockit__stream_tls(st, ctx, server_hostname, timeout, done, NULL);
}

void sockit__stream_tls_forget(sockit_stream *st)
{
    if (!sockit_stream_is_tls(st))
        return;
    tls_stream *x = st->ext->filter_ctx;
    x->done = NULL;
    if (x->deadline != NULL) {
        sockit_timer_close(x->deadline);
        x->deadline = NULL;
    }
}

/* The TLS state of a TLS stream whose handshake has finished, or NULL. */
static sockit__tls *done_tls(const sockit_stream *st)
{
    if (!sockit_stream_is_tls(st))
        return NULL;
    tls_stream *x = st->ext->filter_ctx;
    return x->t.handshaken ? &x->t : NULL;
}

bool sockit_stream_is_tls(const sockit_stream *st)
{
    return st != NULL && st->filtered && st->ext != NULL && st->ext->filter == &tls_filter;
}

const char *sockit_stream_tls_version(const sockit_stream *st)
{
    return sockit__tls_info_version(done_tls(st));
}

const char *sockit_stream_tls_cipher(const sockit_stream *st)
{
    return sockit__tls_info_cipher(done_tls(st));
}

const char *sockit_stream_tls_alpn(const sockit_stream *st)
{
    return sockit__tls_info_alpn(done_tls(st));
}

const char *sockit_stream_tls_server_name(const sockit_stream *st)
{
    return sockit__tls_info_server_name(done_tls(st));
}

bool sockit_stream_tls_session_reused(const sockit_stream *st)
{
    return sockit__tls_info_reused(done_tls(st));
}

int sockit_stream_tls_peer_subject(const sockit_stream *st, char *buf, size_t size)
{
    if (!sockit_stream_is_tls(st))
        return sockit__failf(-EINVAL, "stream_tls_peer_subject: not a TLS stream");
    return sockit__tls_info_subject(done_tls(st), buf, size);
}
