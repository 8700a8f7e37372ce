/* --exec CMD and --sh-exec CMD of the netcat pair (ncat -e, -c): each connection
 * becomes a command's stdin and stdout (child.h starts it). A plain socket is
 * given to the command itself, with no copy in between, and sockit keeps no
 * descriptor of it; a TLS connection (or one holding bytes read ahead) is pumped
 * through a socketpair instead (pump.h). sockit's own stdin and stdout are not
 * used. Children are reaped from the loop on SIGCHLD; -v and --json say when each
 * starts and ends (netlog_exec). */
#ifndef SOCKIT_CLI_EXEC_H
#define SOCKIT_CLI_EXEC_H

#include "relay.h"

typedef struct exec_cmd {
    const char *text; /* as given */
    bool shell;       /* --sh-exec: /bin/sh -c text; else --exec's words */
} exec_cmd;

/* Runs the command on conn (taken) and waits until it has ended and, when pumped,
 * both directions are done. Returns the command's exit status as a shell gives it
 * (128+N for signal N), CLI_FAIL when it could not start (said) or when it exited 0
 * but the pumped TLS connection failed. SIGINT or SIGTERM send the command's
 * process group SIGTERM (SIGKILL if it is still there after EXEC_GRACE) and the
 * status is still the command's. */
int exec_one(sockit *conn, const char *peer, const exec_cmd *cmd);

/* listen -k --exec: accepts on listener (kept by the caller) as relay_serve does
 * (cfg->max_clients at once, cfg->gate, cfg->tls handshakes, cfg->wait for the
 * first client), and runs each client's own command. A command that cannot start
 * is said and its client closed; the listener goes on. SIGINT or SIGTERM stop
 * accepting at once, send every command's process group SIGTERM, SIGKILL those
 * left after EXEC_GRACE, and return CLI_OK; no client within cfg->wait is
 * CLI_FAIL. */
int exec_serve(sockit *listener, const relay_config *cfg, const exec_cmd *cmd);

/* Seconds a command has after SIGTERM before SIGKILL, when sockit is stopped. */
#define EXEC_GRACE 0.5

#endif
