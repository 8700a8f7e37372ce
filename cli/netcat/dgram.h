/* The datagram relay of the netcat pair (-u): each stdin line, '\n' included, is
 * one datagram (a line longer than DGRAM_MAX is sent in DGRAM_MAX pieces, a last
 * line without '\n' as is); each datagram received is written to stdout whole and
 * unchanged. Datagrams are never cut: the receive buffer holds 65536 bytes, and a
 * bigger (Unix) datagram is reported as SOCKIT_ETRUNCATED and dropped. */
#ifndef SOCKIT_CLI_DGRAM_H
#define SOCKIT_CLI_DGRAM_H

#include "relay.h"

/* The biggest UDP payload over IPv4; stdin lines are cut into pieces this big. */
#define DGRAM_MAX 65507
/* The receive buffer: any UDP datagram fits; a longer Unix one is reported. */
#define DGRAM_RECV 65536

/* The length of the next datagram at the start of the stdin buffer buf[len] (of
 * size cap; eof: stdin has ended): up to and including the first '\n', else all of
 * a full buffer, else at end of input what is left; 0 while none is complete. */
size_t dgram_next(const char *buf, size_t len, size_t cap, bool eof);
/* True when a datagram can be sent back to sender a: an IP address, or a Unix
 * sender that bound a name (one that never bound has an empty address). */
bool dgram_answerable(const sockit_addr *a);

/* Relays between stdin/stdout and s (taken: closed before returning). connected:
 * s is connected (connect -u), send to its peer; else (listen -u) reply to the last
 * sender, holding stdin until someone has sent. first_wait >= 0 (listen -w): fail
 * if no datagram arrives within that many seconds. Ends on -q after stdin ends
 * (cfg->linger), -i idle, SIGINT/SIGTERM, a closed stdout, or (connected) an error
 * such as ECONNREFUSED. Returns the exit status. */
int dgram_relay(sockit *s, bool connected, const relay_config *cfg, double first_wait);

#endif
