/* Options shared by `sockit listen` and `sockit connect` (the netcat pair): one
 * parser, one help page per command, so the two cannot drift apart. */
#ifndef SOCKIT_CLI_NETOPTS_H
#define SOCKIT_CLI_NETOPTS_H

#include "cli.h"
#include "gate.h"
#include "relay.h"
#include "tls_opts.h"

/* connect -z without -w: how long each port may take to answer. */
#define NETOPTS_SCAN_WAIT 5.0

/* Descriptors `listen -k` keeps for itself (stdio, the listener, the loop's own)
 * out of the open-file limit; the rest are for clients, the default -m. */
#define NETOPTS_FD_RESERVE 32

typedef struct netopts {
    bool listen;      /* parsed for `listen` (else `connect`) */
    bool udp;         /* -u */
    bool keep;        /* -k: keep listening, serve clients concurrently */
    int broker;       /* --broker, --chat (RELAY_BROKER, RELAY_CHAT; they imply -k) */
    bool verbose;     /* -v */
    bool hexdump;     /* -x */
    bool half_close;  /* SHUT_WR on stdin EOF; off with --no-shutdown */
    int family;       /* AF_UNSPEC, or AF_INET / AF_INET6 for -4 / -6 */
    long max_clients; /* -m; 0 when not given (netopts_max_clients decides) */
    double wait;      /* -w: connect / first-accept timeout, < 0 for none */
    double idle;      /* -i: idle timeout, < 0 for none */
    double linger;    /* -q: after stdin EOF, < 0 to wait for the peer */
    const char *host; /* NULL: every interface (listen only); points into target */
    bool is_unix;     /* host is "unix:/path" or "unix:@name" */
    int port;         /* 0 for a Unix host; listen may ask for 0 (a free port) */
    hostport target;  /* the operands as read */
    tls_opts tls;     /* --tls, --cert, ... (tls_opts.h) */
    const char *exec; /* -e/--exec or -c/--sh-exec CMD (exec.h); NULL without */
    bool exec_shell;  /* -c/--sh-exec: CMD runs as /bin/sh -c CMD */
    /* connect only */
    const char *source_text; /* -s as given; NULL without */
    sockit_addr source;      /* -s, port 0 */
    int source_port;         /* -p; 0 without */
    bool scan;               /* -z */
    int scan_last;           /* -z: the last port of the range (port is the first) */
    const char *proxy;       /* --proxy URL; NULL without */
    /* listen only */
    gate gate; /* --allow, --deny, --allowfile, --denyfile, --conn-rate */
} netopts;

/* Parses argv into *o. Returns -1 to go on (free *o with netopts_free then), or the
 * exit status to return at once (nothing to free): CLI_OK after --help, CLI_USAGE
 * after a usage error, CLI_FAIL when a rule file cannot be read (already printed). */
int netopts_parse(int argc, char **argv, bool listen, netopts *o);
/* Frees what parsing allocated: listen's gate (rules and rate table); connect
 * allocates nothing. */
void netopts_free(netopts *o);

/* The default -m: raises the soft RLIMIT_NOFILE to the hard limit (as Go programs
 * do at start) and leaves NETOPTS_FD_RESERVE of it out; at least 1. */
long netopts_max_clients(void);

/* The usage line of the command, for usage errors found after parsing. */
const char *netopts_usage(bool listen);

#endif
