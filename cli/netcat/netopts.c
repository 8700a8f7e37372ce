/* Option parsing and help for the netcat pair. Numbers go through the checked
 * parsers in util.c, so "abc", "70000" or "-1" are usage errors, never wrapped. */
#include "netopts.h"

#include <getopt.h>
#include <string.h>
#include <sys/resource.h>

static const char *const listen_usage =
    "sockit listen [-u] [-k] [--broker|--chat] [-m MAX] [-4|-6] [-v] [-x] [-w SECS] "
    "[-i SECS] [-q SECS] [--no-shutdown] [--json] " TLS_OPTS_SERVER_USAGE
    " [HOST] PORT | unix:PATH";
static const char *const connect_usage =
    "sockit connect [-u] [-4|-6] [-v] [-x] [-w SECS] [-i SECS] [-q SECS] [--no-shutdown] "
    "[--json] " TLS_OPTS_CLIENT_USAGE " HOST PORT | unix:PATH";

const char *netopts_usage(bool listen) { return listen ? listen_usage : connect_usage; }

static void help(bool listen)
{
    printf("usage: %s\n\n", netopts_usage(listen));
    if (listen)
        printf("netcat, listening side. Wait for a client on PORT, then copy stdin to it and\n"
               "what it sends to stdout, byte for byte. Without HOST, listen on every\n"
               "interface, IPv6 and IPv4 (one dual-stack socket where the system has them,\n"
               "else 0.0.0.0). PORT 0 picks a free port (-v or --json tells which).\n"
               "HOST PORT may also be HOST:PORT, [V6] PORT or [V6]:PORT; a lone number is\n"
               "the PORT. unix:/path listens on a Unix socket (a stale socket file is\n"
               "replaced, any other file is left alone and refused), unix:@name on a Linux\n"
               "abstract one; a unix: host takes no PORT.\n"
               "Without -k, serve one client and exit when it is done.\n\n");
    else
        printf("netcat, connecting side. Connect to HOST PORT (every address of HOST, IPv6\n"
               "and IPv4 raced with Happy Eyeballs), then copy stdin to the connection and\n"
               "what arrives to stdout, byte for byte. HOST PORT may also be HOST:PORT or\n"
               "[V6]:PORT. unix:/path or unix:@name connects to a Unix socket and takes\n"
               "no PORT.\n\n");
    printf("When stdin ends the write side is shut down (the peer reads end of stream)\n"
           "and what still arrives is printed until the peer closes. The connection is\n"
           "done when both directions have ended, when the peer resets it, or when\n"
           "stdout closes. If the peer closes first and stdin is a terminal, exit at\n"
           "once, since nobody could read what is typed next. If the peer ends the\n"
           "connection before all of stdin was read, sent and acknowledged by its TCP,\n"
           "say how many bytes were not delivered and exit 1.\n\n");
    printf("options:\n"
           "  -u              UDP (or Unix datagram): each stdin line, '\\n' included, is\n"
           "                  one datagram (a line over 65507 bytes is sent in pieces);\n"
           "                  each datagram received is written to stdout as is\n");
    if (listen)
        printf("                  (listen -u serves every sender and replies to the last;\n"
               "                  stdin waits until someone has sent)\n"
               "  -k              keep listening: serve clients concurrently; what each\n"
               "                  sends goes to stdout, stdin goes to all of them; a client\n"
               "                  is closed when it closes its side; runs until SIGINT or\n"
               "                  SIGTERM (exit 0). With -u, no change: -u always keeps on\n"
               "  --broker        -k as a hub (ncat's connection brokering): what each client\n"
               "                  sends goes to every other client, in whole read chunks;\n"
               "                  stdin and stdout are not used. Each client has an output\n"
               "                  queue of at most 1 MiB; a client that does not read and\n"
               "                  lets it fill is disconnected (said on stderr), so it\n"
               "                  never holds the others up\n"
               "  --chat          --broker line by line: each line goes out prefixed with\n"
               "                  its sender, \"<127.0.0.1:5555> text\"; a partial line waits\n"
               "                  for its end (up to 16 KiB, then it is cut)\n"
               "  -m MAX          with -k (not -u): at most MAX clients at once; the others\n"
               "                  wait in the listen backlog. Default: as many as the\n"
               "                  open-file limit allows (listen -k raises its soft\n"
               "                  RLIMIT_NOFILE to the hard limit, and keeps %d for\n"
               "                  itself), so idle or slow clients never lock others out\n",
               NETOPTS_FD_RESERVE);
    printf("  -4, -6          IPv4 only, IPv6 only\n"
           "  -v              say what happens on stderr (listening on, connection from,\n"
           "                  connected to, closed by peer)\n"
           "  -x              hex dump of the traffic on stderr ('>' sent, '<' received)\n");
    if (listen)
        printf("  -w SECS         give up if no client connects (with -u, sends) within\n"
               "                  SECS (exit 1); with -k, the first client\n");
    else
        printf("  -w SECS         connect timeout: one deadline for resolving and every\n"
               "                  attempt (exit 1); not with -u, which connects at once\n");
    printf("  -i SECS         close a connection when nothing moved either way for SECS\n"
           "                  (exit 0, reason idle)\n"
           "  -q SECS         after stdin ends, wait at most SECS for the peer, then exit\n"
           "                  (0: exit as soon as stdin is sent; default: wait for the\n"
           "                  peer; with -u, forever%s)\n"
           "  --no-shutdown   do not shut down the write side when stdin ends (not -u)\n"
           "  --json          one JSON object per event on stderr (bound, connected,\n"
           "                  closed, error, exit); stdout carries only the data\n"
           "  -h, --help      this page\n\n"
           "Seconds may be fractional; 0 for -w or -i means no limit (one rule for every\n"
           "time option: TIME OPTIONS in sockit(1)); -q 0 is the one exception, netcat's:\n"
           "quit at once after the end of input.%s\n"
           "SIGINT/SIGTERM end %s with status 0, a single connection not yet done\n"
           "with 1.\n"
           "exit status: 0 done, 1 network or system failure (connection refused,\n"
           "timeout, address in use, input not delivered), 2 bad usage. SIGPIPE never\n"
           "kills it: a closed stdout ends the session.\n",
           listen ? "; with -k, closes each client" : "",
           listen ? "\nWith -x and -k the offsets count all clients' bytes together." : "",
           listen ? "-k and -u" : "-u");
    tls_opts_help(listen);
    printf("  -v says \"tls: TLSv1.3 TLS_AES_256_GCM_SHA384, alpn h2, peer CN=localhost\"\n"
           "  after the connection line (alpn and peer when there are), --json adds\n"
           "  tls_version, tls_cipher, tls_alpn and tls_peer to the connected event.\n");
    if (listen)
        printf("  A client's handshake must finish within -w (default 10 s): alone, a\n"
               "  failed one exits 1; with -k, --broker and --chat the client is closed,\n"
               "  said on stderr, and the others go on.\n");
    else
        printf("  -w bounds the connect and the handshake together.\n");
    printf("  A peer that closes without TLS's close_notify is an error (exit 1 alone):\n"
           "  the stream may have been cut short.\n");
}

long netopts_max_clients(void)
{
    long fds = cli_raise_fd_limit();
    return fds > NETOPTS_FD_RESERVE ? fds - NETOPTS_FD_RESERVE : 1;
}

/* The [HOST] PORT, HOST:PORT or unix:PATH operands (hostport.h's rule). */
static int operands(int n, char **args, netopts *o)
{
    const char *usage = netopts_usage(o->listen);
    int rc = cli_parse_operands(usage, n, args, o->listen ? HOSTPORT_LISTENER : 0, &o->target);
    if (rc != 0)
        return rc;
    o->is_unix = o->target.is_unix;
    o->host = o->target.host[0] != '\0' ? o->target.host : NULL;
    o->port = o->is_unix ? 0 : o->target.port;
    if (o->is_unix && o->family != AF_UNSPEC)
        return cli_usage_error(usage, "-4/-6 do not apply to a unix: host");
    return 0;
}

/* Options that mean nothing together are refused rather than ignored. */
static int combinations(const netopts *o, bool m_given, bool w_given)
{
    const char *usage = netopts_usage(o->listen);
    if (m_given && !o->keep)
        return cli_usage_error(usage, "-m: limits the clients of -k; without -k there is one");
    if (m_given && o->udp)
        return cli_usage_error(usage, "-m: a datagram listener (-u) has no clients to count");
    if (!o->half_close && o->udp)
        return cli_usage_error(usage, "--no-shutdown: a datagram socket (-u) has no write side "
                                      "to shut down");
    const char *hub = o->broker == RELAY_CHAT ? "--chat" : "--broker";
    if (o->broker && o->udp)
        return cli_usage_error(usage, "%s: a datagram listener (-u) has no clients to connect",
                               hub);
    if (o->broker && (o->linger >= 0 || !o->half_close))
        return cli_usage_error(usage,
                               "%s: -q and --no-shutdown are about stdin, which %s does "
                               "not read",
                               hub, hub);
    if (o->tls.on && o->udp)
        return cli_usage_error(usage,
                               "%s: TLS runs over a stream; -u (datagrams) would need "
                               "DTLS, which sockit does not have",
                               o->tls.first);
    if (o->tls.on && !o->listen && o->is_unix && o->tls.sni == NULL && !o->tls.insecure)
        return cli_usage_error(usage,
                               "%s to a unix: socket: give --sni NAME (the name the "
                               "server's certificate carries) or --insecure",
                               o->tls.first);
    int tls_rc = tls_opts_check(&o->tls, o->listen, usage);
    if (tls_rc != 0)
        return tls_rc;
    if (w_given && o->udp && !o->listen)
        return cli_usage_error(usage, "-w: connect -u does not wait to connect (a datagram "
                                      "socket connects at once); -i bounds the silence");
    return -1;
}

/* -w and -i take 0 as "no limit"; -q takes 0 as "at once". */
static int seconds(const char *usage, const char *option, bool zero_is_none, double *out)
{
    int rc = cli_parse_seconds(usage, option, optarg, out);
    if (rc == 0 && zero_is_none && *out == 0)
        *out = -1;
    return rc;
}

int netopts_parse(int argc, char **argv, bool listen, netopts *o)
{
    const char *usage = netopts_usage(listen);
    *o = (netopts){.listen = listen,
                   .half_close = true,
                   .family = AF_UNSPEC,
                   .wait = -1,
                   .idle = -1,
                   .linger = -1};
    static const struct option longopts[] = {
        {"udp", no_argument, NULL, 'u'},
        {"keep-open", no_argument, NULL, 'k'},
        {"broker", no_argument, NULL, 'B'},
        {"chat", no_argument, NULL, 'C'},
        {"max-clients", required_argument, NULL, 'm'},
        {"verbose", no_argument, NULL, 'v'},
        {"hexdump", no_argument, NULL, 'x'},
        {"wait", required_argument, NULL, 'w'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"quit-after", required_argument, NULL, 'q'},
        {"no-shutdown", no_argument, NULL, 'N'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        TLS_OPTS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    /* connect has no -k or -m; getopt then reports them as unknown. */
    const char *shortopts = listen ? ":ukm:46vxw:i:q:h" : ":u46vxw:i:q:h";
    bool v4 = false, v6 = false, m_given = false, w_given = false;
    opterr = 0;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'u':
            o->udp = true;
            break;
        case 'k':
            if (!listen)
                return cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
            o->keep = true;
            break;
        case 'B':
        case 'C':
            if (!listen)
                return cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
            o->broker = opt == 'C' ? RELAY_CHAT : RELAY_BROKER;
            o->keep = true;
            break;
        case 'm':
            if (!listen)
                return cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
            rc = cli_parse_count(usage, "-m", optarg, 1, 100000, &o->max_clients);
            m_given = true;
            break;
        case '4':
            v4 = true;
            break;
        case '6':
            v6 = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'x':
            o->hexdump = true;
            break;
        case 'w':
            rc = seconds(usage, "-w", true, &o->wait);
            w_given = true;
            break;
        case 'i':
            rc = seconds(usage, "-i", true, &o->idle);
            break;
        case 'q':
            rc = seconds(usage, "-q", false, &o->linger);
            break;
        case 'N':
            o->half_close = false;
            break;
        case 'j':
            cli_json_enable(stderr);
            break;
        case 'h':
            help(listen);
            return CLI_OK;
        case ':':
            return cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            rc = tls_opts_take(&o->tls, opt, usage);
            if (rc < 0)
                return cli_unknown_option(usage, argc, argv, listen ? 0 : 1);
        }
        if (rc != 0)
            return rc;
    }
    if (v4 && v6)
        return cli_usage_error(usage, "-4 and -6 exclude each other");
    o->family = v4 ? AF_INET : v6 ? AF_INET6 : AF_UNSPEC;
    int rc = operands(argc - optind, argv + optind, o);
    if (rc == 0)
        rc = combinations(o, m_given, w_given);
    if (rc < 0 && o->keep && !o->udp) {
        long fit = netopts_max_clients();
        if (!m_given)
            o->max_clients = fit;
    }
    return rc;
}
