/* What a TLS connection negotiated: version, cipher, ALPN, SNI, the peer's
 * certificate, resumption. */
#include "tls_internal.h"

#include <errno.h>
#include <openssl/x509.h>
#include <string.h>

/* The TLS state of s once its handshake is done, or NULL. */
static sockit__tls *done(const sockit *s)
{
    if (!sockit_is_tls(s))
        return NULL;
    sockit__tls *t = s->tstate;
    return t->handshaken ? t : NULL;
}

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

const char *sockit_tls_version(const sockit *s) { return sockit__tls_info_version(done(s)); }
const char *sockit_tls_cipher(const sockit *s) { return sockit__tls_info_cipher(done(s)); }
const char *sockit_tls_server_name(const sockit *s)
{
    return sockit__tls_info_server_name(done(s));
}
bool sockit_tls_session_reused(const sockit *s) { return sockit__tls_info_reused(done(s)); }

const char *sockit_tls_alpn(const sockit *s)
{
    sockit__tls *t = done(s);
    if (t == NULL)
        return NULL;
    pthread_mutex_lock(&t->lock);
    const char *name = sockit__tls_info_alpn(t);
    pthread_mutex_unlock(&t->lock);
    return name;
}

int sockit_tls_peer_subject(const sockit *s, char *buf, size_t size)
{
    if (!sockit_is_tls(s))
        return sockit__failf(-EINVAL, "tls_peer_subject: not a TLS socket");
    return sockit__tls_info_subject(done(s), buf, size);
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
