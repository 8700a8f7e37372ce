/* Options and output shared by the reference clients. */
#include "refclient.h"

#include <getopt.h>
#include <string.h>

#define REFCLIENT_DEFAULT_TIMEOUT 10.0

static const char *usage_for(int type)
{
    return type == SOCK_STREAM ? "sockit tcp-client [--host HOST] [--port PORT] [--send TEXT] "
                                 "[--timeout SECS] [--json] [--proxy URL] " TLS_OPTS_CLIENT_USAGE
                               : "sockit udp-client [--host HOST] [--port PORT] [--send TEXT] "
                                 "[--timeout SECS] [--json]";
}

static void help(int type, const char *default_send)
{
    printf("usage: %s\n\n", usage_for(type));
    printf("%s", type == SOCK_STREAM
                     ? "The reference TCP client: connect (every address of HOST, Happy\n"
                       "Eyeballs), send the message, print the reply (up to 64 KiB), close.\n"
                     : "The reference UDP client: send the message as one datagram, print the\n"
                       "reply datagram (up to 64 KiB, never cut).\n");
    printf("\n  --host HOST     server to reach (default localhost); HOST:PORT and [V6]:PORT\n"
           "                  also say the port\n"
           "  --port PORT     its port (default 12345)\n"
           "  --send TEXT     the message (default \"%s\")\n"
           "  --timeout SECS  one deadline for the whole exchange (default %.0f; 0: none)\n"
           "  --json          one JSON object per event on stdout instead of text\n",
           default_send, REFCLIENT_DEFAULT_TIMEOUT);
    if (type == SOCK_STREAM) {
        printf("  --proxy URL     through a proxy: socks5://[USER:PASS@]H[:P] (HOST\n"
               "                  resolved here), socks5h://... (by the proxy) or http://...\n"
               "                  (CONNECT); --timeout covers the proxy's handshake\n");
        tls_opts_help(false);
        printf("  --timeout bounds the handshake too. With --json the connected event tells\n"
               "  what was negotiated: tls_version, tls_cipher, tls_alpn, tls_peer.\n");
    }
}

int refclient_options(int argc, char **argv, int type, const char *default_send, refclient *rc)
{
    const char *usage = usage_for(type);
    *rc = (refclient){.send = default_send, .timeout = REFCLIENT_DEFAULT_TIMEOUT};
    const char *host = NULL, *port = NULL;
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"send", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 'w'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"proxy", required_argument, NULL, 'P'},
        TLS_OPTS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":H:p:s:w:jh", longopts, NULL)) != -1) {
        int status = 0;
        switch (opt) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 's':
            rc->send = optarg;
            break;
        case 'w':
            status = cli_parse_seconds(usage, "--timeout", optarg, &rc->timeout);
            if (status == 0 && rc->timeout == 0)
                rc->timeout = SOCKIT_BLOCKING; /* 0: no limit, as everywhere */
            break;
        case 'j':
            cli_json_enable(stdout);
            break;
        case 'P':
            /* A proxy tunnels TCP: udp-client has none. */
            if (type != SOCK_STREAM)
                return cli_usage_error(usage, "--proxy: a proxy tunnels TCP, not UDP");
            if (sockit_proxy_endpoint(optarg, NULL, 0, NULL) < 0)
                return cli_usage_error(usage, "--proxy: %s", sockit_errmsg());
            rc->proxy = optarg;
            break;
        case 'h':
            help(type, default_send);
            return CLI_OK;
        case ':':
            return cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            /* TLS over datagrams would be DTLS: udp-client has none. */
            status = type == SOCK_STREAM ? tls_opts_take(&rc->tls, opt, usage) : -1;
            if (status < 0)
                return cli_unknown_option(usage, argc, argv, -1);
        }
        if (status != 0)
            return status;
    }
    int tls_status = tls_opts_check(&rc->tls, false, usage);
    if (tls_status != 0)
        return tls_status;
    if (optind < argc)
        return cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    char why[512];
    if (hostport_options(host, port, 0, &rc->target, why, sizeof why) < 0)
        return cli_usage_error(usage, "%s", why);
    if (rc->target.is_unix)
        return cli_usage_error(usage, "--host %s: the reference clients speak TCP/UDP over IP",
                               host);
    rc->host = rc->target.host[0] != '\0' ? rc->target.host : "localhost";
    rc->port = rc->target.port >= 0 ? rc->target.port : 12345;
    return -1;
}

void refclient_reply(const char *data, size_t len, const sockit_addr *from)
{
    if (cli_json_on()) {
        char text[SOCKIT_ADDRSTRLEN];
        char shown[1025];
        size_t n = len < sizeof shown - 1 ? len : sizeof shown - 1;
        memcpy(shown, data, n);
        shown[n] = '\0';
        cli_event("reply", "from", 's', cli_addr_text(from, text, sizeof text), "bytes", 'i',
                  (long long)len, "text", 's', shown, NULL);
        return;
    }
    fwrite(data, 1, len, stdout);
    printf("\n");
    fflush(stdout);
}
