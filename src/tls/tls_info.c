/* What a TLS connection negotiated: version, cipher, ALPN, SNI, the peer's
 * certificate, resumption. */
#include "tls_internal.h"

#include <errno.h>
#include <openssl/x509.h>
#include <string.h>

const char *sockit__tls_info_version(const sockit__tls *t)
{
    return t != NULL ? SSL_get_version(t->ssl) : NULL;
}

const char *sockit__tls_info_cipher(const sockit__tls *t)
{
    return t != NULL ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *sockit__tls_info_alpn(sockit__tls *t)
{
    if (t == NULL)
        return NULL;
    const unsigned char *name = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(t->ssl, &name, &len);
    if (name == NULL || len == 0)
        return NULL;
    /* OpenSSL's bytes are not NUL-terminated; the copy lives with the connection. */
    memcpy(t->alpn, name, len);
    t->alpn[len] = '\0';
    return t->alpn;
}

const char *sockit__tls_info_server_name(const sockit__tls *t)
{
    return t != NULL ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

bool sockit__tls_info_reused(const sockit__tls *t)
{
    return t != NULL && SSL_session_reused(t->ssl) == 1;
}

int sockit__tls_info_subject(const sockit__tls *t, char *buf, size_t size)
{
    if (buf == NULL || size == 0)
        return sockit__failf(-EINVAL, "tls_peer_subject: no buffer");
    X509 *cert = t != NULL ? SSL_get0_peer_certificate(t->ssl) : NULL;
    if (cert == NULL) {
        buf[0] = '\0';
        return sockit__failf(-ENOENT, "tls_peer_subject: the peer sent no certificate");
    }
    int rc = sockit__tls_name_text(X509_get_subject_name(cert), buf, size);
    if (rc < 0)
        return sockit__failf(rc, "tls_peer_subject: %zu-byte buffer", size);
    return rc;
}

/* The socket accessors hold the connection's lock: another thread's recv may be
 * replacing the session (a TLS 1.3 ticket) under them. */
static sockit__tls *locked(const sockit *s)
{
    if (!sockit_is_tls(s))
        return NULL;
    sockit__tls *t = s->tstate;
    pthread_mutex_lock(&t->lock);
    if (t->handshaken)
        return t;
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static void unlock(sockit__tls *t)
{
    if (t != NULL)
        pthread_mutex_unlock(&t->lock);
}

const char *sockit_tls_version(const sockit *s)
{
    sockit__tls *t = locked(s);
    const char *v = sockit__tls_info_version(t);
    unlock(t);
    return v;
}

const char *sockit_tls_cipher(const sockit *s)
{
    sockit__tls *t = locked(s);
    const char *v = sockit__tls_info_cipher(t);
    unlock(t);
    return v;
}

const char *sockit_tls_server_name(const sockit *s)
{
    sockit__tls *t = locked(s);
    const char *v = sockit__tls_info_server_name(t);
    unlock(t);
    return v;
}

bool sockit_tls_session_reused(const sockit *s)
{
    sockit__tls *t = locked(s);
    bool v = sockit__tls_info_reused(t);
    unlock(t);
    return v;
}

const char *sockit_tls_alpn(const sockit *s)
{
    sockit__tls *t = locked(s);
    const char *v = sockit__tls_info_alpn(t);
    unlock(t);
    return v;
}

int sockit_tls_peer_subject(const sockit *s, char *buf, size_t size)
{
    if (!sockit_is_tls(s))
        return sockit__failf(-EINVAL, "tls_peer_subject: not a TLS socket");
    sockit__tls *t = locked(s);
    int rc = sockit__tls_info_subject(t, buf, size);
    unlock(t);
    return rc;
}

int sockit__tls_name_text(const X509_NAME *name, char *buf, size_t size)
{
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem == NULL)
        return -ENOMEM;
    X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char *text = NULL;
    long len = BIO_get_mem_data(mem, &text);
    int rc = (int)len;
    if (size > 0) {
        size_t n = (size_t)len < size ? (size_t)len : size - 1;
        memcpy(buf, text, n);
        buf[n] = '\0';
        if ((size_t)len >= size)
            rc = -ENOSPC;
    }
    BIO_free(mem);
    return rc;
}
