/* The BIO under every blocking-API TLS socket: OpenSSL's own socket BIO would block
 * in blocking mode, raise SIGPIPE and bypass the sys layer's fault hook. This one
 * makes one non-blocking attempt per call, and tells the TLS layer what it waits
 * for; only a handshake's writes wait for room here (sockit__tls.writes_wait), and a
 * refused write is kept for a failure to send again (sockit__tls_bio_resend). */
#include "tls_internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
    sockit__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = sockit__sys_send(t->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            t->refused_len = 0;
            return (int)n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            if (t->writes_wait && sockit__wait(t->fd, POLLOUT, t->write_deadline) == 0)
                continue;
            BIO_set_retry_write(b);
            t->want = POLLOUT;
            /* OpenSSL offers the same bytes again if it goes on; if it fails instead,
             * these are what the peer has not had. */
            t->refused_len = (size_t)len <= sizeof t->refused ? (size_t)len : 0;
            memcpy(t->refused, buf, t->refused_len);
        } else {
            t->io_errno = errno;
        }
        return -1;
    }
}

static int bio_read(BIO *b, char *buf, int len)
{
    sockit__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = sockit__sys_recv(t->fd, buf, (size_t)len, MSG_DONTWAIT);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            BIO_set_retry_read(b);
            t->want = POLLIN;
        } else {
            t->io_errno = errno;
        }
        return -1;
    }
}

/* Enough for an injected EAGAIN (one in five sends in the fault runs) to miss
 * almost always; a full buffer has no room a moment later either. */
#define RESEND_TRIES 8

void sockit__tls_bio_resend(sockit__tls *t)
{
    size_t off = 0;
    for (int tries = 0; off < t->refused_len && tries < RESEND_TRIES; tries++) {
        ssize_t n = sockit__sys_send(t->fd, t->refused + off, t->refused_len - off,
                                     MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EINTR && errno != EAGAIN)
            break;
    }
    t->refused_len = 0;
}

static int bio_puts(BIO *b, const char *text) { return bio_write(b, text, (int)strlen(text)); }

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Writes go straight to the socket, so a flush has nothing to do; every other
     * control (kTLS among them) is one this BIO does not offer. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void make_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sockit socket");
    if (m == NULL)
        return;
    if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
        !BIO_meth_set_puts(m, bio_puts) || !BIO_meth_set_ctrl(m, bio_ctrl) ||
        !BIO_meth_set_create(m, bio_create)) {
        BIO_meth_free(m);
        return;
    }
    method = m;
}

BIO *sockit__tls_bio_new(sockit__tls *t)
{
    pthread_once(&method_once, make_method);
    if (method == NULL)
        return NULL;
    BIO *b = BIO_new(method);
    if (b != NULL)
        BIO_set_data(b, t);
    return b;
}
