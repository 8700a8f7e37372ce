/* TLS contexts (Python's ssl.SSLContext): what every connection of one side shares. */
#include "tls_internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

bool sockit_has_tls(void) { return true; }

/* Records "what: the OpenSSL reason" as SOCKIT_ETLS. */
__attribute__((format(printf, 1, 2))) static int ctx_fail(const char *fmt, ...)
{
    char reason[256];
    sockit__tls_queue_text(reason, sizeof reason, "unknown OpenSSL failure");
    char what[SOCKIT__TLS_NAME_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sockit__failf(SOCKIT_ETLS, "%s: %s", what, reason);
}

/* The server side of ALPN: the first of the server's names that the client offered.
 * A client that offered only others is refused (RFC 7301, section 3.2), so neither
 * side goes on believing a protocol was agreed. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    sockit_tls_ctx *ctx = arg;
    for (size_t i = 0; i < ctx->alpn_len; i += 1u + ctx->alpn[i]) {
        const unsigned char *ours = ctx->alpn + i;
        for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
            if (in[j] == ours[0] && j + 1u + in[j] <= inlen &&
                memcmp(in + j + 1, ours + 1, ours[0]) == 0) {
                *out = ours + 1;
                *outlen = ours[0];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* The server side of SNI: a name with a certificate of its own gets it. Only the
 * certificate changes; versions, ALPN, trust and tickets stay the context's. */
static int select_sni(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    sockit_tls_ctx *ctx = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < ctx->sni_count; i++) {
        if (strcasecmp(ctx->sni[i].name, name) != 0)
            continue;
        SSL_CTX *holder = ctx->sni[i].ssl_ctx;
        STACK_OF(X509) *chain = NULL;
        SSL_CTX_get0_chain_certs(holder, &chain);
        /* The default's certificate goes first: with another key type it would stay
         * beside this one, and OpenSSL could pick it. */
        SSL_certs_clear(ssl);
        if (SSL_use_cert_and_key(ssl, SSL_CTX_get0_certificate(holder),
                                 SSL_CTX_get0_privatekey(holder), chain, 1) != 1)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        break;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Remembers the certificate that failed, for the message. */
static int note_verify(int ok, X509_STORE_CTX *store)
{
    if (ok)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    sockit__tls *t = ssl != NULL ? SSL_get_ex_data(ssl, sockit__tls_ex_index()) : NULL;
    if (t != NULL && t->verify_subject[0] == '\0') {
        t->verify_depth = X509_STORE_CTX_get_error_depth(store);
        X509 *cert = X509_STORE_CTX_get_current_cert(store);
        if (cert != NULL)
            sockit__tls_name_text(X509_get_subject_name(cert), t->verify_subject,
                                  sizeof t->verify_subject);
    }
    return ok;
}

static void apply_verify(sockit_tls_ctx *ctx)
{
    int mode = SSL_VERIFY_NONE;
    if (ctx->verify == SOCKIT_TLS_VERIFY_REQUIRED)
        mode = ctx->side == SOCKIT_TLS_CLIENT ? SSL_VERIFY_PEER
                                              : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    else if (ctx->verify == SOCKIT_TLS_VERIFY_OPTIONAL)
        mode = SSL_VERIFY_PEER;
    SSL_CTX_set_verify(ctx->ssl_ctx, mode, note_verify);
}

/* The system store, as Python's load_default_certs: a client's from the start, a
 * server's once it verifies clients and has no CAs of its own. A machine without
 * one fails verification later, with the reason. */
static void use_system_store(sockit_tls_ctx *ctx)
{
    if (ctx->own_store || ctx->system_store)
        return;
    SSL_CTX_set_default_verify_paths(ctx->ssl_ctx);
    ERR_clear_error();
    ctx->system_store = true;
}

static SSL_CTX *new_ssl_ctx(int side)
{
    SSL_CTX *c = SSL_CTX_new(side == SOCKIT_TLS_CLIENT ? TLS_client_method() : TLS_server_method());
    if (c == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    /* Partial writes let a send report what it moved; a moving buffer lets the retry
     * of a would-block come from a new address holding the same bytes (sendall's
     * next iteration, a caller's reallocated buffer). */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Renegotiation is off in TLS 1.3 and a hazard in 1.2. */
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
    return c;
}

sockit_tls_ctx *sockit_tls_ctx_new(int side)
{
    if (side != SOCKIT_TLS_CLIENT && side != SOCKIT_TLS_SERVER) {
        sockit__failf(-EINVAL, "tls_ctx_new: side %d (SOCKIT_TLS_CLIENT or SOCKIT_TLS_SERVER)",
                      side);
        return NULL;
    }
    sockit_tls_ctx *ctx = sockit__calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        sockit__fail(-ENOMEM, "tls_ctx_new");
        return NULL;
    }
    ctx->ssl_ctx = new_ssl_ctx(side);
    if (ctx->ssl_ctx == NULL) {
        sockit__free(ctx);
        ctx_fail("%s", "tls_ctx_new");
        return NULL;
    }
    atomic_init(&ctx->refs, 1);
    ctx->side = side;
    pthread_mutex_init(&ctx->cache_lock, NULL);
    if (side == SOCKIT_TLS_CLIENT) {
        use_system_store(ctx);
        ctx->verify = SOCKIT_TLS_VERIFY_REQUIRED;
        ctx->check_hostname = true;
        sockit__tls_session_init(ctx->ssl_ctx);
    } else {
        /* A server sends the chain its certificate file holds. Left to build one from
         * the trust store, OpenSSL would search the system's CA directory on every
         * handshake (a profile showed readdir in each). */
        SSL_CTX_set_mode(ctx->ssl_ctx, SSL_MODE_NO_AUTO_CHAIN);
        ctx->verify = SOCKIT_TLS_VERIFY_NONE;
        SSL_CTX_set_tlsext_servername_callback(ctx->ssl_ctx, select_sni);
        SSL_CTX_set_tlsext_servername_arg(ctx->ssl_ctx, ctx);
    }
    apply_verify(ctx);
    return ctx;
}

sockit_tls_ctx *sockit__tls_ctx_ref(sockit_tls_ctx *ctx)
{
    atomic_fetch_add(&ctx->refs, 1);
    return ctx;
}

bool sockit__tls_ctx_is_server(const sockit_tls_ctx *ctx) { return ctx->side == SOCKIT_TLS_SERVER; }

bool sockit__tls_checks_host(const sockit_tls_ctx *ctx)
{
    return ctx->side == SOCKIT_TLS_CLIENT && ctx->check_hostname &&
           ctx->verify != SOCKIT_TLS_VERIFY_NONE;
}

void sockit_tls_ctx_free(sockit_tls_ctx *ctx)
{
    if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    sockit__tls_session_clear(ctx);
    for (size_t i = 0; i < ctx->sni_count; i++) {
        sockit__free(ctx->sni[i].name);
        SSL_CTX_free(ctx->sni[i].ssl_ctx);
    }
    pthread_mutex_destroy(&ctx->cache_lock);
    sockit__free(ctx->alpn);
    SSL_CTX_free(ctx->ssl_ctx);
    sockit__free(ctx);
}

int sockit_tls_ctx_side(const sockit_tls_ctx *ctx)
{
    return ctx != NULL ? ctx->side : sockit__fail(-EINVAL, "tls_ctx_side");
}

/* Loads cert_file and key_file into c. */
static int load_pair(SSL_CTX *c, const char *cert_file, const char *key_file)
{
    if (cert_file == NULL)
        return sockit__failf(-EINVAL, "tls load_cert_chain: no certificate file");
    const char *key = key_file != NULL ? key_file : cert_file;
    if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1)
        return ctx_fail("tls certificate %s", cert_file);
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)
        return ctx_fail("tls private key %s", key);
    if (SSL_CTX_check_private_key(c) != 1)
        return ctx_fail("tls private key %s does not match its certificate", key);
    return 0;
}

int sockit_tls_ctx_load_cert_chain(sockit_tls_ctx *ctx, const char *cert_file, const char *key_file)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_load_cert_chain");
    return load_pair(ctx->ssl_ctx, cert_file, key_file);
}

/* A server asking for client certificates names the CAs it trusts: those of every
 * CA file loaded. */
static void name_client_cas(SSL_CTX *c, const char *ca_file)
{
    STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(c);
    if (names == NULL || sk_X509_NAME_num(names) == 0) {
        names = SSL_load_client_CA_file(ca_file);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(c, names);
        return;
    }
    SSL_add_file_cert_subjects_to_stack(names, ca_file);
}

int sockit_tls_ctx_load_verify_locations(sockit_tls_ctx *ctx, const char *ca_file,
                                         const char *ca_dir)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_load_verify_locations");
    if (ca_file == NULL && ca_dir == NULL)
        return sockit__failf(-EINVAL,
                             "tls load_verify_locations: neither a CA file nor a directory");
    /* The first CAs given replace the system's (a test that trusts its own CA must
     * not also trust every public one); later calls add to them. */
    bool fresh = !ctx->own_store;
    X509_STORE *store = fresh ? X509_STORE_new() : SSL_CTX_get_cert_store(ctx->ssl_ctx);
    if (store == NULL)
        return sockit__fail(-ENOMEM, "tls load_verify_locations");
    const char *bad = NULL, *what = NULL;
    if (ca_file != NULL && X509_STORE_load_file(store, ca_file) != 1)
        bad = ca_file, what = "file";
    else if (ca_dir != NULL && X509_STORE_load_path(store, ca_dir) != 1)
        bad = ca_dir, what = "directory";
    if (bad != NULL) {
        if (fresh)
            X509_STORE_free(store);
        return ctx_fail("tls CA %s %s", what, bad);
    }
    if (fresh)
        SSL_CTX_set_cert_store(ctx->ssl_ctx, store);
    ctx->own_store = true;
    /* A server asking for client certificates names the CAs it trusts. */
    if (ctx->side == SOCKIT_TLS_SERVER && ca_file != NULL)
        name_client_cas(ctx->ssl_ctx, ca_file);
    ERR_clear_error();
    return 0;
}

static bool known_version(int v) { return v == SOCKIT_TLS_V1_2 || v == SOCKIT_TLS_V1_3; }

int sockit_tls_ctx_set_versions(sockit_tls_ctx *ctx, int min, int max)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_set_versions");
    if (!known_version(min) || (max != 0 && !known_version(max)))
        return sockit__failf(-EINVAL,
                             "tls versions 0x%04x-0x%04x: use SOCKIT_TLS_V1_2 or SOCKIT_TLS_V1_3",
                             (unsigned)min, (unsigned)max);
    if (max != 0 && max < min)
        return sockit__failf(-EINVAL, "tls versions: max 0x%04x is older than min 0x%04x",
                             (unsigned)max, (unsigned)min);
    SSL_CTX_set_min_proto_version(ctx->ssl_ctx, min);
    SSL_CTX_set_max_proto_version(ctx->ssl_ctx, max);
    return 0;
}

int sockit_tls_ctx_set_alpn(sockit_tls_ctx *ctx, const char *protocols)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_set_alpn");
    size_t len = protocols != NULL ? strlen(protocols) : 0;
    unsigned char *wire = NULL;
    size_t used = 0;
    if (len > 0) {
        wire = sockit__malloc(len + 1);
        if (wire == NULL)
            return sockit__fail(-ENOMEM, "tls_ctx_set_alpn");
        const char *p = protocols;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
            if (n == 0 || n > 255) {
                sockit__free(wire);
                return sockit__failf(-EINVAL, "tls alpn \"%s\": %s", protocols,
                                     n == 0 ? "an empty protocol name" : "a name over 255 bytes");
            }
            wire[used] = (unsigned char)n;
            memcpy(wire + used + 1, p, n);
            used += n + 1;
            if (comma == NULL)
                break;
            p = comma + 1;
        }
    }
    if (ctx->side == SOCKIT_TLS_CLIENT &&
        SSL_CTX_set_alpn_protos(ctx->ssl_ctx, wire, (unsigned int)used) != 0) {
        sockit__free(wire);
        return ctx_fail("%s", "tls alpn");
    }
    if (ctx->side == SOCKIT_TLS_SERVER)
        SSL_CTX_set_alpn_select_cb(ctx->ssl_ctx, used > 0 ? select_alpn : NULL, ctx);
    sockit__free(ctx->alpn);
    ctx->alpn = wire;
    ctx->alpn_len = used;
    return 0;
}

int sockit_tls_ctx_set_verify(sockit_tls_ctx *ctx, int mode)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_set_verify");
    if (mode != SOCKIT_TLS_VERIFY_REQUIRED && mode != SOCKIT_TLS_VERIFY_OPTIONAL &&
        mode != SOCKIT_TLS_VERIFY_NONE)
        return sockit__failf(
            -EINVAL, "tls verify mode %d (SOCKIT_TLS_VERIFY_REQUIRED, _OPTIONAL or _NONE)", mode);
    /* NONE turns the hostname check off with it (sockit__tls_checks_host); the
     * user's own setting stays, so REQUIRED again brings the check back. */
    ctx->verify = mode;
    if (mode != SOCKIT_TLS_VERIFY_NONE)
        use_system_store(ctx);
    apply_verify(ctx);
    return 0;
}

int sockit_tls_ctx_set_check_hostname(sockit_tls_ctx *ctx, bool on)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_set_check_hostname");
    if (on && ctx->verify == SOCKIT_TLS_VERIFY_NONE)
        return sockit__failf(-EINVAL, "tls check_hostname: needs certificate verification on");
    ctx->check_hostname = on;
    return 0;
}

int sockit_tls_ctx_set_ragged_eofs(sockit_tls_ctx *ctx, bool accept)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_set_ragged_eofs");
    ctx->ragged_eofs = accept;
    return 0;
}

int sockit_tls_ctx_add_sni_cert(sockit_tls_ctx *ctx, const char *server_name, const char *cert_file,
                                const char *key_file)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_add_sni_cert");
    if (ctx->side != SOCKIT_TLS_SERVER)
        return sockit__failf(-EINVAL, "tls add_sni_cert: a client context (servers choose by SNI)");
    if (server_name == NULL || server_name[0] == '\0' ||
        strlen(server_name) >= SOCKIT__TLS_NAME_MAX)
        return sockit__failf(-EINVAL, "tls add_sni_cert: no server name, or one too long");
    if (ctx->sni_count == SOCKIT__TLS_SNI_MAX)
        return sockit__failf(-ENOSPC, "tls add_sni_cert %s: already %d names", server_name,
                             SOCKIT__TLS_SNI_MAX);
    SSL_CTX *c = new_ssl_ctx(SOCKIT_TLS_SERVER);
    if (c == NULL)
        return ctx_fail("tls add_sni_cert %s", server_name);
    int rc = load_pair(c, cert_file, key_file);
    size_t n = strlen(server_name) + 1;
    char *name = rc == 0 ? sockit__malloc(n) : NULL;
    if (name == NULL) {
        SSL_CTX_free(c);
        return rc < 0 ? rc : sockit__fail(-ENOMEM, "tls add_sni_cert");
    }
    memcpy(name, server_name, n);
    ctx->sni[ctx->sni_count++] = (sockit__tls_sni){name, c};
    return 0;
}

int sockit_tls_ctx_set_resumption(sockit_tls_ctx *ctx, bool on)
{
    if (ctx == NULL)
        return sockit__fail(-EINVAL, "tls_ctx_set_resumption");
    ctx->no_resumption = !on;
    if (ctx->side == SOCKIT_TLS_SERVER) {
        /* No tickets, and no stateful cache to fall back on. */
        SSL_CTX_set_num_tickets(ctx->ssl_ctx, on ? 2 : 0);
        if (on)
            SSL_CTX_clear_options(ctx->ssl_ctx, SSL_OP_NO_TICKET);
        else
            SSL_CTX_set_options(ctx->ssl_ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx->ssl_ctx,
                                       on ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
    } else {
        pthread_mutex_lock(&ctx->cache_lock);
        sockit__tls_session_clear(ctx);
        pthread_mutex_unlock(&ctx->cache_lock);
    }
    return 0;
}
