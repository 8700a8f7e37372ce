/* The reference servers' shared loop: Python's `while True: accept/recvfrom ...`,
 * served by sockit_server in sequential mode so the CLI gets its EMFILE back-off and
 * signal-safe shutdown for free. */
#include "refserver.h"

#include <getopt.h>
#include <signal.h>
#include <string.h>

static sockit_server *running;

static void on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(running);
}

static const char *usage_for(int type)
{
    return type == SOCK_STREAM ? "sockit tcp-server [--host HOST] [--port PORT] [--reply TEXT] "
                                 "[--count N] [--timeout SECS] [--json] " TLS_OPTS_SERVER_USAGE
                               : "sockit udp-server [--host HOST] [--port PORT] [--reply TEXT] "
                                 "[--count N] [--json]";
}

static void help(int type, const char *default_reply)
{
    printf("usage: %s\n\n", usage_for(type));
    printf("%s", type == SOCK_STREAM
                     ? "The reference TCP server: for each client in turn, print 'Connected to\n"
                       "PEER', read one message (up to 1024 bytes), print 'Received: TEXT', send\n"
                       "the reply, close. A client silent for --timeout is closed, so one idle\n"
                       "client cannot hold up the next ones for longer than that.\n"
                     : "The reference UDP server: for each datagram (up to 65536 bytes, never\n"
                       "cut), print 'Received from PEER: TEXT' and send the reply back.\n");
    printf("\n  --host HOST     address to bind (default localhost); HOST:PORT and\n"
           "                  [V6]:PORT also say the port\n"
           "  --port PORT     port to bind, 0 for a free one (default 12345)\n"
           "  --reply TEXT    the reply (default \"%s\")\n"
           "  --count N       stop after N %s (default: serve until SIGINT/SIGTERM)\n",
           default_reply, type == SOCK_STREAM ? "clients" : "datagrams");
    if (type == SOCK_STREAM)
        printf("  --timeout SECS  close a client that has not sent, or not taken the reply,\n"
               "                  within SECS (default %g; 0: no limit)\n",
               REFSERVER_DEFAULT_TIMEOUT);
    printf("  --json          one JSON object per event on stdout instead of text\n");
    if (type == SOCK_STREAM) {
        tls_opts_help(true);
        printf("  Each client's handshake runs before it is served, within --timeout (0: 10 s);\n"
               "  one that fails is said on stderr, closed and not counted by --count.\n"
               "  \"Connected to PEER\" is followed by \"tls: VERSION CIPHER[, alpn P][, peer\n"
               "  SUBJECT]\"; --json adds tls_version, tls_cipher, tls_alpn and tls_peer to\n"
               "  the connected event.\n");
    }
}

void refserver_connected(const sockit *s, const char *peer_name)
{
    tls_info ti;
    bool tls = tls_info_get(s, &ti);
    char line[1024];
    if (cli_json_on() && tls)
        cli_event("connected", "peer", 's', peer_name, "tls_version", 's', ti.version, "tls_cipher",
                  's', ti.cipher, "tls_alpn", 's', ti.alpn, "tls_peer", 's', ti.peer, NULL);
    else if (cli_json_on())
        cli_event("connected", "peer", 's', peer_name, NULL);
    else if (tls)
        printf("Connected to %s\ntls: %s\n", peer_name, tls_info_line(&ti, line, sizeof line));
    else
        printf("Connected to %s\n", peer_name);
    fflush(stdout);
}

void refserver_received(const char *peer_name, bool with_peer, const char *data, size_t len)
{
    if (cli_json_on()) {
        /* JSON strings cannot carry arbitrary bytes; the text is cut at the first NUL. */
        char shown[1025];
        size_t n = len < sizeof shown - 1 ? len : sizeof shown - 1;
        memcpy(shown, data, n);
        shown[n] = '\0';
        cli_event("received", "peer", 's', peer_name, "bytes", 'i', (long long)len, "text", 's',
                  shown, NULL);
        return;
    }
    /* The Python originals' lines: tcp_server.py names no peer here, udp_server.py does. */
    if (with_peer)
        printf("Received from %s: ", peer_name);
    else
        printf("Received: ");
    fwrite(data, 1, len, stdout);
    printf("\n");
    fflush(stdout);
}

/* A request that failed: the server says which client and why, and goes on. */
static void refserver_error(sockit_request *req, int code, void *user)
{
    refserver *rs = user;
    if (req != NULL && code == SOCKIT_ETIMEOUT && rs->waiting_for != NULL)
        cli_fail("client %s: %s within %g s (--timeout), closed", rs->peer, rs->waiting_for,
                 rs->timeout);
    else
        cli_fail("%s", sockit_errmsg());
    rs->waiting_for = NULL; /* the next failure may be a handshake's, before any wait */
}

int refserver_run(int argc, char **argv, int type, const char *default_reply,
                  sockit_handler_fn handler)
{
    const char *usage = usage_for(type);
    refserver rs = {.reply = default_reply, .timeout = REFSERVER_DEFAULT_TIMEOUT};
    const char *host = NULL, *port = NULL;
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"reply", required_argument, NULL, 'r'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'w'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        TLS_OPTS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":H:p:r:n:w:jh", longopts, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 'w':
            if (type != SOCK_STREAM) /* a datagram server holds no connection */
                return cli_usage_error(usage, "unknown option '--timeout'");
            rc = cli_parse_seconds(usage, "--timeout", optarg, &rs.timeout);
            break;
        case 'r':
            rs.reply = optarg;
            break;
        case 'n':
            rc = cli_parse_count(usage, "--count", optarg, 1, 1000000000L, &rs.count);
            break;
        case 'j':
            cli_json_enable(stdout);
            break;
        case 'h':
            help(type, default_reply);
            return CLI_OK;
        case ':':
            return cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            /* TLS over datagrams would be DTLS: udp-server has none. */
            rc = type == SOCK_STREAM ? tls_opts_take(&rs.tls, opt, usage) : -1;
            if (rc < 0)
                return cli_unknown_option(usage, argc, argv, -1);
        }
        if (rc != 0)
            return rc;
    }
    int tls_rc = tls_opts_check(&rs.tls, true, usage);
    if (tls_rc != 0)
        return tls_rc;
    if (optind < argc)
        return cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    hostport target;
    char why[512];
    if (hostport_options(host, port, HOSTPORT_LISTENER, &target, why, sizeof why) < 0)
        return cli_usage_error(usage, "%s", why);
    rs.host = target.host[0] != '\0' ? target.host : "localhost";
    rs.port = target.is_unix ? 0 : target.port >= 0 ? target.port : 12345;
    int unix_rc = target.is_unix ? cli_check_unix_path(rs.host, true) : 0;
    if (unix_rc != 0)
        return unix_rc;
    int tls_status;
    sockit_tls_ctx *tls = tls_opts_context(&rs.tls, true, &tls_status);
    if (tls_status != 0)
        return tls_status;

    /* Sequential, as the reference is: the timeout bounds how long one client can
     * keep the others waiting. 0 means no limit, as for every time option. */
    sockit_server_config cfg = {.handler = handler,
                                .user = &rs,
                                .mode = SOCKIT_SEQUENTIAL,
                                .idle_timeout = type == SOCK_STREAM ? rs.timeout : 0,
                                .handle_error = refserver_error,
                                .tls = tls,
                                /* 0: the library's 10 s, "no limit" being no option here */
                                .tls_handshake_timeout = rs.timeout};
    sockit_server *srv = sockit_server_new(rs.host, rs.port, type, &cfg);
    sockit_tls_ctx_free(tls); /* the server keeps its own reference */
    if (srv == NULL)
        return cli_fail_lib();
    running = srv;
    cli_server_started(srv, on_signal);

    int rc = 0;
    const char *reason = "signal";
    if (rs.count == 0) {
        rc = sockit_server_serve_forever(srv);
    } else {
        while (rs.served < rs.count && (rc = sockit_server_handle_request(srv, -1)) == 1)
            ;
        if (rs.served >= rs.count)
            reason = "count";
    }
    int status = CLI_OK;
    if (rc < 0) {
        status = cli_fail_lib();
        reason = "error";
    }
    sockit_server_close(srv);
    running = NULL;
    cli_event("exit", "reason", 's', reason, "requests", 'i', (long long)rs.served, "bytes_in", 'i',
              rs.bytes_in, "bytes_out", 'i', rs.bytes_out, NULL);
    return status;
}
