/* The TLS calls of a library built without OpenSSL: each fails with SOCKIT_ENOTLS,
 * so a program built against sockit_tls.h links and says why at run time. */
#include "../internal.h"
#include "sockit_tls.h"

static int no_tls(const char *op)
{
    return sockit__failf(SOCKIT_ENOTLS, "%s: this sockit was built without OpenSSL", op);
}

bool sockit_has_tls(void) { return false; }

sockit_tls_ctx *sockit_tls_ctx_new(int side)
{
    (void)side;
    no_tls("tls_ctx_new");
    return NULL;
}

void sockit_tls_ctx_free(sockit_tls_ctx *ctx) { (void)ctx; }
/* No context exists without OpenSSL, so these are never reached with one. */
sockit_tls_ctx *sockit__tls_ctx_ref(sockit_tls_ctx *ctx) { return ctx; }
bool sockit__tls_ctx_is_server(const sockit_tls_ctx *ctx)
{
    (void)ctx;
    return false;
}
int sockit_tls_ctx_side(const sockit_tls_ctx *ctx)
{
    (void)ctx;
    return no_tls("tls_ctx_side");
}

int sockit_tls_ctx_load_cert_chain(sockit_tls_ctx *ctx, const char *cert_file, const char *key_file)
{
    (void)ctx, (void)cert_file, (void)key_file;
    return no_tls("tls_ctx_load_cert_chain");
}

int sockit_tls_ctx_load_verify_locations(sockit_tls_ctx *ctx, const char *ca_file,
                                         const char *ca_dir)
{
    (void)ctx, (void)ca_file, (void)ca_dir;
    return no_tls("tls_ctx_load_verify_locations");
}

int sockit_tls_ctx_set_versions(sockit_tls_ctx *ctx, int min, int max)
{
    (void)ctx, (void)min, (void)max;
    return no_tls("tls_ctx_set_versions");
}

int sockit_tls_ctx_set_alpn(sockit_tls_ctx *ctx, const char *protocols)
{
    (void)ctx, (void)protocols;
    return no_tls("tls_ctx_set_alpn");
}

int sockit_tls_ctx_set_verify(sockit_tls_ctx *ctx, int mode)
{
    (void)ctx, (void)mode;
    return no_tls("tls_ctx_set_verify");
}

int sockit_tls_ctx_set_check_hostname(sockit_tls_ctx *ctx, bool on)
{
    (void)ctx, (void)on;
    return no_tls("tls_ctx_set_check_hostname");
}

int sockit_tls_ctx_set_ragged_eofs(sockit_tls_ctx *ctx, bool accept)
{
    (void)ctx, (void)accept;
    return no_tls("tls_ctx_set_ragged_eofs");
}

int sockit_tls_ctx_add_sni_cert(sockit_tls_ctx *ctx, const char *server_name, const char *cert_file,
                                const char *key_file)
{
    (void)ctx, (void)server_name, (void)cert_file, (void)key_file;
    return no_tls("tls_ctx_add_sni_cert");
}

int sockit_tls_ctx_set_resumption(sockit_tls_ctx *ctx, bool on)
{
    (void)ctx, (void)on;
    return no_tls("tls_ctx_set_resumption");
}

int sockit_tls_wrap(sockit *s, sockit_tls_ctx *ctx, const char *server_hostname)
{
    (void)s, (void)ctx, (void)server_hostname;
    return no_tls("tls_wrap");
}

int sockit_tls_handshake(sockit *s)
{
    (void)s;
    return no_tls("tls_handshake");
}

int sockit_tls_wants(const sockit *s)
{
    (void)s;
    return 0;
}

sockit *sockit_tls_create_connection(const char *host, int port, double timeout,
                                     const sockit_addr *source, sockit_tls_ctx *ctx)
{
    (void)host, (void)port, (void)timeout, (void)source, (void)ctx;
    no_tls("tls_create_connection");
    return NULL;
}

bool sockit_is_tls(const sockit *s)
{
    (void)s;
    return false;
}

const char *sockit_tls_version(const sockit *s)
{
    (void)s;
    return NULL;
}

const char *sockit_tls_cipher(const sockit *s)
{
    (void)s;
    return NULL;
}

const char *sockit_tls_alpn(const sockit *s)
{
    (void)s;
    return NULL;
}

const char *sockit_tls_server_name(const sockit *s)
{
    (void)s;
    return NULL;
}

int sockit_tls_peer_subject(const sockit *s, char *buf, size_t size)
{
    (void)s, (void)buf, (void)size;
    return no_tls("tls_peer_subject");
}

bool sockit_tls_session_reused(const sockit *s)
{
    (void)s;
    return false;
}

int sockit__stream_tls(sockit_stream *st, sockit_tls_ctx *ctx, const char *host, double timeout,
                       void (*fn)(sockit_stream *st, int status, void *arg), void *arg)
{
    (void)st, (void)ctx, (void)host, (void)timeout, (void)fn, (void)arg;
    return no_tls("stream_start_tls");
}

void sockit__stream_tls_forget(sockit_stream *st) { (void)st; }

int sockit_stream_start_tls(sockit_stream *st, sockit_tls_ctx *ctx, const char *server_hostname,
                            double timeout, sockit_stream_tls_fn done)
{
    (void)st, (void)ctx, (void)server_hostname, (void)timeout, (void)done;
    return no_tls("stream_start_tls");
}

bool sockit_stream_is_tls(const sockit_stream *st)
{
    (void)st;
    return false;
}

const char *sockit_stream_tls_version(const sockit_stream *st)
{
    (void)st;
    return NULL;
}

const char *sockit_stream_tls_cipher(const sockit_stream *st)
{
    (void)st;
    return NULL;
}

const char *sockit_stream_tls_alpn(const sockit_stream *st)
{
    (void)st;
    return NULL;
}

const char *sockit_stream_tls_server_name(const sockit_stream *st)
{
    (void)st;
    return NULL;
}

int sockit_stream_tls_peer_subject(const sockit_stream *st, char *buf, size_t size)
{
    (void)st, (void)buf, (void)size;
    return no_tls("stream_tls_peer_subject");
}

bool sockit_stream_tls_session_reused(const sockit_stream *st)
{
    (void)st;
    return false;
}
