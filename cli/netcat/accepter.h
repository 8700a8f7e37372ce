/* The listener of `listen -k` and `--broker` on the loop: accepts until the backlog
 * is empty (EAGAIN) on every readiness, not one connection per pass; stops watching
 * the listener while max clients are connected (the others wait in the backlog),
 * and for EMFILE_BACKOFF ms after EMFILE/ENFILE, so a shortage of descriptors
 * neither spins nor ends the server. */
#ifndef SOCKIT_CLI_ACCEPTER_H
#define SOCKIT_CLI_ACCEPTER_H

#include "gate.h"

#include <sockit.h>
#include <sockit_tls.h>

typedef struct accepter accepter;
/* Each accepted connection, taken by the callee (blocking as accepted; use
 * MSG_DONTWAIT). */
typedef void (*accepter_fn)(sockit *conn, const sockit_addr *peer, void *user);

/* Starts accepting on listener (made non-blocking; kept by the caller) until max
 * connections are counted. Returns NULL on failure (out of memory). */
accepter *accepter_new(sockit_loop *loop, sockit *listener, long max, accepter_fn cb, void *user);
/* One connection fewer: accepting resumes if it had stopped at max. */
void accepter_release(accepter *a);
/* TLS: every accepted connection first runs its server handshake with ctx on the
 * loop (non-blocking, so one slow client holds up no one), within timeout seconds;
 * cb sees it only once the handshake is done, as a blocking TLS socket. A handshake
 * that fails or times out is said (netlog_warn), closed and not counted. ctx stays
 * the caller's, to keep until accepter_close. Call before the loop runs. */
void accepter_tls(accepter *a, sockit_tls_ctx *ctx, double timeout);
/* Admission: every accepted connection first passes g (gate.h), before it is
 * counted or its handshake starts; a refused one is reset at once (gate_refuse) and
 * cb never sees it. g (NULL: everyone) stays the caller's. Call before the loop
 * runs. */
void accepter_gate(accepter *a, gate *g);
/* Stops accepting for good and frees it, closing connections still in their
 * handshake. NULL is a no-op. */
void accepter_close(accepter *a);

#endif
