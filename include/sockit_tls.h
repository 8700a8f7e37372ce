/* sockit_tls.h: TLS for sockit, as Python's ssl module is for socket.
 *
 * A context (ssl.SSLContext) holds what every connection of one side shares:
 * certificates, trust, versions, ALPN, verification, the client's session cache.
 * sockit_tls_wrap (SSLContext.wrap_socket) turns a connected sockit * into a TLS
 * socket in place: sockit_send, sockit_sendall, sockit_recv, sockit_recv_exact,
 * sockit_readline, sockit_recvfrom, sockit_sendfile, sockit_shutdown and
 * sockit_close then work through TLS unchanged, with the same deadlines, the same
 * EINTR and no-SIGPIPE guarantees, and one thread in recv while another is in send.
 *
 * The library uses OpenSSL 3 where the build found it (pkg-config "openssl");
 * sockit_has_tls() says so. Without it every call here fails with SOCKIT_ENOTLS.
 * Certificates and keys are PEM files. */
#ifndef SOCKIT_TLS_H
#define SOCKIT_TLS_H

#include "sockit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when the library was built with TLS (OpenSSL). */
SOCKIT_API bool sockit_has_tls(void);

/* ------------------------------------------------------------------------------
 * Contexts
 * ------------------------------------------------------------------------------ */

typedef struct sockit_tls_ctx sockit_tls_ctx;

/* The side a context serves (Python's PROTOCOL_TLS_CLIENT / PROTOCOL_TLS_SERVER). */
#define SOCKIT_TLS_CLIENT 1
#define SOCKIT_TLS_SERVER 2

/* Protocol versions, by their wire values (as OpenSSL's TLS1_2_VERSION). */
#define SOCKIT_TLS_V1_2 0x0303
#define SOCKIT_TLS_V1_3 0x0304

/* Verification modes (Python's verify_mode). */
#define SOCKIT_TLS_VERIFY_REQUIRED 1 /* CERT_REQUIRED: a client's default */
#define SOCKIT_TLS_VERIFY_OPTIONAL 2 /* CERT_OPTIONAL: a server asks for a client certificate */
#define SOCKIT_TLS_VERIFY_NONE     3 /* CERT_NONE: a server's default; on a client, INSECURE */

/* A new context for one side, with Python's create_default_context() defaults:
 * TLS 1.2 at least (1.3 preferred), OpenSSL's default ciphers. A client verifies
 * the server's certificate against the system's trust store and checks that it is
 * for the name it connected to; a server asks for no client certificate. Returns
 * NULL with the error recorded (-EINVAL for a bad side, -ENOMEM, SOCKIT_ENOTLS).
 * Configure a context before its first wrap; a context is shared by any number of
 * sockets and threads afterwards. */
SOCKIT_API sockit_tls_ctx *sockit_tls_ctx_new(int side);
/* Drops the caller's reference: the context lives until its last socket closes. */
SOCKIT_API void sockit_tls_ctx_free(sockit_tls_ctx *ctx);
/* SOCKIT_TLS_CLIENT or SOCKIT_TLS_SERVER. */
SOCKIT_API int sockit_tls_ctx_side(const sockit_tls_ctx *ctx);

/* The certificate (chain, leaf first) and private key this side presents
 * (load_cert_chain). A server sends exactly that chain: put the intermediates in
 * the file (it builds none from its trust store, which would cost a search of the
 * system's CA directory on every handshake). key_file NULL: the key is in cert_file. A server needs
 * one; a client presents it when the server asks. A missing or unreadable file, a key that does not
 * match the certificate: SOCKIT_ETLS naming the file and the reason. */
SOCKIT_API int sockit_tls_ctx_load_cert_chain(sockit_tls_ctx *ctx, const char *cert_file,
                                              const char *key_file);
/* Trusts the CA certificates in ca_file (PEM, may hold several) and/or ca_dir (an
 * OpenSSL hashed directory) instead of the system store (load_verify_locations). Either
 * may be NULL, not both. */
SOCKIT_API int sockit_tls_ctx_load_verify_locations(sockit_tls_ctx *ctx, const char *ca_file,
                                                    const char *ca_dir);
/* The oldest and newest version to negotiate: SOCKIT_TLS_V1_2 or SOCKIT_TLS_V1_3
 * (max 0: the newest there is). Anything else, or max < min, is -EINVAL. */
SOCKIT_API int sockit_tls_ctx_set_versions(sockit_tls_ctx *ctx, int min, int max);
/* Application protocols (ALPN) as a comma-separated list in order of preference:
 * "h2,http/1.1". A client offers them; a server picks its first one the client
 * offered, and refuses a client that offered only others (alert
 * no_application_protocol) rather than silently agreeing on none. NULL or "" turns
 * ALPN off. An empty or over-255-byte name is -EINVAL. */
SOCKIT_API int sockit_tls_ctx_set_alpn(sockit_tls_ctx *ctx, const char *protocols);
/* One of SOCKIT_TLS_VERIFY_*. On a client, NONE accepts any certificate from anyone
 * (and so turns off the hostname check too): for tests against self-signed servers
 * only. On a server, REQUIRED refuses clients without a certificate the trusted CAs
 * signed; OPTIONAL asks for one and verifies it if sent. Under TLS 1.3 a client's
 * handshake ends before the server has judged its certificate: a refused client
 * learns it at its first recv (SOCKIT_ETLS, "the peer sent alert ... certificate
 * required"). */
SOCKIT_API int sockit_tls_ctx_set_verify(sockit_tls_ctx *ctx, int mode);
/* A client checks the server's certificate against the name it connected to (DNS
 * names; IP-address SANs for a literal address). On by default with REQUIRED; off
 * only by this call (Python's check_hostname = False). VERIFY_NONE suspends it
 * (REQUIRED again brings it back); asking for it on while verification is NONE is
 * -EINVAL. */
SOCKIT_API int sockit_tls_ctx_set_check_hostname(sockit_tls_ctx *ctx, bool on);
/* A peer that closes its TCP connection without TLS's close_notify may have been cut
 * off by an attacker, so by default recv reports it as SOCKIT_ETLSEOF rather than as
 * a clean end of stream. true accepts it as an end of stream (Python's
 * suppress_ragged_eofs, which Python defaults to true and sockit does not). */
SOCKIT_API int sockit_tls_ctx_set_ragged_eofs(sockit_tls_ctx *ctx, bool accept);
/* A server: an extra certificate and key for clients that ask for server_name (SNI);
 * other clients get the context's own. Up to 32 names. */
SOCKIT_API int sockit_tls_ctx_add_sni_cert(sockit_tls_ctx *ctx, const char *server_name,
                                           const char *cert_file, const char *key_file);

/* A client context keeps the sessions servers hand it (TLS 1.3 tickets, TLS 1.2
 * session tickets), at most this many, keyed by server name and port; the next
 * connection to the same server resumes one (sockit_tls_session_reused says
 * whether it did). */
#define SOCKIT_TLS_SESSION_CACHE 64
/* Resumption on (the default) or off: off, a client context keeps no session and
 * every connection makes a full handshake (a server context: no tickets issued). */
SOCKIT_API int sockit_tls_ctx_set_resumption(sockit_tls_ctx *ctx, bool on);

/* ------------------------------------------------------------------------------
 * TLS sockets
 * ------------------------------------------------------------------------------ */

/* Makes s, a connected stream socket, a TLS socket of ctx's side, and runs the
 * handshake within s's timeout (do_handshake_on_connect). server_hostname is the
 * name the client connected to: sent as SNI (unless it is an IP literal) and checked
 * against the certificate; NULL on a server, and on a client only with hostname
 * checking off. Bytes already read ahead by sockit_readline would be lost, so a
 * socket with sockit_pending() > 0 is -EBUSY.
 *
 * On a non-blocking socket the handshake that cannot finish at once returns
 * SOCKIT_EWOULDBLOCK: continue it with sockit_tls_handshake when sockit_tls_wants
 * says. Failures name the reason: SOCKIT_ETLSVERIFY (which certificate, and why:
 * expired, unknown CA, self-signed, hostname mismatch), SOCKIT_ETLS (a protocol
 * failure, the alert the peer sent or the one sent to it: protocol version, ALPN),
 * SOCKIT_ETIMEOUT, SOCKIT_ETLSEOF (the peer closed mid-handshake), -errno. After a
 * handshake failure s stays a TLS socket whose every call fails; close it. Bad
 * arguments leave s plain: -EBADF (NULL s), -EINVAL (NULL ctx, already TLS, no
 * server_hostname while the hostname is checked), -EOPNOTSUPP (a datagram socket),
 * -ENOTCONN (not connected), -EBUSY (read-ahead bytes). */
SOCKIT_API int sockit_tls_wrap(sockit *s, sockit_tls_ctx *ctx, const char *server_hostname);
/* Continues (or, in blocking and timeout modes, completes within the timeout) the
 * handshake. 0 when done, also when it already was. */
SOCKIT_API int sockit_tls_handshake(sockit *s);
/* What a TLS socket's last would-block waits for: SOCKIT_EVENT_READ or
 * SOCKIT_EVENT_WRITE (a TLS write may need a read first and the other way around);
 * 0 when nothing is waited for. One value for sends and receives together: read it
 * right after the call that would block. A plain socket: 0. */
SOCKIT_API int sockit_tls_wants(const sockit *s);

/* sockit_create_connection ending in a verified TLS connection: host is both where
 * to connect and the name the certificate must carry. One deadline (timeout) covers
 * the name, the connects and the handshake. */
SOCKIT_API sockit *sockit_tls_create_connection(const char *host, int port, double timeout,
                                                const sockit_addr *source, sockit_tls_ctx *ctx);

/* The socket calls on a TLS socket:
 * - send/sendall/recv/recv_exact/readline/recvfrom move plaintext. MSG_PEEK and
 *   MSG_DONTWAIT work; other flags are -EOPNOTSUPP. A send that returned
 *   SOCKIT_EWOULDBLOCK (or timed out) has part of a TLS record on the wire: the next
 *   send must start with the same bytes, at least as many as that send was given
 *   (OpenSSL's rule, and Python's); fewer is -EINVAL with a message. sendall and
 *   sendfile keep the rule themselves.
 * - sockit_sendto and sockit_sendto_addr are -EOPNOTSUPP: the peer is fixed.
 * - sockit_pending counts the plaintext TLS has decrypted but recv has not taken, and
 *   selectors and loop watchers report such a socket readable.
 * - recv returns 0 only after the peer's close_notify; a bare TCP close is
 *   SOCKIT_ETLSEOF unless the context accepts ragged EOFs.
 * - sockit_shutdown(SHUT_WR or SHUT_RDWR) sends close_notify, then shuts the TCP
 *   side; sockit_close sends close_notify if it can without waiting, then closes.
 * - After a failed session (its alert sent), sockit_close keeps the alert from being
 *   lost to a reset: a socket that may block shuts its write side and reads and drops
 *   until the peer closes, for at most 1 s (or its timeout, if shorter); a
 *   non-blocking one drops only what has arrived. A stream that fails does the
 *   latter before it closes. A non-blocking handshake does not wait for room to
 *   send its alert; if the socket refuses it, the failing call offers it a few more
 *   times without waiting, so only a send buffer that stays full loses it.
 * - sockit_sendfile reads the file and sends it through TLS (no zero-copy).
 * - sockit_send_fds and sockit_recv_fds are -EOPNOTSUPP.
 * - sockit_dup is -EOPNOTSUPP (two objects cannot share one TLS session);
 *   sockit_detach gives up the TLS session without close_notify and returns the
 *   descriptor, whose later bytes are TLS records; sockit_fromfd of any descriptor
 *   makes a plain socket. */

/* True when s is a TLS socket. */
SOCKIT_API bool sockit_is_tls(const sockit *s);
/* After the handshake: the negotiated version ("TLSv1.3"), cipher suite
 * ("TLS_AES_256_GCM_SHA384"), application protocol (NULL when none), the name a
 * client asked for (a server's view of SNI; NULL when none). NULL before the
 * handshake and on a plain socket. The text lives as long as s. */
SOCKIT_API const char *sockit_tls_version(const sockit *s);
SOCKIT_API const char *sockit_tls_cipher(const sockit *s);
SOCKIT_API const char *sockit_tls_alpn(const sockit *s);
SOCKIT_API const char *sockit_tls_server_name(const sockit *s);
/* The peer certificate's subject in one line ("CN=localhost,O=sockit test") into
 * buf. Returns its length, or -ENOENT when the peer sent none, -ENOSPC when it does
 * not fit (buf then holds the start), -EINVAL on a plain socket. */
SOCKIT_API int sockit_tls_peer_subject(const sockit *s, char *buf, size_t size);
/* True when this connection resumed a session instead of a full handshake. */
SOCKIT_API bool sockit_tls_session_reused(const sockit *s);

/* ------------------------------------------------------------------------------
 * TLS streams, on the loop
 *
 * TLS runs inside the stream (OpenSSL over memory BIOs), so it works on every loop
 * backend, io_uring's buffers included. on_data gets plaintext; writes take
 * plaintext, and the watermarks and the hard limit count it; sockit_stream_shutdown
 * and sockit_stream_close send close_notify before the TCP half-close or close; a
 * peer's TCP close without close_notify is the error SOCKIT_ETLSEOF unless the
 * context accepts ragged EOFs. What one TLS stream costs in memory is in
 * docs/streams.md.
 * ------------------------------------------------------------------------------ */

/* Called once when the handshake has finished (status 0) or TLS failed it (a code,
 * the same the stream's on_error gets right after), with the stream's user pointer.
 * A stream that ends otherwise first (a reset, a close) is told by on_error and
 * on_close alone. */
typedef void (*sockit_stream_tls_fn)(sockit_stream *st, int status, void *user);

/* Makes st, a stream no byte has gone through yet, a TLS stream of ctx's side
 * (asyncio's loop.start_tls), and starts the handshake. server_hostname as in
 * sockit_tls_wrap. The handshake must finish within timeout seconds (< 0: no
 * limit; 0: 10 s) or the stream fails with SOCKIT_ETIMEOUT. Bytes written before it
 * finishes are copied and go out after it, counted as queued bytes are (watermarks,
 * hard limit, sockit_stream_queued); a write_ref's done comes once they are copied,
 * and a close or shutdown before the handshake drops them. done may be NULL. Returns 0, or
 * -EINVAL, -EBUSY (bytes already went through), -EEXIST (already TLS), -ENOMEM, SOCKIT_ENOTLS. */
SOCKIT_API int sockit_stream_start_tls(sockit_stream *st, sockit_tls_ctx *ctx,
                                       const char *server_hostname, double timeout,
                                       sockit_stream_tls_fn done);
/* sockit_stream_connect ending in a verified TLS stream: done gets the stream once
 * its handshake has finished, within the one deadline that covers the name, the
 * connects and the handshake; a failed handshake is done's code (SOCKIT_ETLSVERIFY
 * ...) with the stream never seen. host is also the name to verify. */
SOCKIT_API sockit_connector *
sockit_stream_connect_tls(sockit_loop *loop, const char *host, int port, double timeout,
                          const sockit_addr *source, sockit_tls_ctx *ctx,
                          const sockit_stream_callbacks *cb, sockit_connector_fn done, void *user);
/* As the sockit_tls_* accessors above, for a TLS stream (NULL, false or -EINVAL for
 * a plain one). */
SOCKIT_API bool sockit_stream_is_tls(const sockit_stream *st);
SOCKIT_API const char *sockit_stream_tls_version(const sockit_stream *st);
SOCKIT_API const char *sockit_stream_tls_cipher(const sockit_stream *st);
SOCKIT_API const char *sockit_stream_tls_alpn(const sockit_stream *st);
SOCKIT_API const char *sockit_stream_tls_server_name(const sockit_stream *st);
SOCKIT_API int sockit_stream_tls_peer_subject(const sockit_stream *st, char *buf, size_t size);
SOCKIT_API bool sockit_stream_tls_session_reused(const sockit_stream *st);

#ifdef __cplusplus
}
#endif

#endif /* SOCKIT_TLS_H */
