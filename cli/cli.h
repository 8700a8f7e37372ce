/* Shared pieces of the sockit command-line tool: the subcommand table, messages,
 * exit codes, argument parsing and --json events. Each subcommand is one cmd_*.c
 * file with one entry function, built only on the public API (sockit.h). */
#ifndef SOCKIT_CLI_H
#define SOCKIT_CLI_H

#include "hostport.h"

#include <sockit.h>

#include <stdbool.h>
#include <stdio.h>

/* Exit codes, documented in docs/sockit.1. */
#define CLI_OK    0 /* done */
#define CLI_FAIL  1 /* a network or system failure */
#define CLI_USAGE 2 /* bad usage: unknown option, bad port, missing argument */

/* The subcommand being run ("tcp-client"), for messages. Set by main. */
extern const char *cli_cmd;

/* "sockit: <message>\n" on stderr (and an error event with --json). Returns CLI_FAIL. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
int cli_fail(const char *fmt, ...);
/* The last library failure: "sockit: <sockit_errmsg()>", and with --json an error
 * event carrying the code's name. Returns CLI_FAIL. */
int cli_fail_lib(void);
/* "warning: <message>\n" on stderr (and a warning event with --json; with --json on
 * stderr, the event alone). For what goes on but should not go unnoticed. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void cli_warn(const char *fmt, ...);
/* One line on stderr (a -v line, netcat's warnings), control characters escaped as
 * in cli_fail: a line names what the user typed (a command, an address), which may
 * hold a newline. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void cli_line(const char *fmt, ...);
/* "sockit <cmd>: <message>" then "usage: <usage>" on stderr. Returns CLI_USAGE. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_usage_error(const char *usage, const char *fmt, ...);

/* The longest time any option means: a century, i.e. forever in practice. */
#define CLI_SECONDS_MAX 3.2e9

/* Argument parsers. Each returns 0, or prints a usage error naming the option and
 * the text and returns CLI_USAGE. */
int cli_parse_seconds(const char *usage, const char *option, const char *text, double *out);
int cli_parse_count(const char *usage, const char *option, const char *text, long min, long max,
                    long *out);

/* getopt's '?': "unknown option '-z'". Where a PORT operand may stand (port_min 0
 * or 1; -1 where none does), a negative number is said to be a port out of range,
 * since getopt took "-1" for an option. Returns CLI_USAGE. */
int cli_unknown_option(const char *usage, int argc, char **argv, int port_min);
/* The host and port operands by the rule of hostport.h. Returns 0, or prints the
 * reason as a usage error and returns CLI_USAGE. */
int cli_parse_operands(const char *usage, int n, char **args, unsigned flags, hostport *out);

/* For a "unix:PATH" host (anything else passes): if PATH exists and is not a
 * socket, says so ("sockit: unix:/tmp/x: the path exists and is a regular file, not
 * a socket (left alone)") and returns CLI_FAIL; else 0. listening: the path as bind
 * sees it (a symbolic link is in the way), else as connect does (followed). */
int cli_check_unix_path(const char *host, bool listening);

/* --json: one JSON object per line for each event, on the given stream. Off unless
 * cli_json_enable was called. Fields are triples (key, type, value) ended by NULL:
 * type 's' const char *, 'i' long long, 'f' double, 'b' int (as true/false).
 *   cli_event("connected", "peer", 's', text, "port", 'i', (long long)port, NULL); */
void cli_json_enable(FILE *stream);
bool cli_json_on(void);
void cli_event(const char *event, ...);
/* s as a JSON string, quotes included, for output cli_event cannot shape. */
void cli_json_string(FILE *f, const char *s);

/* The text form of an address ("127.0.0.1:5555"); "unix:(unnamed)" for a Unix
 * socket that never bound a name; "?" if it has none. */
const char *cli_addr_text(const sockit_addr *a, char *buf, size_t size);
/* Room for any name cli_peer_name writes. */
#define CLI_PEER_NAME_MAX (SOCKIT_ADDRSTRLEN + 64)
/* The name to show for the peer of connection s, whose address is a: as
 * cli_addr_text, but an unnamed Unix peer is told by its credentials
 * ("unix:(unnamed, pid 4242, uid 1000)"), since its address says nothing. */
const char *cli_peer_name(const sockit *s, const sockit_addr *a, char *buf, size_t size);

/* Raises the soft RLIMIT_NOFILE to the hard limit (a server of many clients needs
 * them; the soft default is meant for select()). Returns the soft limit now, at
 * most 1,000,000. */
long cli_raise_fd_limit(void);

/* A server subcommand is serving: says where ("Listening on ADDR", or a bound
 * event with --json) and sends SIGINT and SIGTERM to on_stop (which calls
 * sockit_server_shutdown). */
void cli_server_started(sockit_server *srv, void (*on_stop)(int));

/* Subcommands. */
int cmd_tcp_server(int argc, char **argv);
int cmd_tcp_client(int argc, char **argv);
int cmd_udp_server(int argc, char **argv);
int cmd_udp_client(int argc, char **argv);
int cmd_listen(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_echo(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_tls_cert(int argc, char **argv);
int cmd_forward(int argc, char **argv);

#endif
