/* sockit bench: the front of the load generator: its options and their checks,
 * the target address, the fd limit and the source addresses, everything decided
 * before a worker starts. */
#include "bench.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char usage[] =
    "sockit bench [-u] [-c CONNS] [-d SECS] [-n REQUESTS] [-m BYTES] [--pipeline DEPTH] "
    "[--mode echo|stream|connect] [--payload random|line] [--rate N] [-t THREADS] "
    "[--timeout SECS] [--warmup SECS] "
    "[--expect TEXT] [--sources N] [--server-pid PID] [--spin US] [--json] "
    "[--tls [--ca FILE|DIR | --insecure] [--sni NAME] [--alpn LIST] [--no-resume]] "
    "[--proxy URL] HOST PORT | unix:PATH";

#define MAX_THREADS   64
#define MAX_CONNS     1000000L
#define MAX_MSG       (16L << 20)
#define MAX_UDP_MSG   65507L
#define MAX_PIPELINE  1024L
#define MIN_RATE      1e-3 /* one request per 17 minutes: slower is no load test */
#define MAX_RATE      1e9
#define FDS_RESERVED  32 /* stdio, the loops' descriptors, /proc reads, slack */
#define DEFAULT_HELLO "Hello server!"

static void help(void)
{
    printf("usage: %s\n\n"
           "Load-tests a TCP, UDP or Unix stream server and reports requests/s, MB/s,\n"
           "latency percentiles and errors by kind.\n\n"
           "  --mode echo      each connection keeps DEPTH messages in flight and checks\n"
           "                   every byte echoed back (default)\n"
           "  --mode stream    write continuously; count what comes back\n"
           "  --mode connect   connect, send, read until the server closes, close: per request\n"
           "  --payload random pseudo-random bytes: for byte echo servers (default)\n"
           "  --payload line   each message one line of printable bytes (A-Z, 0-9 and\n"
           "                   punctuation, unchanged by upper-casing) ending in '\\n':\n"
           "                   for line echo servers (threaded_echo_server,\n"
           "                   forking_line_server); TCP and Unix only\n"
           "  -u               UDP echo (one connected socket per connection)\n"
           "  -c CONNS         connections (default 10)\n"
           "  -d SECS          measured duration (default 10); then each request still\n"
           "                   unanswered gets --timeout more, and is an error after that\n"
           "  -n REQUESTS      stop after exactly this many requests\n"
           "  -m BYTES         message size (default 64; connect mode sends \"%s\")\n"
           "  --pipeline N     messages in flight per connection (default 1)\n"
           "  --rate N         open loop: N requests/s in all, latency from when each was due\n"
           "  -t THREADS       worker threads, each with its own connections (default 1)\n"
           "  --timeout SECS   a connect or reply slower than this is an error (default 2)\n"
           "                   (-d and --timeout must be > 0: a run needs an end)\n"
           "  --warmup SECS    run this long before measuring (default 0)\n"
           "  --expect TEXT    connect mode: the reply must be exactly TEXT\n"
           "  --sources N      spread connections over 127.0.0.1..127.0.0.N\n"
           "  --server-pid PID also report that local process's CPU per request\n"
           "  --spin US        each worker's loop polls this many microseconds before it\n"
           "                   sleeps (0-1000000; default 0): at 1 connection the\n"
           "                   generator's own wake-up then stops counting in latency\n"
           "  --json           print the result as one JSON object\n"
           "  --tls ...        every TCP connection is a TLS client (the options below);\n"
           "                   with --mode connect each request is a TLS handshake\n"
           "  --no-resume      TLS: a full handshake every time (no session resumption)\n"
           "  --proxy URL      reach HOST PORT through a proxy: socks5://[USER:PASS@]H[:P]\n"
           "                   (HOST resolved here), socks5h://... (by the proxy) or\n"
           "                   http://... (CONNECT); each connection opens its own\n"
           "                   tunnel, so --mode connect measures the proxy's setup too\n",
           usage, DEFAULT_HELLO);
    tls_opts_help(false);
    printf("\nHOST PORT may be HOST:PORT or [V6]:PORT.\n"
           "Exit status: 0 every request answered, 1 any error (a request unanswered or\n"
           "a connection never made counts) or target unreachable, 2 bad usage.\n"
           "See sockit(1).\n");
}

/* zero_is: NULL if 0 is fine, else why it is not (the rule of sockit(1): 0 means no
 * limit where a limit can be lifted, and is refused where it cannot). */
static int parse_positive_seconds(const char *option, const char *text, const char *zero_is,
                                  double *out)
{
    int rc = cli_parse_seconds(usage, option, text, out);
    if (rc == 0 && zero_is != NULL && *out <= 0)
        return cli_usage_error(usage, "%s '%s': must be more than 0 seconds: %s", option, text,
                               zero_is);
    return rc;
}

static int parse_rate(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v) || v < MIN_RATE || v > MAX_RATE)
        return cli_usage_error(usage, "--rate '%s': not a number of requests/s from %g to %g", text,
                               MIN_RATE, MAX_RATE);
    *out = v;
    return 0;
}

static int parse_mode(const char *text, bench_mode *out)
{
    if (strcmp(text, "echo") == 0)
        *out = BENCH_ECHO;
    else if (strcmp(text, "stream") == 0)
        *out = BENCH_STREAM;
    else if (strcmp(text, "connect") == 0)
        *out = BENCH_CONNECT;
    else
        return cli_usage_error(usage, "--mode '%s': not echo, stream or connect", text);
    return 0;
}

static int parse_payload(const char *text, bench_payload *out)
{
    if (strcmp(text, "random") == 0)
        *out = BENCH_RANDOM;
    else if (strcmp(text, "line") == 0)
        *out = BENCH_LINES;
    else
        return cli_usage_error(usage, "--payload '%s': not random or line", text);
    return 0;
}

static int parse_pid(const char *text, int *out)
{
    long pid;
    int rc = cli_parse_count(usage, "--server-pid", text, 1, 0x7fffffffL, &pid);
    if (rc != 0)
        return rc;
    if (bench_process_cpu((int)pid) < 0)
        return cli_usage_error(usage, "--server-pid '%s': no such process (or /proc unreadable)",
                               text);
    *out = (int)pid;
    return 0;
}

enum {
    OPT_PIPELINE = 256,
    OPT_MODE,
    OPT_PAYLOAD,
    OPT_RATE,
    OPT_TIMEOUT,
    OPT_WARMUP,
    OPT_EXPECT,
    OPT_SOURCES,
    OPT_SERVER_PID,
    OPT_SPIN,
    OPT_JSON,
    OPT_NO_RESUME,
    OPT_PROXY
};

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, bench_options *o)
{
    static const struct option longopts[] = {
        {"udp", no_argument, NULL, 'u'},
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"message-bytes", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'},
        {"pipeline", required_argument, NULL, OPT_PIPELINE},
        {"mode", required_argument, NULL, OPT_MODE},
        {"payload", required_argument, NULL, OPT_PAYLOAD},
        {"rate", required_argument, NULL, OPT_RATE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"expect", required_argument, NULL, OPT_EXPECT},
        {"sources", required_argument, NULL, OPT_SOURCES},
        {"server-pid", required_argument, NULL, OPT_SERVER_PID},
        {"spin", required_argument, NULL, OPT_SPIN},
        {"json", no_argument, NULL, OPT_JSON},
        {"no-resume", no_argument, NULL, OPT_NO_RESUME},
        {"proxy", required_argument, NULL, OPT_PROXY},
        TLS_OPTS_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_config *cfg = &o->cfg;
    long v;
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, ":uc:d:n:m:t:h", longopts, NULL)) != -1) {
        int rc = tls_opts_take(&o->tls, opt, usage);
        if (rc == CLI_USAGE)
            return rc;
        if (rc == 0)
            continue;
        rc = 0;
        switch (opt) {
        case 'u':
            cfg->udp = true;
            break;
        case 'c':
            rc = cli_parse_count(usage, "-c", optarg, 1, MAX_CONNS, &cfg->conns);
            break;
        case 'd':
            rc = parse_positive_seconds("-d", optarg, "a run needs an end", &cfg->duration);
            break;
        case 'n':
            if ((rc = cli_parse_count(usage, "-n", optarg, 1, 0x3fffffffffffffffL, &v)) == 0)
                cfg->max_requests = (uint64_t)v;
            break;
        case 'm':
            if ((rc = cli_parse_count(usage, "-m", optarg, 1, MAX_MSG, &v)) == 0) {
                cfg->msg_bytes = (size_t)v;
                o->msg_given = true;
            }
            break;
        case 't':
            if ((rc = cli_parse_count(usage, "-t", optarg, 1, MAX_THREADS, &v)) == 0)
                cfg->threads = (int)v;
            break;
        case OPT_PIPELINE:
            if ((rc = cli_parse_count(usage, "--pipeline", optarg, 1, MAX_PIPELINE, &v)) == 0)
                cfg->pipeline = (unsigned)v;
            break;
        case OPT_MODE:
            rc = parse_mode(optarg, &cfg->mode);
            break;
        case OPT_PAYLOAD:
            rc = parse_payload(optarg, &cfg->payload);
            break;
        case OPT_RATE:
            rc = parse_rate(optarg, &cfg->rate);
            break;
        case OPT_TIMEOUT:
            rc = parse_positive_seconds(
                "--timeout", optarg, "it also ends the wait for replies after -d", &cfg->timeout);
            break;
        case OPT_WARMUP:
            rc = parse_positive_seconds("--warmup", optarg, NULL, &cfg->warmup);
            break;
        case OPT_EXPECT:
            cfg->expect = optarg;
            cfg->expect_len = strlen(optarg);
            break;
        case OPT_SOURCES:
            if ((rc = cli_parse_count(usage, "--sources", optarg, 1, 254, &v)) == 0)
                cfg->sources = (unsigned)v;
            break;
        case OPT_SERVER_PID:
            rc = parse_pid(optarg, &o->server_pid);
            break;
        case OPT_SPIN:
            if ((rc = cli_parse_count(usage, "--spin", optarg, 0, 1000000, &v)) == 0)
                cfg->spin_us = (unsigned)v;
            break;
        case OPT_NO_RESUME:
            o->no_resume = true;
            break;
        case OPT_PROXY:
            /* Checked now, so a bad URL is a usage error before anything runs. */
            if (sockit_proxy_endpoint(optarg, NULL, 0, NULL) < 0)
                return cli_usage_error(usage, "--proxy: %s", sockit_errmsg());
            o->cfg.proxy = optarg;
            break;
        case OPT_JSON:
            o->json = true;
            cli_json_enable(stdout);
            break;
        case 'h':
            help();
            return CLI_OK;
        case ':':
            return cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_unknown_option(usage, argc, argv, 1);
        }
        if (rc != 0)
            return rc;
    }
    int rc = cli_parse_operands(usage, argc - optind, argv + optind, 0, &o->target);
    return rc != 0 ? rc : -1;
}

/* Checks that need every option seen. */
static int check_combinations(bench_options *o)
{
    bench_config *cfg = &o->cfg;
    if (cfg->udp && cfg->mode != BENCH_ECHO)
        return cli_usage_error(usage, "-u: only --mode echo works over UDP");
    if (cfg->udp && cfg->payload == BENCH_LINES)
        return cli_usage_error(usage, "--payload line: a UDP message starts with a binary "
                                      "sequence number (-u)");
    if (cfg->udp && (cfg->msg_bytes < 8 || cfg->msg_bytes > MAX_UDP_MSG))
        return cli_usage_error(usage,
                               "-m '%zu': a UDP message carries an 8-byte sequence number and "
                               "fits one datagram: 8-%ld",
                               cfg->msg_bytes, MAX_UDP_MSG);
    if (cfg->threads > cfg->conns)
        return cli_usage_error(usage, "-t '%d': more threads than connections (%ld)", cfg->threads,
                               cfg->conns);
    if (cfg->max_requests > 0 && cfg->warmup > 0)
        return cli_usage_error(usage,
                               "-n and --warmup exclude each other: -n counts every request");
    if (cfg->expect != NULL && cfg->mode != BENCH_CONNECT)
        return cli_usage_error(usage, "--expect: only for --mode connect");
    if (cfg->mode == BENCH_CONNECT && o->msg_given && cfg->msg_bytes > 65536)
        return cli_usage_error(usage, "-m '%zu': a connect-mode message is at most 65536 bytes",
                               cfg->msg_bytes);
    if (o->no_resume && !o->tls.on)
        return cli_usage_error(usage, "--no-resume: only with --tls");
    if (o->tls.on && cfg->udp)
        return cli_usage_error(usage, "%s: TLS is for TCP connections, not -u", o->tls.first);
    if (o->tls.on && tls_opts_check(&o->tls, false, usage) != 0)
        return CLI_USAGE;
    if (cfg->proxy != NULL && (cfg->udp || o->target.is_unix))
        return cli_usage_error(usage, "--proxy: a proxy tunnels TCP, not %s",
                               cfg->udp ? "-u" : "a Unix socket");
    return -1;
}

/* The client context every worker's connections share. */
static int make_tls(bench_options *o)
{
    if (!o->tls.on)
        return -1;
    int status = 0;
    o->cfg.tls = tls_opts_context(&o->tls, false, &status);
    if (o->cfg.tls == NULL)
        return status != 0 ? status : CLI_FAIL;
    o->cfg.tls_name = tls_opts_server_name(&o->tls, o->target.host);
    if (o->no_resume)
        sockit_tls_ctx_set_resumption(o->cfg.tls, false);
    /* A load generator checks bytes, not who cut a connection short. */
    sockit_tls_ctx_set_ragged_eofs(o->cfg.tls, true);
    return -1;
}

/* Raises the soft fd limit to the hard one when the connections need it. */
static int fit_fd_limit(const bench_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    /* Each loop (a worker's, the supervisor's) holds an epoll set and an eventfd. */
    rlim_t need = (rlim_t)cfg->conns + 2 * ((rlim_t)cfg->threads + 1) + FDS_RESERVED;
    if (need <= rl.rlim_cur)
        return -1;
    if (rl.rlim_max != RLIM_INFINITY && need > rl.rlim_max)
        return cli_usage_error(
            usage, "-c %ld: needs %llu file descriptors, the limit is %llu (ulimit -Hn)",
            cfg->conns, (unsigned long long)need, (unsigned long long)rl.rlim_max);
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return cli_fail("-c %ld: cannot raise the fd limit to %llu: %s", cfg->conns,
                        (unsigned long long)rl.rlim_max, strerror(errno));
    return -1;
}

static int resolve_target(bench_options *o)
{
    bench_config *cfg = &o->cfg;
    sockit_addr addr;
    if (o->target.is_unix) {
        if (cfg->udp)
            return cli_usage_error(usage, "-u: Unix datagram targets are not supported");
        if (sockit_addr_parse(&addr, o->target.host) < 0)
            return cli_usage_error(usage, "'%s': %s", o->target.host, sockit_errmsg());
        int rc = cli_check_unix_path(o->target.host, false);
        if (rc != 0)
            return rc;
    } else {
        /* Through a proxy the connections go to the proxy, and each asks it for the
         * target. */
        const char *host = o->target.host;
        int port = o->target.port;
        char proxy_host[256];
        if (cfg->proxy != NULL) {
            size_t n = strlen(o->target.host);
            if (n >= sizeof cfg->tunnel_host)
                return cli_usage_error(usage, "--proxy: host '%.40s...' is over %zu bytes",
                                       o->target.host, sizeof cfg->tunnel_host - 1);
            memcpy(cfg->tunnel_host, o->target.host, n + 1);
            cfg->tunnel_port = o->target.port;
            if (sockit_proxy_endpoint(cfg->proxy, proxy_host, sizeof proxy_host, &port) < 0)
                return cli_usage_error(usage, "--proxy: %s", sockit_errmsg());
            host = proxy_host;
        }
        char port_text[8];
        snprintf(port_text, sizeof port_text, "%d", port);
        sockit_addrinfo ai;
        if (sockit_getaddrinfo(host, port_text, AF_UNSPEC, cfg->udp ? SOCK_DGRAM : SOCK_STREAM, 0,
                               &ai, 1) < 0)
            return cli_fail_lib();
        addr = ai.addr;
    }
    memcpy(&cfg->target, &addr.u, addr.len);
    cfg->target_len = addr.len;
    cli_addr_text(&addr, cfg->target_text, sizeof cfg->target_text);
    if (cfg->proxy != NULL) {
        char proxy_text[SOCKIT_ADDRSTRLEN];
        cli_addr_text(&addr, proxy_text, sizeof proxy_text);
        snprintf(cfg->target_text, sizeof cfg->target_text, "%s:%d via %s", cfg->tunnel_host,
                 cfg->tunnel_port, proxy_text);
    }
    return -1;
}

/* One address has only so many ephemeral ports; past that, connections to a
 * loopback target use several 127.0.0.x sources. */
static void spread_sources(bench_config *cfg)
{
    if (cfg->sources > 0 || cfg->udp || cfg->target.ss_family != AF_INET)
        return;
    const struct sockaddr_in *in = (const struct sockaddr_in *)&cfg->target;
    bool loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    long low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &low, &high) != 2)
            low = 32768, high = 60999;
        fclose(f);
    }
    long ports = high - low + 1;
    if (cfg->conns <= ports)
        return;
    if (!loopback) {
        fprintf(stderr,
                "sockit bench: %ld connections, but one source address has %ld ephemeral ports: "
                "some connects will fail\n",
                cfg->conns, ports);
        return;
    }
    long need = (cfg->conns + ports - 1) / ports;
    cfg->sources = (unsigned)(need > 254 ? 254 : need);
    fprintf(stderr,
            "sockit bench: %ld connections need more than one address's %ld ephemeral "
            "ports: using sources 127.0.0.1-127.0.0.%u\n",
            cfg->conns, ports, cfg->sources);
}

int bench_setup(int argc, char **argv, bench_options *o)
{
    o->cfg = (bench_config){.mode = BENCH_ECHO,
                            .conns = 10,
                            .threads = 1,
                            .duration = 10,
                            .timeout = 2,
                            .msg_bytes = 64,
                            .pipeline = 1,
                            .message = (const unsigned char *)DEFAULT_HELLO,
                            .message_len = sizeof DEFAULT_HELLO - 1};
    int status = parse_args(argc, argv, o);
    if (status < 0)
        status = check_combinations(o);
    if (status < 0)
        status = resolve_target(o);
    if (status < 0)
        status = make_tls(o);
    if (status < 0)
        status = fit_fd_limit(&o->cfg);
    if (status < 0)
        spread_sources(&o->cfg);
    return status;
}
