/* The TLS options shared by connect, listen, tcp-client and tcp-server: one parser,
 * one set of checks, one context builder and one way to tell what was negotiated,
 * so the four commands cannot drift apart. Built on sockit_tls.h only.
 *
 *   --tls          speak TLS (implied by every option below)
 *   --cert FILE    the certificate (chain) this side presents; a server needs one
 *   --key FILE     its private key (default: in the --cert file)
 *   --ca FILE|DIR  trust these CAs instead of the system's (a directory: OpenSSL's
 *                  hashed layout); on a server, require client certificates they signed
 *   --insecure     client: accept any certificate (a warning says so)
 *   --sni NAME     client: the name sent and checked instead of the host operand
 *   --alpn LIST    application protocols, "h2,http/1.1" */
#ifndef SOCKIT_CLI_TLS_OPTS_H
#define SOCKIT_CLI_TLS_OPTS_H

#include "cli.h"

#include <getopt.h>
#include <sockit_tls.h>

/* getopt_long values of the TLS options: past every character any command uses. */
enum {
    TLS_OPT_TLS = 0x7401,
    TLS_OPT_CERT,
    TLS_OPT_KEY,
    TLS_OPT_CA,
    TLS_OPT_INSECURE,
    TLS_OPT_SNI,
    TLS_OPT_ALPN,
};

/* The entries to put in a command's struct option table, before its terminator. */
#define TLS_OPTS_LONGOPTS                                                                          \
    {"tls", no_argument, NULL, TLS_OPT_TLS}, {"cert", required_argument, NULL, TLS_OPT_CERT},      \
        {"key", required_argument, NULL, TLS_OPT_KEY},                                             \
        {"ca", required_argument, NULL, TLS_OPT_CA},                                               \
        {"insecure", no_argument, NULL, TLS_OPT_INSECURE},                                         \
        {"sni", required_argument, NULL, TLS_OPT_SNI},                                             \
    {                                                                                              \
        "alpn", required_argument, NULL, TLS_OPT_ALPN                                              \
    }

/* The options as they appear in a usage line. */
#define TLS_OPTS_CLIENT_USAGE                                                                      \
    "[--tls] [--ca FILE|DIR | --insecure] [--sni NAME] [--alpn LIST] [--cert FILE [--key FILE]]"
#define TLS_OPTS_SERVER_USAGE "[--tls --cert FILE [--key FILE]] [--ca FILE|DIR] [--alpn LIST]"

typedef struct tls_opts {
    bool on;           /* --tls, or any other TLS option */
    bool insecure;     /* --insecure */
    const char *cert;  /* --cert */
    const char *key;   /* --key */
    const char *ca;    /* --ca */
    const char *sni;   /* --sni */
    const char *alpn;  /* --alpn */
    const char *first; /* the first TLS option given ("--cert"), for messages */
} tls_opts;

/* One getopt_long result: a TLS option is taken into *t (its value is optarg).
 * Returns 0 when taken, -1 when opt is not a TLS option, CLI_USAGE after a usage
 * error (an empty value, a bad --alpn list). */
int tls_opts_take(tls_opts *t, int opt, const char *usage);

/* After parsing: the combinations that make no sense for the side are usage errors
 * ("sockit listen: --tls needs --cert (and --key) on a server; ..."). 0 or
 * CLI_USAGE. */
int tls_opts_check(const tls_opts *t, bool server, const char *usage);

/* The context for the side, NULL without TLS options (and *out_status 0). On a
 * failure (a file that does not load, a library without TLS) the message is printed
 * and NULL returned with *out_status CLI_FAIL. --insecure warns here, once. */
sockit_tls_ctx *tls_opts_context(const tls_opts *t, bool server, int *out_status);

/* The name a client sends and checks: --sni, else host. */
const char *tls_opts_server_name(const tls_opts *t, const char *host);

/* Connects to host:port (sockit_create_connection's rules) and, with ctx, makes the
 * connection TLS within the same deadline: sockit_tls_create_connection, or with
 * --sni a connect then sockit_tls_wrap for that name. The socket keeps the timeout
 * mode sockit_create_connection gives it. NULL with the library's error. */
sockit *tls_opts_connect(const tls_opts *t, sockit_tls_ctx *ctx, const char *host, int port,
                         double timeout, const sockit_addr *source);
/* The same through a proxy (sockit_create_connection_via; proxy NULL or "": none):
 * the tunnel first, then TLS to host inside it. */
sockit *tls_opts_connect_via(const tls_opts *t, sockit_tls_ctx *ctx, const char *proxy,
                             const char *host, int port, double timeout, const sockit_addr *source);

/* The help lines of the options, in the commands' help layout. */
void tls_opts_help(bool server);

/* What a TLS connection negotiated, for -v and --json. */
typedef struct tls_info {
    const char *version; /* "TLSv1.3" */
    const char *cipher;  /* "TLS_AES_256_GCM_SHA384" */
    const char *alpn;    /* NULL when none */
    const char *peer;    /* the peer certificate's subject, NULL when it sent none */
    char peer_buf[512];
} tls_info;

/* Fills *i for a TLS socket after its handshake; false for a plain one. */
bool tls_info_get(const sockit *s, tls_info *i);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384, alpn h2, peer CN=localhost" (alpn and peer only
 * when present) into buf. */
const char *tls_info_line(const tls_info *i, char *buf, size_t size);

#endif
