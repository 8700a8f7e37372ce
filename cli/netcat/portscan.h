/* connect -z: the port check of nc -z. Connects to each port of FIRST-LAST in turn
 * (one connection at a time, each within -w), sends nothing, closes at once, and
 * reports each port with -v (and a port event with --json). TCP only: a UDP port
 * cannot be told open by connecting, since a datagram socket connects without a
 * word to the peer. */
#ifndef SOCKIT_CLI_PORTSCAN_H
#define SOCKIT_CLI_PORTSCAN_H

#include "netopts.h"

/* Looks for a port range "FIRST-LAST" at the end of operand arg (the PORT operand,
 * or the PORT of HOST:PORT): copies arg without its "-LAST" into out[size] and sets
 * *last. Returns 1 when there is one, 0 when there is none (arg is copied whole),
 * -1 with the reason in why[why_size] when LAST is not a port 1-65535 or arg does
 * not fit. */
int portscan_split(const char *arg, char *out, size_t size, int *last, char *why, size_t why_size);

/* Checks o->port to o->scan_last on o->host. Returns CLI_OK when a port connected,
 * CLI_FAIL when none did, or at once when the failure is not a port's own (the
 * name does not resolve, the local end does not bind). */
int portscan_run(const netopts *o);

#endif
