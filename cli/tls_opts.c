/* The TLS options of the CLI: parsing, checks, the context of each side, and what a
 * connection negotiated. */
#include "tls_opts.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *option_name(int opt)
{
    switch (opt) {
    case TLS_OPT_TLS:
        return "--tls";
    case TLS_OPT_CERT:
        return "--cert";
    case TLS_OPT_KEY:
        return "--key";
    case TLS_OPT_CA:
        return "--ca";
    case TLS_OPT_INSECURE:
        return "--insecure";
    case TLS_OPT_SNI:
        return "--sni";
    case TLS_OPT_ALPN:
        return "--alpn";
    default:
        return NULL;
    }
}

/* "h2,http/1.1": names of 1-255 bytes, comma-separated (sockit_tls_ctx_set_alpn's
 * rule, said before any context is made). */
static int check_alpn(const char *list, const char *usage)
{
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > 255)
            return cli_usage_error(usage, "--alpn '%s': each protocol name is 1-255 bytes", list);
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

int tls_opts_take(tls_opts *t, int opt, const char *usage)
{
    const char *name = option_name(opt);
    if (name == NULL)
        return -1;
    bool takes_value = opt != TLS_OPT_TLS && opt != TLS_OPT_INSECURE;
    if (takes_value && (optarg == NULL || optarg[0] == '\0'))
        return cli_usage_error(usage, "option '%s' needs a value", name);
    if (t->first == NULL)
        t->first = name;
    t->on = true;
    switch (opt) {
    case TLS_OPT_CERT:
        t->cert = optarg;
        break;
    case TLS_OPT_KEY:
        t->key = optarg;
        break;
    case TLS_OPT_CA:
        t->ca = optarg;
        break;
    case TLS_OPT_INSECURE:
        t->insecure = true;
        break;
    case TLS_OPT_SNI:
        t->sni = optarg;
        break;
    case TLS_OPT_ALPN:
        t->alpn = optarg;
        return check_alpn(optarg, usage);
    default:
        break;
    }
    return 0;
}

int tls_opts_check(const tls_opts *t, bool server, const char *usage)
{
    if (!t->on)
        return 0;
    if (t->key != NULL && t->cert == NULL)
        return cli_usage_error(usage, "--key needs --cert (the certificate the key goes with)");
    if (server) {
        if (t->cert == NULL)
            return cli_usage_error(usage,
                                   "%s needs --cert (and --key) on a server; make a pair with "
                                   "`sockit tls-cert`",
                                   t->first);
        if (t->sni != NULL)
            return cli_usage_error(usage, "--sni is for a client: a server answers to the name a "
                                          "client asks for");
        if (t->insecure)
            return cli_usage_error(usage, "--insecure is for a client: a server verifies no "
                                          "certificate unless --ca asks for client certificates");
        return 0;
    }
    if (t->insecure && t->ca != NULL)
        return cli_usage_error(usage, "--insecure and --ca exclude each other (--insecure verifies "
                                      "nothing)");
    return 0;
}

/* The library's message for a failed context call, then the context is dropped. */
static sockit_tls_ctx *ctx_failed(sockit_tls_ctx *ctx, int *out_status)
{
    *out_status = cli_fail_lib();
    sockit_tls_ctx_free(ctx);
    return NULL;
}

sockit_tls_ctx *tls_opts_context(const tls_opts *t, bool server, int *out_status)
{
    *out_status = 0;
    if (!t->on)
        return NULL;
    if (!sockit_has_tls()) {
        *out_status = cli_fail("%s: this sockit was built without TLS (OpenSSL)", t->first);
        return NULL;
    }
    sockit_tls_ctx *ctx = sockit_tls_ctx_new(server ? SOCKIT_TLS_SERVER : SOCKIT_TLS_CLIENT);
    if (ctx == NULL)
        return ctx_failed(NULL, out_status);
    if (t->cert != NULL && sockit_tls_ctx_load_cert_chain(ctx, t->cert, t->key) < 0)
        return ctx_failed(ctx, out_status);
    if (t->ca != NULL) {
        struct stat st;
        bool dir = stat(t->ca, &st) == 0 && S_ISDIR(st.st_mode);
        if (sockit_tls_ctx_load_verify_locations(ctx, dir ? NULL : t->ca, dir ? t->ca : NULL) < 0)
            return ctx_failed(ctx, out_status);
        /* A server given CAs requires client certificates they signed. */
        if (server && sockit_tls_ctx_set_verify(ctx, SOCKIT_TLS_VERIFY_REQUIRED) < 0)
            return ctx_failed(ctx, out_status);
    }
    if (t->insecure) {
        if (sockit_tls_ctx_set_verify(ctx, SOCKIT_TLS_VERIFY_NONE) < 0)
            return ctx_failed(ctx, out_status);
        cli_warn("--insecure: the server's certificate is not verified");
    }
    if (t->alpn != NULL && sockit_tls_ctx_set_alpn(ctx, t->alpn) < 0)
        return ctx_failed(ctx, out_status);
    return ctx;
}

const char *tls_opts_server_name(const tls_opts *t, const char *host)
{
    return t->sni != NULL ? t->sni : host;
}

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

sockit *tls_opts_connect(const tls_opts *t, sockit_tls_ctx *ctx, const char *host, int port,
                         double timeout, const sockit_addr *source)
{
    return tls_opts_connect_via(t, ctx, NULL, host, port, timeout, source);
}

sockit *tls_opts_connect_via(const tls_opts *t, sockit_tls_ctx *ctx, const char *proxy,
                             const char *host, int port, double timeout, const sockit_addr *source)
{
    bool via = proxy != NULL && proxy[0] != '\0';
    if (ctx == NULL)
        return sockit_create_connection_via(proxy, host, port, timeout, source);
    if (t->sni == NULL && !via)
        return sockit_tls_create_connection(host, port, timeout, source, ctx);
    /* Another name than the host, or a proxy's tunnel first: connect, then wrap for
     * the name with what is left of the one deadline. */
    double start = monotonic();
    sockit *s = sockit_create_connection_via(proxy, host, port, timeout, source);
    if (s == NULL)
        return NULL;
    double mode = sockit_gettimeout(s);
    int rc = 0;
    if (timeout >= 0) {
        double left = timeout - (monotonic() - start);
        rc = sockit_settimeout(s, left > 0.001 ? left : 0.001);
    }
    if (rc == 0)
        rc = sockit_tls_wrap(s, ctx, tls_opts_server_name(t, host));
    if (rc == 0)
        rc = sockit_settimeout(s, mode);
    if (rc < 0) {
        sockit_close(s); /* a close that succeeds keeps the wrap's message */
        return NULL;
    }
    return s;
}

void tls_opts_help(bool server)
{
    printf("\nTLS (sockit_tls.h; any of these implies --tls):\n"
           "  --tls           speak TLS: 1.2 at least, 1.3 preferred\n");
    if (server)
        printf("  --cert FILE     the certificate (PEM, chain leaf first) to present: a\n"
               "                  server needs one (`sockit tls-cert` makes a pair)\n"
               "  --key FILE      its private key (PEM; default: in the --cert file)\n"
               "  --ca FILE|DIR   require a client certificate signed by these CAs (a PEM\n"
               "                  file, or OpenSSL's hashed directory)\n"
               "  --alpn LIST     application protocols in order of preference (h2,http/1.1):\n"
               "                  the first one the client offered; a client offering none of\n"
               "                  them is refused\n");
    else
        printf("  --ca FILE|DIR   trust these CAs (a PEM file, or OpenSSL's hashed directory)\n"
               "                  instead of the system's; the server's certificate must be\n"
               "                  for the host operand (DNS name, or IP address SAN)\n"
               "  --insecure      accept any certificate, for any name (says so on stderr):\n"
               "                  for tests against self-signed servers only\n"
               "  --sni NAME      the name to send (SNI) and check the certificate against,\n"
               "                  instead of the host (needed for unix: hosts, unless\n"
               "                  --insecure)\n"
               "  --alpn LIST     application protocols to offer (h2,http/1.1)\n"
               "  --cert FILE     a client certificate, for servers that ask for one\n"
               "  --key FILE      its private key (default: in the --cert file)\n");
    if (!server)
        printf("  A failed handshake or verification exits 1, naming why (\"self-signed\n"
               "  certificate\", \"hostname mismatch\", the alert the server sent).\n");
}

bool tls_info_get(const sockit *s, tls_info *i)
{
    memset(i, 0, sizeof *i);
    if (!sockit_is_tls(s))
        return false;
    i->version = sockit_tls_version(s);
    i->cipher = sockit_tls_cipher(s);
    i->alpn = sockit_tls_alpn(s);
    int n = sockit_tls_peer_subject(s, i->peer_buf, sizeof i->peer_buf);
    if (n >= 0 || n == -ENOSPC)
        i->peer = i->peer_buf[0] != '\0' ? i->peer_buf : NULL;
    return true;
}

const char *tls_info_line(const tls_info *i, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s %s", i->version != NULL ? i->version : "?",
                     i->cipher != NULL ? i->cipher : "?");
    if (i->alpn != NULL && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, ", alpn %s", i->alpn);
    if (i->peer != NULL && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ", peer %s", i->peer);
    return buf;
}
