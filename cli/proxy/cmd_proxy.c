/* sockit proxy: a relay that injects faults (sockit_proxy.h) from the command line.
 * LISTEN UPSTREAM and toxic options make one proxy for a one-off test. */
#include "api.h"
#include "api_routes.h"
#include "cli.h"
#include "proxy_options.h"
#include "registry.h"
#include "tls_opts.h"

#include <sockit_proxy.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void help(void)
{
    printf("usage: %s\n", PROXY_USAGE);
    printf("       sockit proxy [--api HOST:PORT] [--config FILE] [--json]\n\n"
           "A TCP relay that injects faults: every client that connects to LISTEN is\n"
           "connected to UPSTREAM and their bytes relayed both ways, exactly, with half-close\n"
           "and resets passed on, through the toxics the options ask for. The toxics are\n"
           "toxiproxy's, with its names and units (docs/proxy.md). With --udp it relays UDP\n"
           "datagrams instead, each client address with a socket of its own to UPSTREAM.\n"
           "Without LISTEN UPSTREAM it is a toxiproxy server: proxies and toxics come and go\n"
           "through its API, which toxiproxy's clients drive unchanged.\n\n"
           "  --udp                 a UDP proxy (the datagram toxics below, latency, jitter\n"
           "                        and bandwidth; not the other TCP ones)\n"
           "  --latency TIME        delay every chunk by TIME (100ms, 1s; a bare number is ms)\n"
           "  --jitter TIME         ... plus or minus up to TIME, drawn per chunk (order\n"
           "                        kept; UDP: per datagram, which may reorder them)\n"
           "  --bandwidth RATE      at most RATE (100KB/s, 2MB/s; bare: KB/s, 1 KB = 1000 B)\n"
           "TCP only:\n"
           "  --slow-close TIME     hold the end of stream back for TIME\n"
           "  --timeout TIME        pass nothing, and close the connection after TIME\n"
           "                        (0: never)\n"
           "  --reset-peer TIME     reset both sides TIME after the first bytes\n"
           "  --slicer SIZE[/VAR]   cut the bytes into slices of SIZE +- VAR bytes ...\n"
           "  --slice-delay TIME    ... TIME apart (bare: microseconds, toxiproxy's unit)\n"
           "  --limit-data SIZE     pass SIZE bytes (1500, 64KiB, 1GB), then close\n"
           "UDP only (--udp):\n"
           "  --loss P              drop each datagram with probability P (0-1)\n"
           "  --loss-burst N        ... in runs of N datagrams on average, the same share\n"
           "                        lost (0, the default: each drawn alone); N must be at\n"
           "                        least P/(1-P)\n"
           "  --duplicate P         send each datagram twice with probability P\n"
           "  --reorder P           hold each datagram back with probability P until ...\n"
           "  --reorder-gap N       ... N datagrams have overtaken it (default 1) ...\n"
           "  --reorder-delay TIME  ... or TIME has passed (default 100ms)\n"
           "  --truncate SIZE       cut datagrams longer than SIZE bytes (0-65535) to SIZE\n"
           "  --idle-timeout SECS   a client's entry ends after SECS with no datagram either\n"
           "                        way (default 60, at most 86400)\n"
           "  --max-clients N       client entries at once, 1-16384 (default 1024): while\n"
           "                        the table is full, new clients' datagrams are dropped\n"
           "Both:\n"
           "  --toxicity P          each toxic acts on a connection (UDP: a client's entry)\n"
           "                        with probability P (0-1, drawn for each; default 1)\n"
           "  --direction DIR       which way the toxics act: down (upstream to client, the\n"
           "                        default, as in toxiproxy), up (client to upstream), both\n"
           "  --down                start with the proxy down (connections refused)\n"
           "  --connect-timeout S   seconds for each upstream connect (default 10; UDP: for\n"
           "                        resolving UPSTREAM)\n"
           "  --seed N              seed of the random draws (default: from the system)\n"
           "  --name NAME           the proxy's name in the API and events (default proxy)\n"
           "  --api HOST:PORT       serve toxiproxy's HTTP API there (without LISTEN\n"
           "                        UPSTREAM: on by default, on 127.0.0.1:8474, toxiproxy's\n"
           "                        port); a warning if it is reachable beyond this machine\n"
           "  --config FILE         make the proxies of a toxiproxy config file (a JSON array\n"
           "                        of {name, listen, upstream, enabled, protocol: tcp|udp})\n"
           "  --json                one JSON object per event on stdout: bound, open, close\n"
           "                        (bytes each way, reason, toxics), refused\n"
           "TLS, for every TCP proxy (toxics act on the plaintext between the two sides):\n"
           "  --tls, --cert FILE, --key FILE, --ca FILE|DIR, --alpn LIST\n"
           "                        be a TLS server to the clients (--ca: require client\n"
           "                        certificates those CAs signed)\n"
           "  --upstream-tls        be a TLS client of UPSTREAM, verifying its certificate\n"
           "  --upstream-ca FILE    trust these CAs for it instead of the system's\n"
           "  --upstream-insecure   accept any upstream certificate (a warning says so)\n"
           "  --upstream-sni NAME   the name sent and checked (default: UPSTREAM's host)\n\n"
           "LISTEN is [HOST:]PORT (HOST default 127.0.0.1; PORT 0 picks a free one, printed\n"
           "first); UPSTREAM is HOST:PORT, resolved for each connection, with Happy Eyeballs\n"
           "(UDP: for each client entry, the first address). --idle-timeout and\n"
           "--max-clients also apply to the UDP proxies the API and --config make\n"
           "(\"protocol\": \"udp\").\n"
           "Stops on SIGINT or SIGTERM. Exit status: 0 after a signal, 1 if it cannot listen,\n"
           "2 bad usage. See sockit(1).\n");
}

static void on_event(sockit_proxy *p, const sockit_proxy_event *ev, void *user)
{
    (void)user;
    char client[SOCKIT_ADDRSTRLEN];
    cli_addr_text(ev->client, client, sizeof client);
    const char *name = sockit_proxy_name(p);
    switch (ev->type) {
    case SOCKIT_PROXY_OPEN:
        cli_event("open", "proxy", 's', name, "id", 'i', (long long)ev->id, "client", 's', client,
                  "toxics", 's', ev->toxics, NULL);
        break;
    case SOCKIT_PROXY_CLOSE:
        cli_event("close", "proxy", 's', name, "id", 'i', (long long)ev->id, "client", 's', client,
                  "bytes_up", 'i', (long long)ev->bytes_up, "bytes_down", 'i',
                  (long long)ev->bytes_down, "reason", 's', ev->reason, "toxics", 's', ev->toxics,
                  NULL);
        break;
    case SOCKIT_PROXY_REFUSED:
        cli_event("refused", "proxy", 's', name, "id", 'i', (long long)ev->id, "client", 's',
                  client, "reason", 's', ev->reason, NULL);
        break;
    }
}

static int check_operands(const char *listen_text, const char *upstream_text, bool udp)
{
    char why[512];
    hostport listen, upstream;
    if (hostport_split(listen_text, HOSTPORT_LISTENER, &listen, why, sizeof why) < 0)
        return cli_usage_error(PROXY_USAGE, "LISTEN %s", why);
    if (hostport_split(upstream_text, 0, &upstream, why, sizeof why) < 0)
        return cli_usage_error(PROXY_USAGE, "UPSTREAM %s", why);
    if (listen.is_unix || upstream.is_unix)
        return cli_usage_error(PROXY_USAGE, "%s addresses only (no unix: yet)",
                               udp ? "UDP" : "TCP");
    if (listen.port < 0)
        return cli_usage_error(PROXY_USAGE, "LISTEN '%s': no port", listen_text);
    if (upstream.port < 1)
        return cli_usage_error(PROXY_USAGE, "UPSTREAM '%s': a port 1-65535 is needed",
                               upstream_text);
    return 0;
}

/* --api's HOST:PORT or PORT into *hp. */
static int check_api(const char *text, hostport *hp)
{
    char why[512];
    if (hostport_split(text, HOSTPORT_LISTENER, hp, why, sizeof why) < 0)
        return cli_usage_error(PROXY_USAGE, "--api %s", why);
    if (hp->is_unix || hp->port < 0)
        return cli_usage_error(PROXY_USAGE, "--api '%s': HOST:PORT or PORT", text);
    return 0;
}

/* Whether a listening address is on loopback only. */
static bool is_loopback(const sockit_addr *a)
{
    if (sockit_addr_family(a) == AF_INET)
        return (ntohl(a->u.in4.sin_addr.s_addr) >> 24) == 127;
    if (sockit_addr_family(a) == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&a->u.in6.sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&a->u.in6.sin6_addr) && a->u.in6.sin6_addr.s6_addr[12] == 127);
    return true;
}

static int start_api(api_server *api, sockit_loop *loop, registry *reg, const hostport *hp)
{
    const char *host = hp->host[0] != '\0' ? hp->host : "127.0.0.1";
    if (api_start(api, loop, reg, host, hp->port) < 0)
        return cli_fail("API: %s", sockit_errmsg());
    sockit_addr bound;
    char addr[SOCKIT_ADDRSTRLEN];
    api_address(api, &bound);
    cli_addr_text(&bound, addr, sizeof addr);
    if (!is_loopback(&bound))
        fprintf(stderr,
                "sockit proxy: warning: the API on %s is reachable from other "
                "machines, and whoever reaches it can open proxies from here\n",
                addr);
    if (cli_json_on())
        cli_event("api", "address", 's', addr, "port", 'i', (long long)sockit_addr_port(&bound),
                  NULL);
    else
        printf("API on http://%s\n", addr);
    return 0;
}

static int load_config(registry *reg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cli_fail("--config %s: %s", path, strerror(errno));
    char *text = malloc(HTTP_BODY_MAX + 1);
    size_t len = text != NULL ? fread(text, 1, HTTP_BODY_MAX + 1, f) : 0;
    bool failed = ferror(f) != 0;
    fclose(f);
    int status = CLI_OK;
    registry_error err;
    if (text == NULL || failed)
        status = cli_fail("--config %s: cannot read it", path);
    else if (len > HTTP_BODY_MAX)
        status = cli_fail("--config %s: over %d bytes", path, HTTP_BODY_MAX);
    else if (api_populate_text(reg, text, len, &err) < 0)
        status = cli_fail("--config %s: %s", path, err.message);
    free(text);
    return status;
}

static void tell_bound(const registry_entry *e)
{
    bool up = sockit_proxy_enabled(e->proxy);
    if (cli_json_on())
        cli_event("bound", "proxy", 's', e->name, "address", 's', e->listen, "upstream", 's',
                  e->upstream, "protocol", 's', registry_protocol_name(e->type), "enabled", 'b', up,
                  NULL);
    else
        printf("Proxy %s: listening on %s%s, relaying to %s%s\n", e->name, e->listen,
               e->type == SOCK_DGRAM ? " (udp)" : "", e->upstream, up ? "" : " (down)");
}

static void on_signal(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    (void)signum;
    (void)count;
    sockit_loop_stop(user);
}

int cmd_proxy(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"latency", required_argument, NULL, 'L'},
        {"jitter", required_argument, NULL, 'J'},
        {"bandwidth", required_argument, NULL, 'B'},
        {"slow-close", required_argument, NULL, 'C'},
        {"timeout", required_argument, NULL, 'T'},
        {"reset-peer", required_argument, NULL, 'R'},
        {"slicer", required_argument, NULL, 'S'},
        {"slice-delay", required_argument, NULL, 'D'},
        {"limit-data", required_argument, NULL, 'M'},
        {"udp", no_argument, NULL, 'u'},
        {"loss", required_argument, NULL, 'l'},
        {"loss-burst", required_argument, NULL, 'b'},
        {"duplicate", required_argument, NULL, 'p'},
        {"reorder", required_argument, NULL, 'r'},
        {"reorder-gap", required_argument, NULL, 'g'},
        {"reorder-delay", required_argument, NULL, 'y'},
        {"truncate", required_argument, NULL, 't'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"max-clients", required_argument, NULL, 'm'},
        {"toxicity", required_argument, NULL, 'P'},
        {"direction", required_argument, NULL, 'd'},
        {"down", no_argument, NULL, 'o'},
        {"connect-timeout", required_argument, NULL, 'c'},
        {"seed", required_argument, NULL, 's'},
        {"api", required_argument, NULL, 'a'},
        {"config", required_argument, NULL, 'f'},
        {"name", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"upstream-tls", no_argument, NULL, 'U'},
        {"upstream-ca", required_argument, NULL, 'A'},
        {"upstream-insecure", no_argument, NULL, 'I'},
        {"upstream-sni", required_argument, NULL, 'N'},
        TLS_OPTS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    tls_opts tls = {0}, up = {0};
    plan pl = {.toxicity = 1, .directions = 2, .reorder_gap = 1, .reorder_delay = 100};
    bool down = false, udp = false;
    double connect_timeout = 10, idle_timeout = 0;
    long max_clients = 0;
    const char *udp_setting = NULL; /* --idle-timeout or --max-clients, if given */
    long long seed = 0;
    const char *api_text = NULL, *config = NULL, *name = "proxy";
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int rc = tls_opts_take(&tls, opt, PROXY_USAGE);
        if (rc == CLI_USAGE)
            return rc;
        if (rc == 0)
            continue;
        rc = 0;
        /* The upstream's options are a client's TLS options under other names. */
        if (opt == 'U' || opt == 'A' || opt == 'I' || opt == 'N') {
            int as = opt == 'U'   ? TLS_OPT_TLS
                     : opt == 'A' ? TLS_OPT_CA
                     : opt == 'I' ? TLS_OPT_INSECURE
                                  : TLS_OPT_SNI;
            if (tls_opts_take(&up, as, PROXY_USAGE) == CLI_USAGE)
                return CLI_USAGE;
            continue;
        }
        switch (opt) {
        case 'o':
            down = true;
            break;
        case 'u':
            udp = true;
            break;
        case 'i':
            plan_first(&udp_setting, "--idle-timeout");
            rc = cli_parse_seconds(PROXY_USAGE, "--idle-timeout", optarg, &idle_timeout);
            if (rc == 0 && !(idle_timeout > 0 && idle_timeout <= 86400))
                rc = cli_usage_error(
                    PROXY_USAGE, "--idle-timeout '%s': more than 0 seconds, at most 86400", optarg);
            break;
        case 'm':
            plan_first(&udp_setting, "--max-clients");
            rc = cli_parse_count(PROXY_USAGE, "--max-clients", optarg, 1, SOCKIT_PROXY_CLIENTS_MAX,
                                 &max_clients);
            break;
        case 'c':
            rc = cli_parse_seconds(PROXY_USAGE, "--connect-timeout", optarg, &connect_timeout);
            if (rc == 0 && connect_timeout == 0)
                rc = cli_usage_error(PROXY_USAGE, "--connect-timeout '%s': more than 0 seconds",
                                     optarg);
            break;
        case 's': {
            long v;
            rc = cli_parse_count(PROXY_USAGE, "--seed", optarg, 1, 2147483647L, &v);
            seed = v;
            break;
        }
        case 'j':
            cli_json_enable(stdout);
            break;
        case 'a':
            api_text = optarg;
            break;
        case 'f':
            config = optarg;
            break;
        case 'n':
            if (optarg[0] == '\0' || strlen(optarg) >= REGISTRY_NAME_MAX)
                return cli_usage_error(PROXY_USAGE, "--name '%s': 1-%d bytes", optarg,
                                       REGISTRY_NAME_MAX - 1);
            name = optarg;
            break;
        case 'h':
            help();
            return CLI_OK;
        case ':':
            return cli_usage_error(PROXY_USAGE, "option '%s' needs a value", argv[optind - 1]);
        case '?':
            return cli_unknown_option(PROXY_USAGE, argc, argv, -1);
        default:
            rc = plan_option(opt, optarg, &pl);
            break;
        }
        if (rc != 0)
            return rc;
    }
    int operands = argc - optind;
    if (operands != 0 && operands != 2)
        return cli_usage_error(PROXY_USAGE, "give LISTEN and UPSTREAM (e.g. 127.0.0.1:8000 "
                                            "localhost:9000), or neither (--api, --config)");
    bool one_off = operands == 2;
    bool toxics = false;
    for (size_t i = 0; i < sizeof pl.has / sizeof pl.has[0]; i++)
        toxics = toxics || pl.has[i];
    if (!one_off && (toxics || down))
        return cli_usage_error(PROXY_USAGE, "toxic options and --down act on the proxy of "
                                            "LISTEN UPSTREAM: give those too");
    if (!one_off && udp)
        return cli_usage_error(PROXY_USAGE, "--udp makes the proxy of LISTEN UPSTREAM a UDP one: "
                                            "give those too (API proxies take \"protocol\": "
                                            "\"udp\")");
    if (one_off && udp && pl.tcp_only != NULL)
        return cli_usage_error(PROXY_USAGE, "%s: a TCP toxic, not for --udp", pl.tcp_only);
    if (one_off && !udp && pl.udp_only != NULL)
        return cli_usage_error(PROXY_USAGE, "%s: a UDP toxic: add --udp", pl.udp_only);
    /* Without LISTEN UPSTREAM they are for the UDP proxies the API and --config make. */
    if (one_off && !udp && udp_setting != NULL)
        return cli_usage_error(PROXY_USAGE, "%s: for UDP proxies: add --udp", udp_setting);
    if (pl.loss_extra != NULL && !pl.has[HAS_LOSS])
        return cli_usage_error(PROXY_USAGE, "%s: needs --loss", pl.loss_extra);
    if (pl.reorder_extra != NULL && !pl.has[HAS_REORDER])
        return cli_usage_error(PROXY_USAGE, "%s: needs --reorder", pl.reorder_extra);
    if ((tls.on || up.on) && one_off && udp)
        return cli_usage_error(PROXY_USAGE, "TLS options are for TCP proxies, not --udp");
    if (tls.on && tls.sni != NULL)
        return cli_usage_error(PROXY_USAGE, "--sni: for the upstream side, say --upstream-sni");
    if (tls.on && tls.insecure)
        return cli_usage_error(PROXY_USAGE, "--insecure: for the upstream side, say "
                                            "--upstream-insecure");
    if ((tls.on && tls_opts_check(&tls, true, PROXY_USAGE) != 0) ||
        (up.on && tls_opts_check(&up, false, PROXY_USAGE) != 0))
        return CLI_USAGE;
    if (one_off) {
        int rc = plan_check(&pl);
        if (rc == 0)
            rc = check_operands(argv[optind], argv[optind + 1], udp);
        if (rc != 0)
            return rc;
    }
    hostport api_at;
    int rc = check_api(api_text != NULL ? api_text : "127.0.0.1:8474", &api_at);
    if (rc != 0)
        return rc;

    long fds = cli_raise_fd_limit();
    /* Each UDP client entry is a descriptor; the API, listeners and TCP connections
     * need some too. Past the limit entries are refused, which deserves a word now. */
    long entries = max_clients > 0 ? max_clients : 1024;
    if ((udp || max_clients > 0) && entries > fds - 64)
        fprintf(stderr,
                "sockit proxy: warning: up to %ld UDP client entries, but only %ld "
                "descriptors (ulimit -n): clients past about %ld are refused\n",
                entries, fds, fds > 64 ? fds - 64 : 0);
    signal(SIGPIPE, SIG_IGN);
    int tls_status = 0;
    sockit_tls_ctx *listen_tls = tls_opts_context(&tls, true, &tls_status);
    sockit_tls_ctx *upstream_tls =
        tls_status == 0 ? tls_opts_context(&up, false, &tls_status) : NULL;
    if (tls_status != 0) {
        sockit_tls_ctx_free(listen_tls);
        return tls_status;
    }
    sockit_loop *loop = sockit_loop_new(NULL);
    if (loop == NULL)
        return cli_fail_lib();
    registry reg = {
        .loop = loop,
        .seed = (unsigned long long)seed,
        .connect_timeout = connect_timeout,
        .idle_timeout = idle_timeout,
        .max_clients = (int)max_clients,
        .on_event = cli_json_on() ? on_event : NULL,
        .listen_tls = listen_tls,
        .upstream_tls = upstream_tls,
        .upstream_tls_name = up.sni,
    };
    api_server api = {0};
    sockit_signal *sigs[2] = {sockit_signal_new(loop, on_signal, loop),
                              sockit_signal_new(loop, on_signal, loop)};
    int status = CLI_OK;
    if (sigs[0] == NULL || sigs[1] == NULL || sockit_signal_start(sigs[0], SIGINT) < 0 ||
        sockit_signal_start(sigs[1], SIGTERM) < 0)
        status = cli_fail_lib();
    /* Even with every proxy down (no listener) it runs until a signal. */
    sockit_signal_keepalive(sigs[0], true);
    registry_error err;
    if (status == CLI_OK && one_off) {
        registry_entry *e = registry_create(&reg, name, argv[optind], argv[optind + 1],
                                            udp ? SOCK_DGRAM : SOCK_STREAM, !down, &err);
        if (e == NULL)
            status = cli_fail("%s", err.message);
        for (int d = 0; d < 2 && status == CLI_OK; d++)
            if (pl.directions & (1 << d))
                status = plan_add_toxics(e->proxy, &pl, (sockit_proxy_direction)d);
    }
    if (status == CLI_OK && config != NULL)
        status = load_config(&reg, config);
    if (status == CLI_OK && (api_text != NULL || !one_off))
        status = start_api(&api, loop, &reg, &api_at);
    if (status == CLI_OK) {
        for (registry_entry *e = reg.head; e != NULL; e = e->next)
            tell_bound(e);
        fflush(stdout);
        if (sockit_loop_run(loop) < 0)
            status = cli_fail_lib();
    }
    api_stop(&api);
    registry_close_all(&reg);
    for (int i = 0; i < 2; i++)
        sockit_signal_close(sigs[i]);
    /* The connections end within a second or so (PX_LINGER_UP); then the loop is
     * empty. */
    for (int i = 0; i < 600 && sockit_loop_close(loop) == -EBUSY; i++)
        sockit_loop_run_once(loop, 0.01);
    sockit_tls_ctx_free(listen_tls);
    sockit_tls_ctx_free(upstream_tls);
    return status;
}
