/* The local end of `sockit connect` (-s ADDR, -p PORT), the way every connect of
 * the netcat pair is made.
 *
 * Without -p the connection goes through sockit_create_connection with -s (or the
 * wildcard of -4/-6) as its source, so Happy Eyeballs still races the addresses of
 * that family. A fixed port cannot be shared by attempts in flight at once, so with
 * -p the attempts are made one at a time, on one socket per family bound to the
 * port (sockit_connect: one deadline for the name and every address). That socket
 * sets SO_REUSEADDR: on Linux it still refuses a port some socket listens on or
 * holds in a live connection, but lets `connect -p` run again at once although the
 * last run's connection sits in TIME_WAIT on that port. */
#ifndef SOCKIT_CLI_SOURCE_H
#define SOCKIT_CLI_SOURCE_H

#include "netopts.h"

/* Reads -s: a numeric IPv4 or IPv6 address, IPv6 optionally in brackets. Returns
 * 0, or -1 (the text is not one: host names are not looked up). */
int source_parse(const char *text, sockit_addr *out);
/* The one family the options leave: -s's, -4/-6's, or a numeric host's; AF_UNSPEC
 * when only the resolver can tell (a host name). */
int source_family(const netopts *o);
/* At start, with -s: binds a throwaway socket to it, so an address that is not this
 * host's is said as such before any connection is tried. 0, or CLI_FAIL (said). */
int source_check(const netopts *o);
/* Connects to o->host:port within timeout seconds (< 0: none) from -s/-p, and with
 * tls (not NULL) makes the connection TLS within the same deadline. The socket
 * keeps the timeout mode sockit_create_connection gives. NULL with the library's
 * error; then *local (when not NULL) says whether the failure would be the same for
 * any port (resolving the name, binding the local end) rather than this port's. */
sockit *source_connect(const netopts *o, sockit_tls_ctx *tls, int port, double timeout,
                       bool *local);
/* Says the library's last failure (cli_fail_lib), adding, when -s or -4/-6 left
 * the resolver one family and the name has no address of it, which family that
 * was. Returns CLI_FAIL. */
int source_fail(const netopts *o);
/* Binds datagram socket s of the given family to -s and -p (either may be absent;
 * without both it does nothing and the kernel picks at connect). 0 or a code. */
int source_bind_dgram(const netopts *o, sockit *s, int family);

#endif
