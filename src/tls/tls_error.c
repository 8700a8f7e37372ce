/* What an OpenSSL failure means for the caller: would-block and its direction, a
 * clean end, a ragged one, or a failure with a reason a person can act on (which
 * certificate failed and why, which alert the peer sent). */
#include "tls_internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <string.h>

/* One error's reason: OpenSSL's own text, or the packed code when it has none. */
static void reason_of(unsigned long e, char *buf, size_t size)
{
    /* A system error (a file that is not there) is an errno: its own words. */
    if (ERR_SYSTEM_ERROR(e)) {
        snprintf(buf, size, "%s", strerror(ERR_GET_REASON(e)));
        return;
    }
    const char *reason = ERR_reason_error_string(e);
    if (reason != NULL)
        snprintf(buf, size, "%s", reason);
    else
        ERR_error_string_n(e, buf, size);
}

void sockit__tls_queue_text(char *buf, size_t size, const char *fallback)
{
    unsigned long first = ERR_get_error();
    if (first == 0) {
        snprintf(buf, size, "%s", fallback);
        return;
    }
    /* The first error is the cause; the last, when it says something else, is what
     * the cause made fail. */
    unsigned long last = first, next;
    while ((next = ERR_get_error()) != 0)
        last = next;
    reason_of(first, buf, size);
    /* After a system error the rest only says "system lib". */
    if (last != first && !ERR_SYSTEM_ERROR(first) &&
        ERR_GET_REASON(last) != ERR_GET_REASON(first)) {
        size_t used = strlen(buf);
        if (used + 3 < size) {
            memcpy(buf + used, " (", 2);
            reason_of(last, buf + used + 2, size - used - 3);
            strcat(buf, ")");
        }
    }
}

static int fail(sockit__tls *t, int code)
{
    t->failed = code;
    if (t->refused_len > 0)
        sockit__tls_bio_resend(t);
    return code;
}

static int ended_without_notify(sockit__tls *t)
{
    ERR_clear_error();
    if (t->handshaken && t->ctx->ragged_eofs) {
        t->failed = 0;
        return 0;
    }
    /* The code's own text says the rest. */
    snprintf(t->detail, sizeof t->detail, "%s",
             t->handshaken ? "" : "the peer closed during the handshake");
    return fail(t, SOCKIT_ETLSEOF);
}

static int verify_failed(sockit__tls *t)
{
    ERR_clear_error();
    long v = SSL_get_verify_result(t->ssl);
    const char *why = X509_verify_cert_error_string(v);
    if (t->verify_subject[0] != '\0')
        snprintf(t->detail, sizeof t->detail, "%s (certificate at depth %d: %s)", why,
                 t->verify_depth, t->verify_subject);
    else
        snprintf(t->detail, sizeof t->detail, "%s", why);
    return fail(t, SOCKIT_ETLSVERIFY);
}

void sockit__tls_begin(sockit__tls *t)
{
    t->want = 0;
    t->io_errno = 0;
    t->detail[0] = '\0';
    ERR_clear_error();
}

int sockit__tls_result(sockit__tls *t, int ret)
{
    int err = SSL_get_error(t->ssl, ret);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        t->want = POLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        t->want = POLLOUT;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return 0;
    case SSL_ERROR_SYSCALL:
        if (t->io_errno != 0) {
            ERR_clear_error();
            return fail(t, -t->io_errno);
        }
        return ended_without_notify(t);
    case SSL_ERROR_SSL: {
        unsigned long e = ERR_peek_error();
        int reason = ERR_GET_REASON(e);
        if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return ended_without_notify(t);
        if (ERR_GET_LIB(e) == ERR_LIB_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
            return verify_failed(t);
        char text[256];
        sockit__tls_queue_text(text, sizeof text, "unknown OpenSSL failure");
        /* Reasons from SSL_AD_REASON_OFFSET on are alerts the peer sent. */
        bool alert = reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256;
        snprintf(t->detail, sizeof t->detail, "%s%s", alert ? "the peer sent alert " : "", text);
        return fail(t, SOCKIT_ETLS);
    }
    default:
        ERR_clear_error();
        snprintf(t->detail, sizeof t->detail, "OpenSSL result %d", err);
        return fail(t, SOCKIT_ETLS);
    }
}
