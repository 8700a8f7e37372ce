/* A bounded two-way copy on the loop between a network connection and a local
 * socket, for a connection a command cannot take itself: TLS (the command speaks
 * plaintext), or a socket holding bytes read ahead in its object (a proxy's
 * tunnel). --exec gives the command one end of a socketpair and pumps the other.
 *
 * Each direction has one 64 KiB buffer: a side is read while its direction has
 * room, so a slow reader on one side stops the other side being read (TCP's window
 * then slows the sender) and nothing grows. End of stream is passed on as a
 * half-close (shutdown SHUT_WR; on TLS, close_notify first), so each side still
 * gets the whole answer after it has ended its own. A TLS call that would block
 * waits for what TLS waits for, and a send is retried from the same bytes. */
#ifndef SOCKIT_CLI_PUMP_H
#define SOCKIT_CLI_PUMP_H

#include <sockit.h>

#include <stdbool.h>

typedef struct pump pump;
/* The pump ended: both directions reached end of stream and were passed on, or a
 * side failed (failed: the network side, said with netlog_warn; a failure of the
 * local side, the command having gone away, is no failure of the session). Both
 * sockets are closed and the pump freed before this is called. */
typedef void (*pump_done_fn)(bool failed, void *user);

/* Starts pumping between net and local, both taken (closed on failure too); name
 * names the peer in messages. Returns NULL when out of memory (said). */
pump *pump_new(sockit_loop *loop, sockit *net, sockit *local, const char *name, pump_done_fn done,
               void *user);
/* Stops at once, closing both sockets; done is not called. NULL is a no-op. */
void pump_close(pump *p);

#endif
