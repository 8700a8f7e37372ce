/* TLS sockets: the transport that sockit_send, sockit_recv and the rest go through
 * once sockit_tls_wrap has made a socket a TLS one, and the handshake. */
#include "tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <string.h>

/* Refuses flags TLS cannot honour: MSG_OOB has no meaning inside records, and the
 * others would act on ciphertext. */
static ssize_t refuse_flags(sockit__tls *t, int flags, int allowed, const char *op)
{
    snprintf(t->detail, sizeof t->detail, "%s flags 0x%x are not supported on a TLS socket", op,
             (unsigned)(flags & ~allowed));
    return -EOPNOTSUPP;
}

/* The reason of this thread's last TLS failure, and the connection it was on: a
 * message is made after the lock is dropped, when another thread may already be
 * clearing the connection's own copy. */
static _Thread_local struct {
    const sockit__tls *on;
    char text[SOCKIT__TLS_DETAIL_MAX];
} last_reason;

/* Ends an attempt (lock held): keeps the reason of a failure for the message. */
static ssize_t finish(sockit__tls *t, ssize_t out)
{
    if (out < 0 && out != -EAGAIN && t->detail[0] != '\0') {
        last_reason.on = t;
        memcpy(last_reason.text, t->detail, sizeof last_reason.text);
    } else {
        last_reason.on = NULL;
    }
    return out;
}

static int clamp_len(size_t len) { return len > INT_MAX ? INT_MAX : (int)len; }

static ssize_t tls_send(sockit *s, const void *buf, size_t len, int flags, short *want)
{
    sockit__tls *t = s->tstate;
    const int allowed = MSG_DONTWAIT | MSG_NOSIGNAL;
    pthread_mutex_lock(&t->lock);
    ssize_t out;
    if (flags & ~allowed) {
        out = refuse_flags(t, flags, allowed, "send");
    } else if (t->failed != 0) {
        out = t->failed;
    } else if (len == 0) {
        out = 0;
    } else if (t->write_len > 0 && len < t->write_len) {
        snprintf(t->detail, sizeof t->detail,
                 "a TLS write of %zu bytes is under way: send the same bytes again, at least as "
                 "many (%zu given)",
                 t->write_len, len);
        out = -EINVAL;
    } else {
        /* A retry after a would-block must be the same write (OpenSSL's rule), so it
         * repeats the length of the write under way. */
        int n = t->write_len > 0 ? (int)t->write_len : clamp_len(len);
        sockit__tls_begin(t);
        int r = SSL_write(t->ssl, buf, n);
        /* A handshake a send or recv finished is finished: close_notify and the
         * accessors go by this. */
        t->handshaken = SSL_is_init_finished(t->ssl) == 1;
        if (r > 0) {
            t->write_len = 0;
            out = r;
        } else {
            out = sockit__tls_result(t, r);
            if (out == -EAGAIN) {
                t->write_len = (size_t)n;
                *want = t->want;
            } else if (out == 0) {
                out = -EPIPE;
            }
        }
    }
    out = finish(t, out);
    pthread_mutex_unlock(&t->lock);
    return out;
}

static ssize_t tls_recv(sockit *s, void *buf, size_t len, int flags, short *want)
{
    sockit__tls *t = s->tstate;
    const int allowed = MSG_DONTWAIT | MSG_PEEK;
    pthread_mutex_lock(&t->lock);
    ssize_t out;
    if (flags & ~allowed) {
        out = refuse_flags(t, flags, allowed, "recv");
    } else if (t->failed != 0) {
        out = t->failed;
    } else {
        sockit__tls_begin(t);
        int r = (flags & MSG_PEEK) ? SSL_peek(t->ssl, buf, clamp_len(len))
                                   : SSL_read(t->ssl, buf, clamp_len(len));
        t->handshaken = SSL_is_init_finished(t->ssl) == 1;
        if (r > 0) {
            out = r;
        } else {
            out = sockit__tls_result(t, r);
            if (out == -EAGAIN)
                *want = t->want;
        }
    }
    out = finish(t, out);
    pthread_mutex_unlock(&t->lock);
    return out;
}

static size_t tls_pending(const sockit *s)
{
    sockit__tls *t = s->tstate;
    pthread_mutex_lock(&t->lock);
    int n = SSL_pending(t->ssl);
    pthread_mutex_unlock(&t->lock);
    return n > 0 ? (size_t)n : 0;
}

/* One close_notify attempt: 0 sent (or nothing to send), -EAGAIN with t->want, or a
 * code. Called with the lock held. */
static int notify_once(sockit__tls *t)
{
    if (!t->handshaken || t->notified || t->failed != 0)
        return 0;
    sockit__tls_begin(t);
    int r = SSL_shutdown(t->ssl);
    if (r >= 0) {
        t->notified = true;
        return 0;
    }
    int rc = sockit__tls_result(t, r);
    return rc == 0 ? 0 : rc;
}

static const char *how_name(int how)
{
    return how == SHUT_RD ? "SHUT_RD" : how == SHUT_WR ? "SHUT_WR" : "SHUT_RDWR";
}

static int tls_shutdown(sockit *s, int how, int64_t deadline)
{
    sockit__tls *t = s->tstate;
    char op[48];
    snprintf(op, sizeof op, "shutdown(%s)", how_name(how));
    while (how != SHUT_RD) {
        pthread_mutex_lock(&t->lock);
        int rc = (int)finish(t, notify_once(t));
        short want = t->want;
        pthread_mutex_unlock(&t->lock);
        if (rc != -EAGAIN)
            break; /* a peer that is gone cannot be told; the TCP shutdown still runs */
        rc = sockit__await(s, want, deadline);
        if (rc < 0)
            return sockit__io_fail(s, rc, op);
    }
    if (shutdown(s->fd, how) < 0)
        return sockit__io_fail(s, -errno, op);
    return 0;
}

/* How long a failed session that may block waits for its peer to close. */
#define ALERT_LINGER_MS 1000

/* A failed session has sent its alert. Closing over unread bytes resets the
 * connection, and the reset can discard the alert before the peer reads it; a TLS
 * 1.3 client writes as soon as its part of the handshake is sent, so its bytes may
 * still be coming. A socket that may block waits (bounded) for the peer to read the
 * alert and close; a non-blocking one drops only what has arrived. */
static void keep_the_alert(const sockit *s)
{
    if (s->timeout == 0) {
        sockit__drop_unread(s->fd);
        return;
    }
    int ms = ALERT_LINGER_MS;
    if (s->timeout > 0 && s->timeout * 1e3 < ms)
        ms = (int)(s->timeout * 1e3) + 1;
    sockit__drop_until_closed(s->fd, ms);
}

static void tls_release(sockit *s, bool notify)
{
    sockit__tls *t = s->tstate;
    if (notify) {
        /* Only what goes out without waiting: close must not block on a peer. */
        pthread_mutex_lock(&t->lock);
        notify_once(t);
        pthread_mutex_unlock(&t->lock);
        if (t->failed != 0 && s->fd >= 0)
            keep_the_alert(s);
    }
    ERR_clear_error();
    SSL_free(t->ssl);
    sockit_tls_ctx_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    sockit__free(t);
}

static const char *tls_detail(const sockit *s)
{
    return last_reason.on != NULL && last_reason.on == s->tstate ? last_reason.text : NULL;
}

const sockit__transport sockit__tls_transport = {
    .send = tls_send,
    .recv = tls_recv,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .release = tls_release,
    .detail = tls_detail,
};

/* Runs the handshake until done or deadline. nonblocking: a socket in
 * non-blocking mode returns SOCKIT_EWOULDBLOCK to be continued later; otherwise the
 * deadline alone decides (sockit_tls_create_connection with timeout 0). */
static int handshake_until(sockit *s, int64_t deadline, bool nonblocking, const char *op)
{
    sockit__tls *t = s->tstate;
    for (;;) {
        pthread_mutex_lock(&t->lock);
        int rc = t->failed;
        if (rc == 0 && !t->handshaken) {
            sockit__tls_begin(t);
            t->writes_wait = !nonblocking || s->timeout != 0.0;
            t->write_deadline = deadline;
            int r = SSL_do_handshake(t->ssl);
            t->writes_wait = false;
            if (r == 1)
                t->handshaken = true;
            else if ((rc = sockit__tls_result(t, r)) == 0)
                rc = t->failed = SOCKIT_ETLSEOF;
        }
        rc = (int)finish(t, rc);
        short want = t->want;
        pthread_mutex_unlock(&t->lock);
        if (rc == 0)
            return 0;
        if (rc != -EAGAIN)
            return sockit__io_fail(s, rc, op);
        rc = nonblocking ? sockit__await(s, want, deadline) : sockit__wait(s->fd, want, deadline);
        if (rc < 0)
            return sockit__io_fail(s, rc, op);
    }
}

static bool is_ip_literal(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int sockit__tls_client_setup(sockit__tls *t, const char *host, int port)
{
    sockit_tls_ctx *ctx = t->ctx;
    if (host == NULL)
        return 0;
    bool ip = is_ip_literal(host);
    if (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1)
        return sockit__failf(SOCKIT_ETLS, "tls: server name \"%s\" refused by OpenSSL", host);
    if (sockit__tls_checks_host(ctx)) {
        X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                    : X509_VERIFY_PARAM_set1_host(param, host, 0);
        if (ok != 1)
            return sockit__failf(-EINVAL, "tls: cannot check the certificate for \"%s\"", host);
    }
    snprintf(t->host, sizeof t->host, "%s", host);
    snprintf(t->session_key, sizeof t->session_key, "%s:%d", host, port > 0 ? port : 0);
    sockit__tls_session_apply(ctx, t->ssl, t->session_key);
    return 0;
}

/* Checks s and ctx can make a TLS socket; 0 or the code with its message. */
static int check_wrap(sockit *s, sockit_tls_ctx *ctx, const char *host)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "tls_wrap");
    if (ctx == NULL)
        return sockit__failf(-EINVAL, "tls_wrap: no context");
    if (s->type != SOCK_STREAM)
        return sockit__failf(-EOPNOTSUPP, "tls_wrap: a datagram socket (TLS needs a stream)");
    if (s->transport != &sockit__plain_transport)
        return sockit__failf(-EINVAL, "tls_wrap: already a TLS socket");
    sockit_addr peer;
    if (sockit_getpeername(s, &peer) < 0 && sockit_errcode() == -ENOTCONN)
        return sockit__failf(-ENOTCONN, "tls_wrap: the socket is not connected");
    if (s->rbuf.end > s->rbuf.start)
        return sockit__failf(-EBUSY,
                             "tls_wrap: %zu bytes read ahead by readline would be lost (recv them "
                             "first)",
                             s->rbuf.end - s->rbuf.start);
    return sockit__tls_check_host(ctx, host, "tls_wrap");
}

int sockit__tls_check_host(const sockit_tls_ctx *ctx, const char *host, const char *op)
{
    if (host != NULL && strlen(host) >= SOCKIT__TLS_NAME_MAX)
        return sockit__failf(-EINVAL, "%s: server name of %zu bytes", op, strlen(host));
    if (sockit__tls_checks_host(ctx) && (host == NULL || host[0] == '\0'))
        return sockit__failf(-EINVAL,
                             "%s: no server_hostname to check the certificate against (or "
                             "turn the check off)",
                             op);
    return 0;
}

static int attach(sockit *s, sockit_tls_ctx *ctx, const char *host)
{
    int rc = check_wrap(s, ctx, host);
    if (rc < 0)
        return rc;
    sockit__tls *t = sockit__calloc(1, sizeof *t);
    if (t == NULL)
        return sockit__fail(-ENOMEM, "tls_wrap");
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl_ctx);
    BIO *bio = t->ssl != NULL ? sockit__tls_bio_new(t) : NULL;
    if (bio == NULL) {
        SSL_free(t->ssl);
        sockit__free(t);
        char reason[256];
        sockit__tls_queue_text(reason, sizeof reason, "out of memory");
        return sockit__failf(SOCKIT_ETLS, "tls_wrap: %s", reason);
    }
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_ex_data(t->ssl, sockit__tls_ex_index(), t);
    t->fd = s->fd;
    t->ctx = sockit__tls_ctx_ref(ctx);
    pthread_mutex_init(&t->lock, NULL);
    s->tstate = t;
    s->transport = &sockit__tls_transport;
    if (ctx->side == SOCKIT_TLS_CLIENT) {
        SSL_set_connect_state(t->ssl);
        sockit_addr peer;
        int port = sockit_getpeername(s, &peer) == 0 ? sockit_addr_port(&peer) : 0;
        rc = sockit__tls_client_setup(t, host, port);
        if (rc < 0) {
            t->failed = rc;
            snprintf(t->detail, sizeof t->detail, "%s", sockit_errmsg());
            return rc;
        }
    } else {
        SSL_set_accept_state(t->ssl);
    }
    return 0;
}

static void handshake_op(const sockit *s, char *buf, size_t size, const char *host)
{
    const sockit__tls *t = s->tstate;
    if (host == NULL || host[0] == '\0')
        host = t->host;
    if (host[0] != '\0')
        snprintf(buf, size, "tls handshake with %s", host);
    else
        snprintf(buf, size, "tls handshake (%s side)",
                 t->ctx->side == SOCKIT_TLS_CLIENT ? "client" : "server");
}

int sockit_tls_wrap(sockit *s, sockit_tls_ctx *ctx, const char *server_hostname)
{
    int rc = attach(s, ctx, server_hostname);
    if (rc < 0)
        return rc;
    char op[SOCKIT__TLS_NAME_MAX + 32];
    handshake_op(s, op, sizeof op, server_hostname);
    return handshake_until(s, sockit__call_deadline(s), true, op);
}

int sockit_tls_handshake(sockit *s)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "tls_handshake");
    if (s->transport != &sockit__tls_transport)
        return sockit__failf(-EINVAL, "tls_handshake: not a TLS socket");
    char op[SOCKIT__TLS_NAME_MAX + 32];
    handshake_op(s, op, sizeof op, NULL);
    return handshake_until(s, sockit__call_deadline(s), true, op);
}

int sockit_tls_wants(const sockit *s)
{
    if (s == NULL || s->transport != &sockit__tls_transport)
        return 0;
    sockit__tls *t = s->tstate;
    pthread_mutex_lock(&t->lock);
    short want = t->want;
    pthread_mutex_unlock(&t->lock);
    return want == POLLIN ? SOCKIT_EVENT_READ : want == POLLOUT ? SOCKIT_EVENT_WRITE : 0;
}

sockit *sockit_tls_create_connection(const char *host, int port, double timeout,
                                     const sockit_addr *source, sockit_tls_ctx *ctx)
{
    if (ctx == NULL) {
        sockit__failf(-EINVAL, "tls_create_connection: no context");
        return NULL;
    }
    if (ctx->side != SOCKIT_TLS_CLIENT) {
        sockit__failf(-EINVAL, "tls_create_connection: a server context");
        return NULL;
    }
    /* What can never verify fails before any packet is sent. */
    bool is_unix = host != NULL && strncmp(host, "unix:", 5) == 0;
    if (sockit__tls_check_host(ctx, is_unix ? NULL : host, "tls_create_connection") < 0)
        return NULL;
    /* One deadline for the name, the connects and the handshake. */
    int64_t deadline = sockit__deadline(timeout);
    sockit *s = sockit_create_connection(host, port, timeout, source);
    if (s == NULL)
        return NULL;
    const char *name = host != NULL && strncmp(host, "unix:", 5) == 0 ? NULL : host;
    int rc = attach(s, ctx, name);
    if (rc == 0) {
        char op[SOCKIT__TLS_NAME_MAX + 32];
        handshake_op(s, op, sizeof op, host);
        rc = handshake_until(s, deadline, false, op);
    }
    if (rc < 0) {
        sockit_close(s);
        return NULL;
    }
    return s;
}

bool sockit_is_tls(const sockit *s) { return s != NULL && s->transport == &sockit__tls_transport; }
