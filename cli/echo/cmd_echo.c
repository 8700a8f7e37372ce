/* sockit echo: an echo server on the event-driven server (SOCKIT_EVENTS): every
 * connection is a stream on a loop (one, or --loops N), and what it sends comes back
 * as it arrives. A
 * peer that does not read what it sent back is not allowed to grow the server's
 * memory: past the stream's high watermark the server stops reading from it until
 * its queue drains. With -u each datagram goes back to its sender, the replies to
 * one receive batch in one sendmmsg. */
#include "cli.h"
#include "tls_opts.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#define ECHO_USAGE                                                                                 \
    "sockit echo [-u] [--loops N] [--idle SECS] [--max-connections N] [--grace SECS] [--spin US] " \
    "[--json] " TLS_OPTS_SERVER_USAGE " [HOST] PORT | unix:PATH"

/* Atomic: with --loops N the callbacks run in N threads. */
typedef struct echo_stats {
    atomic_llong connections, bytes, datagrams, dropped;
    bool json;
} echo_stats;

static sockit_server *running;

static void on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(running);
}

static void on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    echo_stats *es = user;
    atomic_fetch_add(&es->bytes, (long long)len);
    if (sockit_stream_write(st, data, len) < 0) {
        cli_fail("%s", sockit_errmsg());
        sockit_stream_abort(st);
        return;
    }
    if (sockit_stream_write_blocked(st))
        sockit_stream_pause(st);
}

static void on_drain(sockit_stream *st, void *user)
{
    (void)user;
    sockit_stream_resume(st);
}

static void on_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    echo_stats *es = user;
    /* A client that resets or idles out is the client's business, unless asked. */
    if (es->json)
        cli_event("error", "code", 's', sockit_errname(code), "message", 's', sockit_errmsg(),
                  NULL);
}

static void on_connect(sockit_server *srv, sockit_stream *st, const sockit_addr *peer, void *user)
{
    (void)srv;
    (void)st;
    echo_stats *es = user;
    atomic_fetch_add(&es->connections, 1);
    if (es->json) {
        char text[SOCKIT_ADDRSTRLEN];
        cli_event("connected", "peer", 's', cli_addr_text(peer, text, sizeof text), NULL);
    }
}

static const sockit_stream_callbacks echo_callbacks = {
    .on_data = on_data,
    .on_drain = on_drain,
    .on_error = on_error,
};

static void on_datagram(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user)
{
    echo_stats *es = user;
    atomic_fetch_add(&es->datagrams, 1);
    atomic_fetch_add(&es->bytes, (long long)len);
    /* An unnamed Unix sender cannot be answered; a truncated datagram is not echoed
     * cut (the client would take it for the whole). */
    if (from == NULL || truncated) {
        atomic_fetch_add(&es->dropped, 1);
        if (es->json && truncated)
            cli_event("error", "code", 's', "ETRUNCATED", "message", 's',
                      "datagram longer than 65536 bytes, not echoed", NULL);
        return;
    }
    if (sockit_datagram_send(d, data, len, from) < 0) {
        /* The queue is full: UDP drops, and so does an echo that cannot keep up. */
        atomic_fetch_add(&es->dropped, 1);
        if (es->json)
            cli_event("error", "code", 's', sockit_errname(sockit_errcode()), "message", 's',
                      sockit_errmsg(), NULL);
    }
}

static void on_datagram_error(sockit_datagram *d, int code, void *user)
{
    (void)d;
    echo_stats *es = user;
    if (es->json)
        cli_event("error", "code", 's', sockit_errname(code), "message", 's', sockit_errmsg(),
                  NULL);
}

static const sockit_datagram_callbacks echo_datagram_callbacks = {
    .on_datagram = on_datagram,
    .on_error = on_datagram_error,
};

static void help(void)
{
    printf("usage: %s\n\n", ECHO_USAGE);
    printf("An echo server: every byte a client sends comes back to it. All clients are\n"
           "served at once by an event loop (sockit_server in SOCKIT_EVENTS mode; several\n"
           "with --loops), so one slow or idle client never holds up another.\n\n"
           "  -u, --udp             echo datagrams (UDP, or a Unix datagram socket): each\n"
           "                        goes back to its sender, whole (a datagram over 64 KiB\n"
           "                        is not echoed cut: it is dropped and counted); --idle,\n"
           "                        --max-connections and --grace do not apply\n"
           "  --loops N             N event loops, each in a thread of its own (1-256;\n"
           "                        default 1): TCP and UDP clients are spread over them\n"
           "                        by the kernel (SO_REUSEPORT); a Unix socket is shared\n"
           "  --idle SECS           close a client that sends and takes nothing for SECS\n"
           "                        (default 300; 0: never)\n"
           "  --max-connections N   at most N clients at once; more wait in the backlog\n"
           "                        (default: no limit but the descriptor limit)\n"
           "  --grace SECS          on SIGINT/SIGTERM, let replies drain this long before\n"
           "                        the remaining clients are reset (default 1; 0: no\n"
           "                        limit)\n"
           "  --spin US             poll this many microseconds before sleeping when idle\n"
           "                        (0-1000000; default 0): lower latency for a busy core\n"
           "  --json                one JSON object per event on stdout\n");
    tls_opts_help(true);
    printf("\nIt raises its descriptor limit (RLIMIT_NOFILE) to the hard limit, so it can\n"
           "hold as many clients as the system allows; past that, waiting clients are\n"
           "told at once (end of stream), never left hanging.\n"
           "PORT 0 picks a free port; the one bound is printed first. Exit status: 0 after\n"
           "SIGINT or SIGTERM, 1 if it cannot serve, 2 bad usage. See sockit(1).\n");
}

int cmd_echo(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"udp", no_argument, NULL, 'u'},
        {"loops", required_argument, NULL, 'l'},
        {"idle", required_argument, NULL, 'i'},
        {"max-connections", required_argument, NULL, 'm'},
        {"grace", required_argument, NULL, 'g'},
        {"spin", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        TLS_OPTS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    tls_opts tls = {0};
    double idle = 300, grace = 1;
    long max_conns = 0, spin = 0, loops = 1;
    bool udp = false, conn_option = false;
    echo_stats es = {0};
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":ul:i:m:g:s:jh", longopts, NULL)) != -1) {
        int rc = tls_opts_take(&tls, opt, ECHO_USAGE);
        if (rc == CLI_USAGE)
            return rc;
        if (rc == 0)
            continue;
        rc = 0;
        switch (opt) {
        case 'u':
            udp = true;
            break;
        case 'l':
            rc = cli_parse_count(ECHO_USAGE, "--loops", optarg, 1, 256, &loops);
            break;
        case 'i':
            conn_option = true;
            rc = cli_parse_seconds(ECHO_USAGE, "--idle", optarg, &idle);
            if (rc == 0 && idle > 4e6)
                rc = cli_usage_error(ECHO_USAGE, "--idle '%s': at most 4000000 seconds", optarg);
            break;
        case 'm':
            conn_option = true;
            rc = cli_parse_count(ECHO_USAGE, "--max-connections", optarg, 1, 1000000000L,
                                 &max_conns);
            break;
        case 'g':
            conn_option = true;
            rc = cli_parse_seconds(ECHO_USAGE, "--grace", optarg, &grace);
            break;
        case 's':
            rc = cli_parse_count(ECHO_USAGE, "--spin", optarg, 0, 1000000, &spin);
            break;
        case 'j':
            cli_json_enable(stdout);
            es.json = true;
            break;
        case 'h':
            help();
            return CLI_OK;
        case ':':
            return cli_usage_error(ECHO_USAGE, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_unknown_option(ECHO_USAGE, argc, argv, 0);
        }
        if (rc != 0)
            return rc;
    }
    if (udp && conn_option)
        return cli_usage_error(ECHO_USAGE, "--idle, --max-connections and --grace apply to "
                                           "connections, not to -u (datagrams)");
    if (udp && tls.on)
        return cli_usage_error(ECHO_USAGE, "%s applies to connections, not to -u (no DTLS)",
                               tls.first);
    if (tls_opts_check(&tls, true, ECHO_USAGE) != 0)
        return CLI_USAGE;
    hostport target;
    int rc =
        cli_parse_operands(ECHO_USAGE, argc - optind, argv + optind, HOSTPORT_LISTENER, &target);
    if (rc != 0)
        return rc;
    const char *host = target.host[0] != '\0' ? target.host : NULL;
    if (target.is_unix && (rc = cli_check_unix_path(host, true)) != 0)
        return rc;

    int tls_status = 0;
    sockit_tls_ctx *ctx = tls_opts_context(&tls, true, &tls_status);
    if (tls_status != 0)
        return tls_status;
    cli_raise_fd_limit();
    sockit_server_config cfg = {
        .tls = ctx,
        .mode = SOCKIT_EVENTS,
        .stream = &echo_callbacks,
        .on_connect = on_connect,
        .user = &es,
        .max_connections = (int)max_conns,
        /* Here 0 says never; the server's 0 would mean its default. */
        .idle_timeout = idle == 0 ? -1 : idle,
        /* 0 means no limit, as for every time option of the tool. */
        .close_grace = grace == 0 ? INFINITY : grace,
        .listen = {.dualstack = true}, /* no HOST: IPv6 and IPv4, as sockit listen */
        .spin_us = (unsigned)spin,
        .datagram = &echo_datagram_callbacks,
        .loops = (int)loops,
    };
    sockit_server *srv = sockit_server_new(host, target.is_unix ? 0 : target.port,
                                           udp ? SOCK_DGRAM : SOCK_STREAM, &cfg);
    sockit_tls_ctx_free(ctx); /* the server holds its own reference */
    if (srv == NULL)
        return cli_fail_lib();
    running = srv;
    cli_server_started(srv, on_signal);
    signal(SIGPIPE, SIG_IGN);

    int status = CLI_OK;
    if (sockit_server_serve_forever(srv) < 0)
        status = cli_fail_lib();
    sockit_server_close(srv);
    running = NULL;
    if (udp)
        cli_event("exit", "reason", 's', status == CLI_OK ? "signal" : "error", "datagrams", 'i',
                  atomic_load(&es.datagrams), "dropped", 'i', atomic_load(&es.dropped), "bytes",
                  'i', atomic_load(&es.bytes), NULL);
    else
        cli_event("exit", "reason", 's', status == CLI_OK ? "signal" : "error", "connections", 'i',
                  es.connections, "bytes", 'i', es.bytes, NULL);
    return status;
}
