/* The addresses of `sockit forward` (socat's address specifications, in sockit's
 * own spelling: TYPE:VALUE, the host and port as every subcommand reads them,
 * hostport.h):
 *   tcp:HOST:PORT        connect        tcp-listen:[HOST:]PORT   accept
 *   tls:HOST:PORT        TLS connect    tls-listen:[HOST:]PORT   TLS accept
 *   unix:PATH            connect        unix-listen:PATH         accept
 *   udp:HOST:PORT        a connected UDP socket
 *   udp-listen:[HOST:]PORT   bound; the first sender is the peer
 *   stdio or -           stdin and stdout
 *   file:PATH            PATH's bytes, then the end (what comes for it is discarded)
 *   create:PATH          PATH created (or emptied) and written; sends nothing
 *   exec:CMD             CMD's stdin and stdout (words split on blanks)
 *   system:CMD           /bin/sh -c CMD's stdin and stdout
 * Parsing is pure: no allocation, no resolver; a bad address gets one line that
 * names it and says why. */
#ifndef SOCKIT_CLI_FWD_ADDR_H
#define SOCKIT_CLI_FWD_ADDR_H

#include "hostport.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum fwd_kind {
    FWD_TCP,
    FWD_TCP_LISTEN,
    FWD_TLS,
    FWD_TLS_LISTEN,
    FWD_UNIX,
    FWD_UNIX_LISTEN,
    FWD_UDP,
    FWD_UDP_LISTEN,
    FWD_STDIO,
    FWD_FILE,
    FWD_CREATE,
    FWD_EXEC,
    FWD_SYSTEM,
} fwd_kind;

typedef struct fwd_addr {
    fwd_kind kind;
    const char *text;  /* as given, for messages */
    hostport hp;       /* tcp, tls, unix (host "unix:PATH", port -1) */
    const char *value; /* file, create: the path; exec, system: the command */
} fwd_addr;

/* Reads text into *out (which keeps pointers into text). 0, or -1 with the reason
 * in why[size]. */
int fwd_addr_parse(const char *text, fwd_addr *out, char *why, size_t size);
/* Whether the address waits for a client's connection (tcp-, tls-, unix-listen). */
bool fwd_addr_listens(const fwd_addr *a);
/* Whether it binds a port or a path before anything else: those that listen, and
 * udp-listen. */
bool fwd_addr_binds(const fwd_addr *a);
/* The address types, for --help and messages. */
#define FWD_ADDR_TYPES                                                                             \
    "tcp, tcp-listen, tls, tls-listen, unix, unix-listen, udp, udp-listen, stdio (-), file, "      \
    "create, exec, system"

#endif
