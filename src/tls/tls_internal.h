/* What the TLS files share: the context, one connection's state, and the error
 * translation. Built only with OpenSSL (SOCKIT_HAVE_TLS). Never installed. */
#ifndef SOCKIT_TLS_INTERNAL_H
#define SOCKIT_TLS_INTERNAL_H

#include "../internal.h"
#include "sockit_tls.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

#define SOCKIT__TLS_SNI_MAX 32
/* The longest host name a session key or a message keeps (DNS names are ≤ 253). */
#define SOCKIT__TLS_NAME_MAX   256
#define SOCKIT__TLS_DETAIL_MAX 512

/* A server's certificate for one SNI name; ssl_ctx only holds the loaded pair. */
typedef struct sockit__tls_sni {
    char *name;
    SSL_CTX *ssl_ctx;
} sockit__tls_sni;

/* A client's sessions, newest last; the oldest is dropped when it is full. */
typedef struct sockit__tls_session {
    char key[SOCKIT__TLS_NAME_MAX + 8]; /* "name:port" */
    SSL_SESSION *session;
} sockit__tls_session;

struct sockit_tls_ctx {
    atomic_int refs;
    int side;
    SSL_CTX *ssl_ctx;
    int verify;
    bool check_hostname; /* the user's setting; see sockit__tls_checks_host */
    bool ragged_eofs;
    bool no_resumption;  /* sockit_tls_ctx_set_resumption(false) */
    bool own_store;      /* load_verify_locations replaced the system CAs */
    bool system_store;   /* the system CAs were loaded */
    unsigned char *alpn; /* wire format: length-prefixed names */
    size_t alpn_len;
    sockit__tls_sni sni[SOCKIT__TLS_SNI_MAX];
    size_t sni_count;
    pthread_mutex_t cache_lock;
    sockit__tls_session cache[SOCKIT_TLS_SESSION_CACHE];
    size_t cache_count;
};

/* An alert record is 7 bytes in TLS 1.2, 24 encrypted in TLS 1.3, 31 with a
 * TLS 1.2 AEAD; a tail of a handshake record may be longer, and is kept up to this. */
#define SOCKIT__TLS_REFUSED_MAX 256

/* One TLS connection: the SSL object, and what the socket calls need to know of it.
 * The lock serializes OpenSSL calls, which one SSL object cannot take from two
 * threads at once; it is held for one non-blocking attempt, never across a wait, so
 * one thread in recv and another in send still both make progress. */
typedef struct sockit__tls {
    SSL *ssl;
    sockit_tls_ctx *ctx;
    int fd;
    pthread_mutex_t lock;
    short want;      /* POLLIN/POLLOUT the last would-block waits for; 0 */
    int io_errno;    /* errno of the last failed send/recv under OpenSSL */
    int failed;      /* a fatal failure's code: every later call returns it */
    bool handshaken; /* the handshake finished */
    bool notified;   /* close_notify sent */
    /* Inside a handshake that waits anyway: its writes wait for room themselves
     * (until write_deadline), so an alert OpenSSL writes as it fails, which it
     * never tries again, is not lost to a full (or faulted) send buffer. */
    bool writes_wait;
    int64_t write_deadline;
    size_t write_len; /* a write in progress after a would-block: its length */
    /* The bytes of the last write the socket refused (EAGAIN, not waited for), when
     * they fit: OpenSSL never writes a failed session's alert again, so a fatal
     * failure offers them to the socket once more (sockit__tls_bio_resend). */
    unsigned char refused[SOCKIT__TLS_REFUSED_MAX];
    size_t refused_len;
    char session_key[SOCKIT__TLS_NAME_MAX + 8];
    char host[SOCKIT__TLS_NAME_MAX]; /* a client's server_hostname, for messages */
    char alpn[256];
    /* The certificate that failed verification: its depth and subject. */
    int verify_depth;
    char verify_subject[256];
    char detail[SOCKIT__TLS_DETAIL_MAX]; /* the last failure's reason, for messages */
} sockit__tls;

extern const sockit__transport sockit__tls_transport;

/* The socket-descriptor BIO: send/recv with MSG_DONTWAIT (and MSG_NOSIGNAL) through
 * the sys layer, so faults can be injected and no call blocks under the lock. */
BIO *sockit__tls_bio_new(sockit__tls *t);
/* After a fatal failure: the refused bytes (an alert, or the end of the record before
 * it) sent again without waiting, a few times, so that only a send buffer that is
 * really full, never a spurious EAGAIN, costs the peer the reason. */
void sockit__tls_bio_resend(sockit__tls *t);

/* Before each OpenSSL call on t: no trace of the last one's failure is left (its
 * direction, errno, reason, this thread's OpenSSL error queue). */
void sockit__tls_begin(sockit__tls *t);
/* After an OpenSSL call on t returned ret: -EAGAIN with t->want set, 0 for the
 * peer's close_notify (or a ragged EOF the context accepts), or a code with
 * t->detail saying why. Consumes this thread's OpenSSL error queue. */
int sockit__tls_result(sockit__tls *t, int ret);
/* The OpenSSL error queue's reason (or fallback) into buf; empties the queue. */
void sockit__tls_queue_text(char *buf, size_t size, const char *fallback);

/* A client's SNI, name check and resumption for host (NULL: none) at port. 0 or a
 * code with the message set. */
int sockit__tls_client_setup(sockit__tls *t, const char *host, int port);
/* Whether a client of ctx checks the server's name: asked for, and verifying. */
bool sockit__tls_checks_host(const sockit_tls_ctx *ctx);
/* Checks that ctx and host can make a connection of ctx's side ("op: ..."). */
int sockit__tls_check_host(const sockit_tls_ctx *ctx, const char *host, const char *op);

/* What a connection negotiated, for sockets and streams alike (t NULL: before the
 * handshake, or not TLS). */
const char *sockit__tls_info_version(const sockit__tls *t);
const char *sockit__tls_info_cipher(const sockit__tls *t);
const char *sockit__tls_info_alpn(sockit__tls *t);
const char *sockit__tls_info_server_name(const sockit__tls *t);
bool sockit__tls_info_reused(const sockit__tls *t);
int sockit__tls_info_subject(const sockit__tls *t, char *buf, size_t size);

/* The session cache of a client context (tls_session.c). */
void sockit__tls_session_init(SSL_CTX *ssl_ctx);
void sockit__tls_session_apply(sockit_tls_ctx *ctx, SSL *ssl, const char *key);
void sockit__tls_session_clear(sockit_tls_ctx *ctx);
/* The ex_data index under which an SSL object points at its sockit__tls. */
int sockit__tls_ex_index(void);

/* name in one line, RFC 2253 ("CN=localhost,O=sockit"), into buf: its length, or
 * -ENOSPC when cut to fit, -ENOMEM. */
int sockit__tls_name_text(const X509_NAME *name, char *buf, size_t size);

#endif /* SOCKIT_TLS_INTERNAL_H */
