/* The one rule by which every subcommand reads a host and a port, so that whatever
 * the tool prints (127.0.0.1:80, [::1]:80, unix:/path) it also reads back:
 *   1. "unix:PATH" or "unix:@NAME" is a Unix socket, and takes no port;
 *   2. "[V6]" is an IPv6 host, optionally followed by ":PORT";
 *   3. a text with two or more colons (and no brackets) is an IPv6 host;
 *   4. exactly one colon splits HOST:PORT;
 *   5. a lone number where a listener takes [HOST] PORT is the port.
 * A port given twice (in HOST:PORT and again on its own) is an error. The parsers
 * are pure: no allocation, no messages, no resolver (a service name for the port is
 * looked up in /etc/services, as sockit_parse_port does). */
#ifndef SOCKIT_CLI_HOSTPORT_H
#define SOCKIT_CLI_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

/* The longest host name the resolver takes (NI_MAXHOST), NUL included; a unix:
 * host is at most "unix:" plus the 107 bytes of sun_path. */
#define HOSTPORT_HOST_MAX 1025
/* The longest Unix socket path (sun_path without its NUL). */
#define HOSTPORT_UNIX_PATH_MAX 107

typedef struct hostport {
    char host[HOSTPORT_HOST_MAX]; /* "" when none was given; "unix:..." kept whole */
    bool is_unix;
    int port; /* -1 when none was given */
} hostport;

/* What the texts are read for. */
enum {
    HOSTPORT_LISTENER = 1, /* HOST may be left out, a lone number is the port, port 0 is
                              allowed (a free port) */
};

/* Reads one text that names a host, a port, or both (rules 1-5; rule 5 only with
 * HOSTPORT_LISTENER). Returns 0 and fills *out, or -1 and writes a one-line reason
 * naming the text into why[size] (*out is then unspecified). */
int hostport_split(const char *text, unsigned flags, hostport *out, char *why, size_t size);

/* Reads a command's operands: HOST PORT, HOST:PORT, [V6]:PORT, [V6] PORT, unix:PATH,
 * and with HOSTPORT_LISTENER also PORT alone. n is how many there are. Returns 0, or
 * -1 with the reason in why[size]: a missing host or port, an extra operand, a bad
 * port, a port given twice, a bad Unix path. */
int hostport_operands(int n, char *const *args, unsigned flags, hostport *out, char *why,
                      size_t size);

/* Applies the port of a --port option to what --host said (both optional, NULL when
 * not given): the same checks as hostport_operands, for the reference subcommands. */
int hostport_options(const char *host, const char *port, unsigned flags, hostport *out, char *why,
                     size_t size);

#endif
