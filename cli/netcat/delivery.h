/* Whether the input of a single connection reached the peer (the check of
 * sockit(1)'s "The relay"): input is delivered when all of it was read, sent and
 * acknowledged by the peer's TCP (for a Unix socket, read by the peer) before the
 * connection ended. */
#ifndef SOCKIT_CLI_DELIVERY_H
#define SOCKIT_CLI_DELIVERY_H

#include "cli.h"

/* What the relay knows of the input when the connection ended. */
typedef struct delivery {
    long long stdin_read; /* bytes read from stdin */
    long long bytes_out;  /* bytes written to the connection */
    bool stdin_eof;       /* stdin was read to its end */
    bool stdin_tty;       /* stdin is a terminal: its unread input is nobody's loss */
} delivery;

/* Bytes written to s that its peer has not acknowledged yet (SIOCOUTQ; 0 where it
 * cannot be asked). */
int delivery_unacknowledged(const sockit *s);

/* After the peer of s (shown as name) ended the connection for reason ("peer",
 * "reset", "error"): the bytes of input that were not delivered, said as
 * "sockit: N bytes of input not delivered to NAME: ..."; 0, and nothing said, when
 * all were. */
long long delivery_check(const sockit *s, const char *name, const char *reason, const delivery *d);

#endif
