/* The client's session cache: the tickets servers hand out, kept per server name and
 * port, so the next connection to the same server resumes instead of running a full
 * handshake. Bounded (SOCKIT_TLS_SESSION_CACHE), oldest dropped first. */
#include "tls_internal.h"

#include <string.h>

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void make_index(void) { ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

int sockit__tls_ex_index(void)
{
    pthread_once(&ex_once, make_index);
    return ex_index;
}

static sockit__tls_session *find(sockit_tls_ctx *ctx, const char *key)
{
    for (size_t i = 0; i < ctx->cache_count; i++)
        if (strcmp(ctx->cache[i].key, key) == 0)
            return &ctx->cache[i];
    return NULL;
}

/* OpenSSL calls this for every session (ticket) a server sends; 1 keeps it. */
static int on_new_session(SSL *ssl, SSL_SESSION *session)
{
    sockit__tls *t = SSL_get_ex_data(ssl, sockit__tls_ex_index());
    if (t == NULL || t->session_key[0] == '\0' || t->ctx->no_resumption)
        return 0;
    sockit_tls_ctx *ctx = t->ctx;
    pthread_mutex_lock(&ctx->cache_lock);
    sockit__tls_session *slot = find(ctx, t->session_key);
    if (slot != NULL) {
        SSL_SESSION_free(slot->session);
    } else {
        if (ctx->cache_count == SOCKIT_TLS_SESSION_CACHE) {
            SSL_SESSION_free(ctx->cache[0].session);
            memmove(&ctx->cache[0], &ctx->cache[1],
                    (SOCKIT_TLS_SESSION_CACHE - 1) * sizeof ctx->cache[0]);
            ctx->cache_count--;
        }
        slot = &ctx->cache[ctx->cache_count++];
        memcpy(slot->key, t->session_key, sizeof slot->key);
    }
    slot->session = session;
    pthread_mutex_unlock(&ctx->cache_lock);
    return 1;
}

void sockit__tls_session_init(SSL_CTX *ssl_ctx)
{
    /* Sessions go to this cache only: OpenSSL's internal one is keyed by session id,
     * which a client does not know before it connects. */
    SSL_CTX_set_session_cache_mode(ssl_ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ssl_ctx, on_new_session);
}

void sockit__tls_session_apply(sockit_tls_ctx *ctx, SSL *ssl, const char *key)
{
    if (ctx->no_resumption)
        return;
    pthread_mutex_lock(&ctx->cache_lock);
    sockit__tls_session *slot = find(ctx, key);
    if (slot != NULL)
        SSL_set_session(ssl, slot->session);
    pthread_mutex_unlock(&ctx->cache_lock);
}

void sockit__tls_session_clear(sockit_tls_ctx *ctx)
{
    for (size_t i = 0; i < ctx->cache_count; i++)
        SSL_SESSION_free(ctx->cache[i].session);
    ctx->cache_count = 0;
}
