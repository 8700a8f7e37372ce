/* What the netcat pair says on stderr: -v text or --json events (never both, so
 * stderr stays parseable with --json). stdout carries only the data. */
#ifndef SOCKIT_CLI_NETLOG_H
#define SOCKIT_CLI_NETLOG_H

#include "cli.h"

void netlog_verbose(bool on);

/* "listening on [::]:9000"; the bound event. dualstack adds "(IPv6 and IPv4)". */
void netlog_bound(const sockit_addr *addr, bool dualstack);
/* "connection from 127.0.0.1:5555" (listen) or "connected to 127.0.0.1:9000";
 * peer is the name cli_peer_name gives. When s is a TLS socket (else NULL or plain),
 * -v adds "tls: TLSv1.3 TLS_AES_256_GCM_SHA384, alpn h2, peer CN=localhost" and the
 * event tls_version, tls_cipher, tls_alpn and tls_peer (null when absent). */
void netlog_connected(const char *peer, bool accepted, const sockit *s);
/* "closed by peer 127.0.0.1:5555", "idle timeout 127.0.0.1:5555", ...: why a
 * connection ended. reason is one word for --json: "peer", "reset", "idle",
 * "linger", "stdout", "signal", "error" ("queue_full" is netlog_dropped's). */
void netlog_closed(const char *peer, const char *reason);
/* --broker: peer was disconnected because its output queue would have grown past
 * limit (queued bytes waiting): "sockit: disconnected PEER: ..." on stderr, shown
 * without -v too, or a closed event with reason "queue_full". */
void netlog_dropped(const char *peer, long long queued, long long limit);
/* listen: peer was refused by the gate (gate.h). reason is one word for --json:
 * "deny" (detail: the --deny rule it matched), "not_allowed" (no --allow rule
 * matched), "rate" (detail: the --conn-rate N/SECS it went over); datagram: a -u
 * sender whose datagrams are dropped. -v: "refused 127.0.0.2:5555: matches --deny
 * 127.0.0.0/8", "dropped datagrams from ...: not in --allow"; --json: a denied
 * event {peer, reason, rule, datagram}. */
void netlog_denied(const char *peer, const char *reason, const char *detail, bool datagram);
/* listen -u -k: a datagram from peer, a new sender, was dropped since all max
 * sessions are in use (-m); dropped counts those datagrams so far. -v: "dropped
 * datagram from 127.0.0.1:5555: all 2 sessions in use (-m), 3 dropped so far";
 * --json: a denied event {peer, reason "full", rule null, datagram true,
 * max_sessions, dropped}. The caller says it at most once a second. */
void netlog_full(const char *peer, long max, long long dropped);
/* --exec: the command for peer started as pid: "running 'cat' (pid 4242) for
 * 127.0.0.1:5555", or an exec event {peer, pid, command}. */
void netlog_exec(const char *peer, const char *command, long pid);
/* --exec: the command for peer ended with status (as a shell's $?): "pid 4242 for
 * 127.0.0.1:5555 exited with status 0", or an exec_exit event {peer, pid, status}. */
void netlog_exec_exit(const char *peer, long pid, int status);
/* A failure that does not end the program: "sockit: ..." (or an error event with
 * --json), shown without -v too. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void netlog_warn(const char *fmt, ...);
/* The exit event: reason, bytes received from and sent to the network, and (when
 * undelivered >= 0) the bytes of input that never reached the peer. */
void netlog_exit(const char *reason, long long bytes_in, long long bytes_out,
                 long long undelivered);

#endif
