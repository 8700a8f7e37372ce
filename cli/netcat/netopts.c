/* Option parsing and help for the netcat pair. Numbers go through the checked
 * parsers in util.c, so "abc", "70000" or "-1" are usage errors, never wrapped. */
#include "netopts.h"

#include "dgram_sessions.h"
#include "exec.h"
#include "portscan.h"
#include "source.h"

#include <getopt.h>
#include <string.h>
#include <sys/resource.h>

static const char *const listen_usage =
    "sockit listen [-u] [-k] [--broker|--chat] [-m MAX] [-4|-6] [-v] [-x] [-w SECS] "
    "[-i SECS] [-q SECS] [--no-shutdown] [--allow|--deny ADDR[/PREFIX],...] "
    "[--allowfile|--denyfile FILE] [--conn-rate N[/SECS]] [-e CMD|-c CMD] "
    "[--json] " TLS_OPTS_SERVER_USAGE " [HOST] PORT | unix:PATH";
static const char *const connect_usage =
    "sockit connect [-u] [-z] [-4|-6] [-s ADDR] [-p PORT] [-v] [-x] [-w SECS] [-i SECS] "
    "[-q SECS] [--no-shutdown] [-e CMD|-c CMD] [--json] [--proxy URL] " TLS_OPTS_CLIENT_USAGE
    " HOST PORT[-PORT] | unix:PATH";

const char *netopts_usage(bool listen) { return listen ? listen_usage : connect_usage; }

/* -e and -c: what the command gets, and what it exposes. */
static void exec_help(bool listen)
{
    if (listen)
        printf("  -e, --exec CMD  run CMD for the client, the connection as its stdin and\n"
               "                  stdout (ncat -e); with -k each client gets its own CMD,\n"
               "                  at most -m at once, each reaped as it ends. Alone, exit\n"
               "                  with CMD's status (128+N: killed by signal N)\n");
    else
        printf("  -e, --exec CMD  once connected, run CMD with the connection as its stdin\n"
               "                  and stdout (ncat -e); exit with CMD's status (128+N:\n"
               "                  killed by signal N)\n");
    printf("                  CMD is split into words on spaces and tabs, with no\n"
           "                  quoting, and the first word is looked up in PATH. CMD's\n"
           "                  stderr is sockit's; sockit's stdin and stdout are not\n"
           "                  used. A plain connection is CMD's own socket; a TLS one\n"
           "                  is relayed to CMD through a socketpair. SIGINT/SIGTERM\n"
           "                  send CMD's process group SIGTERM (SIGKILL after %g s)\n"
           "  -c, --sh-exec CMD\n"
           "                  the same through /bin/sh -c CMD (ncat -c): quotes, pipes\n"
           "                  and redirections work. Not with -u, -x, -i, -q,\n"
           "                  --no-shutdown%s\n",
           EXEC_GRACE, listen ? ", --broker or --chat" : " or -z");
    if (listen)
        printf("                  Anyone who can connect runs CMD with sockit's\n"
               "                  privileges: restrict them with --allow/--deny, or\n"
               "                  listen on 127.0.0.1 only\n");
}

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
               "no PORT. With -z, check which ports of PORT-PORT accept a connection.\n\n");
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
               "                  SIGTERM (exit 0). With -u: a session per sender address,\n"
               "                  begun by its first datagram (-v: \"connection from ...\");\n"
               "                  each stdin line goes to every session, stdin is read only\n"
               "                  while there is one; a session ends after -i SECS without\n"
               "                  a datagram from its peer (default %g; -i 0: never). A Unix\n"
               "                  sender that bound no name is printed, never answered\n"
               "  --broker        -k as a hub (ncat's connection brokering): what each client\n"
               "                  sends goes to every other client, in whole read chunks;\n"
               "                  stdin and stdout are not used. Each client has an output\n"
               "                  queue of at most 1 MiB; a client that does not read and\n"
               "                  lets it fill is disconnected (said on stderr), so it\n"
               "                  never holds the others up\n"
               "  --chat          --broker line by line: each line goes out prefixed with\n"
               "                  its sender, \"<127.0.0.1:5555> text\"; a partial line waits\n"
               "                  for its end (up to 16 KiB, then it is cut)\n"
               "  -m MAX          with -k: at most MAX clients at once; the others\n"
               "                  wait in the listen backlog. Default: as many as the\n"
               "                  open-file limit allows (listen -k raises its soft\n"
               "                  RLIMIT_NOFILE to the hard limit, and keeps %d for\n"
               "                  itself), so idle or slow clients never lock others out.\n"
               "                  With -u -k: at most MAX sessions (default %d); a new\n"
               "                  sender's datagrams are dropped while all are in use\n"
               "                  (counted; -v says so at most once a second)\n",
               DGRAM_SESSION_IDLE, NETOPTS_FD_RESERVE, DGRAM_SESSIONS_DEFAULT);
    printf("  -4, -6          IPv4 only, IPv6 only\n"
           "  -v              say what happens on stderr (listening on, connection from,\n"
           "                  connected to, closed by peer)\n"
           "  -x              hex dump of the traffic on stderr ('>' sent, '<' received)\n");
    if (!listen)
        printf("  -s ADDR         connect from local address ADDR (numeric IPv4 or IPv6): only\n"
               "                  HOST's addresses of its family are tried\n"
               "  -p PORT         connect from local port PORT (1-65535): the attempts are then\n"
               "                  made one at a time; SO_REUSEADDR lets a port the last run\n"
               "                  left in TIME_WAIT be used again, never one in use\n"
               "  -z              port check (nc -z): connect to each port of PORT[-PORT] in\n"
               "                  turn, send nothing, close. -v says each port's state\n"
               "                  (\"127.0.0.1 port 5000 open (connected to 127.0.0.1:5000)\",\n"
               "                  \"... closed (Connection refused)\"), --json a port event\n"
               "                  each. -w bounds each port (default %g s). Exit 0 if any\n"
               "                  port connected, else 1. TCP only: not -u, --tls, unix:\n"
               "  --proxy URL     connect through a proxy: socks5://[USER:PASS@]H[:P] (HOST\n"
               "                  resolved here), socks5h://... (by the proxy) or\n"
               "                  http://... (CONNECT); -w covers the proxy's handshake\n"
               "                  (ncat --proxy, nc -x); TCP only\n",
               NETOPTS_SCAN_WAIT);
    if (listen)
        printf("  -w SECS         give up if no client connects (with -u, sends) within\n"
               "                  SECS (exit 1); with -k, the first client\n"
               "  --allow LIST    let in only clients whose address matches a rule of LIST:\n"
               "                  ADDR or ADDR/PREFIX, IPv4 or IPv6, commas between;\n"
               "                  repeatable (ncat's --allow). IPv4 clients of a dual-stack\n"
               "                  listener match IPv4 rules; host names are refused\n"
               "  --deny LIST     refuse the clients that match a rule; wins over --allow.\n"
               "                  A refused client is reset at once and never sees stdin\n"
               "                  (-v: \"refused 127.0.0.2:5555: not in --allow\"); with -u,\n"
               "                  the datagrams of a refused address are dropped\n"
               "  --allowfile FILE, --denyfile FILE\n"
               "                  rules from FILE: lists one a line, '#' to end of line ignored\n"
               "  --conn-rate N[/SECS]\n"
               "                  with -k: at most N connections per client address in SECS\n"
               "                  (default 1), with -u -k N new sessions; the others are\n"
               "                  refused, their datagrams dropped (remembers %d addresses)\n",
               RATELIMIT_SOURCES);
    else
        printf("  -w SECS         connect timeout: one deadline for resolving and every\n"
               "                  attempt (exit 1); not with -u, which connects at once\n");
    exec_help(listen);
    printf("  -i SECS         close a connection when nothing moved either way for SECS\n"
           "                  (exit 0, reason idle)%s\n",
           listen ? ";" : "");
    if (listen)
        printf("                  with -u -k, end a session after SECS without a datagram\n"
               "                  from its peer (default %g)\n",
               DGRAM_SESSION_IDLE);
    printf("  -q SECS         after stdin ends, wait at most SECS for the peer, then exit\n"
           "                  (0: exit as soon as stdin is sent; default: wait for the\n"
           "                  peer; with -u, forever%s)\n"
           "  --no-shutdown   do not shut down the write side when stdin ends (not -u)\n"
           "  --json          one JSON object per event on stderr (bound, connected,\n"
           "                  closed, denied, port, error, exit); stdout carries only\n"
           "                  the data\n"
           "  -h, --help      this page\n\n"
           "Seconds may be fractional; 0 for -w or -i means no limit (one rule for every\n"
           "time option: TIME OPTIONS in sockit(1)); -q 0 is the one exception, netcat's:\n"
           "quit at once after the end of input.%s\n"
           "SIGINT/SIGTERM end %s with status 0, a single connection not yet done\n"
           "with 1.\n"
           "exit status: 0 done, 1 network or system failure (connection refused,\n"
           "timeout, address in use, input not delivered), 2 bad usage. SIGPIPE never\n"
           "kills it: a closed stdout ends the session.\n",
           listen ? "; with -k, closes each client;\n                  not with -u -k" : "",
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

/* getopt_long values of the options without a letter: past every character, and
 * apart from tls_opts.h's. */
enum {
    OPT_ALLOW = 0x7301,
    OPT_DENY,
    OPT_ALLOWFILE,
    OPT_DENYFILE,
    OPT_CONN_RATE,
    OPT_PROXY,
};
static const char *const gate_names[] = {"--allow", "--deny", "--allowfile", "--denyfile",
                                         "--conn-rate"};

/* Which options were given, for the checks made once all are read. */
typedef struct seen_opts {
    const char *rules; /* the first of --allow, --deny, --allowfile, --denyfile */
    bool rate;         /* --conn-rate */
    long rate_n;
    double rate_secs;
    bool data_options; /* -x, -i, -q or --no-shutdown, which -z has no use for */
} seen_opts;

/* connect -z: the range at the end of the last operand, taken off before the
 * operands are read by hostport.h's rule. A port alone is a range of one. */
static int scan_range(const char *usage, int n, char **args, char *last_arg, size_t size,
                      netopts *o)
{
    char why[256];
    o->scan_last = -1;
    if (n == 0)
        return 0;
    if (portscan_split(args[n - 1], last_arg, size, &o->scan_last, why, sizeof why) < 0)
        return cli_usage_error(usage, "%s", why);
    args[n - 1] = last_arg;
    return 0;
}

/* The [HOST] PORT, HOST:PORT or unix:PATH operands (hostport.h's rule). */
static int operands(int n, char **args, netopts *o)
{
    const char *usage = netopts_usage(o->listen);
    char last_arg[HOSTPORT_HOST_MAX + 16];
    char *copy[2];
    if (o->scan && n >= 1 && n <= 2) {
        copy[0] = args[0];
        copy[1] = n == 2 ? args[1] : NULL;
        args = copy;
        int rc = scan_range(usage, n, args, last_arg, sizeof last_arg, o);
        if (rc != 0)
            return rc;
    }
    int rc = cli_parse_operands(usage, n, args, o->listen ? HOSTPORT_LISTENER : 0, &o->target);
    if (rc != 0)
        return rc;
    o->is_unix = o->target.is_unix;
    o->host = o->target.host[0] != '\0' ? o->target.host : NULL;
    o->port = o->is_unix ? 0 : o->target.port;
    if (o->is_unix && o->family != AF_UNSPEC)
        return cli_usage_error(usage, "-4/-6 do not apply to a unix: host");
    if (o->scan && !o->is_unix) {
        if (o->scan_last < 0)
            o->scan_last = o->port;
        if (o->scan_last < o->port)
            return cli_usage_error(usage, "port range %d-%d: the first port is after the last",
                                   o->port, o->scan_last);
    }
    return 0;
}

/* What -s, -p and -z go with, and what not. */
static int source_combinations(const netopts *o, const seen_opts *seen)
{
    const char *usage = netopts_usage(o->listen);
    if ((o->source_text != NULL || o->source_port != 0) && o->is_unix)
        return cli_usage_error(usage, "%s: a unix: socket has no IP address or port to bind",
                               o->source_text != NULL ? "-s" : "-p");
    int family = o->source_text != NULL ? sockit_addr_family(&o->source) : AF_UNSPEC;
    const char *fam_name = family == AF_INET ? "IPv4" : "IPv6";
    if (family != AF_UNSPEC && o->family != AF_UNSPEC && family != o->family)
        return cli_usage_error(usage, "-s %s is %s, and %s asks for the other family",
                               o->source_text, fam_name, o->family == AF_INET ? "-4" : "-6");
    sockit_addr numeric;
    if (family != AF_UNSPEC && o->host != NULL && source_parse(o->host, &numeric) == 0 &&
        sockit_addr_family(&numeric) != family)
        return cli_usage_error(usage, "-s %s: an %s source cannot reach %s, an %s address",
                               o->source_text, fam_name, o->host,
                               family == AF_INET ? "IPv6" : "IPv4");
    if (!o->scan)
        return 0;
    if (o->udp)
        return cli_usage_error(usage, "-z: UDP ports cannot be checked by connecting (a datagram "
                                      "socket connects without a word to the peer); -z is TCP "
                                      "only");
    if (o->is_unix)
        return cli_usage_error(usage, "-z: checks the ports of a HOST, not a unix: socket");
    if (o->tls.on)
        return cli_usage_error(usage, "-z: connects and closes at once; %s has nothing to do",
                               o->tls.first);
    if (seen->data_options)
        return cli_usage_error(usage, "-z: sends and receives nothing; -x, -i, -q and "
                                      "--no-shutdown do not apply");
    return 0;
}

/* What the rules and --conn-rate go with. */
static int gate_combinations(const netopts *o, const seen_opts *seen)
{
    const char *usage = netopts_usage(o->listen);
    if (seen->rules != NULL && o->is_unix)
        return cli_usage_error(usage, "%s: the clients of a unix: socket have no IP address",
                               seen->rules);
    if (seen->rate && o->is_unix)
        return cli_usage_error(usage,
                               "--conn-rate: the clients of a unix: socket have no IP address");
    if (seen->rate && o->udp && !o->keep)
        return cli_usage_error(usage, "--conn-rate: a datagram listener (-u) has no connections to "
                                      "count; with -k it limits new sessions");
    if (seen->rate && !o->keep)
        return cli_usage_error(usage, "--conn-rate: limits the clients of -k; without -k there "
                                      "is one");
    return 0;
}

/* What -e and -c go with: a stream connection whose bytes sockit does not see. */
static int exec_combinations(const netopts *o, const seen_opts *seen)
{
    const char *usage = netopts_usage(o->listen);
    const char *name = o->exec_shell ? "--sh-exec" : "--exec";
    if (o->udp)
        return cli_usage_error(usage,
                               "%s: runs a command on a stream connection; -u (datagrams) is "
                               "not supported with it",
                               name);
    if (o->scan)
        return cli_usage_error(usage,
                               "%s: -z connects and closes at once; there is no connection to "
                               "run a command on",
                               name);
    if (o->broker)
        return cli_usage_error(usage,
                               "%s and %s exclude each other: each client talks to its own "
                               "command, not to the other clients",
                               name, o->broker == RELAY_CHAT ? "--chat" : "--broker");
    if (o->hexdump)
        return cli_usage_error(usage,
                               "%s: the connection is the command's own, so -x would see none "
                               "of its bytes",
                               name);
    if (seen->data_options)
        return cli_usage_error(usage,
                               "%s: -i, -q and --no-shutdown are about stdin and stdout, which "
                               "%s does not use (the command has the connection)",
                               name, name);
    return 0;
}

/* Options that mean nothing together are refused rather than ignored. */
static int combinations(const netopts *o, bool m_given, bool w_given, const seen_opts *seen)
{
    const char *usage = netopts_usage(o->listen);
    int rc = o->exec != NULL ? exec_combinations(o, seen) : 0;
    if (rc != 0)
        return rc;
    rc = o->listen ? gate_combinations(o, seen) : source_combinations(o, seen);
    if (rc != 0)
        return rc;
    if (m_given && o->udp && !o->keep)
        return cli_usage_error(usage, "-m: limits the sessions of -u -k; without -k, listen -u "
                                      "answers the last sender");
    if (m_given && !o->keep)
        return cli_usage_error(usage, "-m: limits the clients of -k; without -k there is one");
    if (o->listen && o->udp && o->keep && o->linger >= 0)
        return cli_usage_error(usage, "-q: listen -u -k goes on after stdin ends, and a session "
                                      "has nothing to close (it ends by -i)");
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
    if (o->proxy != NULL && (o->udp || o->is_unix || o->scan || o->source_port != 0))
        return cli_usage_error(usage, "--proxy: a proxy tunnels one TCP connection, not %s",
                               o->udp       ? "-u"
                               : o->is_unix ? "to a unix: socket"
                               : o->scan    ? "a port scan (-z)"
                                            : "from a fixed port (-p: the proxy picks its own)");
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

/* -s, -p and -z. */
static int source_option(const char *usage, int opt, const char *arg, netopts *o)
{
    long port;
    switch (opt) {
    case 's':
        if (source_parse(arg, &o->source) < 0)
            return cli_usage_error(usage,
                                   "-s '%s': not a numeric IPv4 or IPv6 address (host names "
                                   "are not looked up)",
                                   arg);
        o->source_text = arg;
        return 0;
    case 'p':
        if (cli_parse_count(usage, "-p", arg, 1, 65535, &port) != 0)
            return CLI_USAGE;
        o->source_port = (int)port;
        return 0;
    default:
        o->scan = true;
        return 0;
    }
}

/* -e CMD and -c CMD: one command, and not a blank one. */
static int exec_option(const char *usage, int opt, const char *arg, netopts *o)
{
    const char *name = opt == 'c' ? "--sh-exec" : "--exec";
    if (o->exec != NULL && o->exec_shell == (opt == 'c'))
        return cli_usage_error(usage, "%s given twice: one command per connection", name);
    if (o->exec != NULL)
        return cli_usage_error(usage, "--exec and --sh-exec exclude each other");
    if (arg[strspn(arg, " \t")] == '\0')
        return cli_usage_error(usage, "%s '%s': no command to run", name, arg);
    o->exec = arg;
    o->exec_shell = opt == 'c';
    return 0;
}

/* --conn-rate N[/SECS]. */
static int conn_rate(const char *usage, const char *arg, seen_opts *seen)
{
    char n[32];
    const char *slash = strchr(arg, '/');
    size_t len = slash != NULL ? (size_t)(slash - arg) : strlen(arg);
    if (len >= sizeof n)
        return cli_usage_error(usage, "--conn-rate '%s': not N or N/SECS", arg);
    memcpy(n, arg, len);
    n[len] = '\0';
    seen->rate_secs = 1;
    if (cli_parse_count(usage, "--conn-rate", n, 1, 1000000, &seen->rate_n) != 0 ||
        (slash != NULL &&
         cli_parse_seconds(usage, "--conn-rate", slash + 1, &seen->rate_secs) != 0))
        return CLI_USAGE;
    if (seen->rate_secs <= 0)
        return cli_usage_error(usage, "--conn-rate '%s': SECS must be more than 0", arg);
    seen->rate = true;
    return 0;
}

/* --allow, --deny, --allowfile, --denyfile and --conn-rate. */
static int gate_option(const char *usage, int opt, const char *arg, netopts *o, seen_opts *seen)
{
    if (opt == OPT_CONN_RATE)
        return conn_rate(usage, arg, seen);
    const char *name = gate_names[opt - OPT_ALLOW];
    if (seen->rules == NULL)
        seen->rules = name;
    bool allow = opt == OPT_ALLOW || opt == OPT_ALLOWFILE;
    char why[512];
    if (opt == OPT_ALLOW || opt == OPT_DENY) {
        if (access_add(&o->gate.rules, allow, arg, why, sizeof why) < 0)
            return cli_usage_error(usage, "%s %s", name, why);
        return 0;
    }
    int rc = access_add_file(&o->gate.rules, allow, arg, why, sizeof why);
    if (rc == -1)
        return cli_fail("%s %s: %s", name, arg, why);
    if (rc < 0)
        return cli_usage_error(usage, "%s %s: %s", name, arg, why);
    return 0;
}

static int parse(int argc, char **argv, bool listen, netopts *o);

int netopts_parse(int argc, char **argv, bool listen, netopts *o)
{
    int rc = parse(argc, argv, listen, o);
    if (rc >= 0)
        netopts_free(o);
    return rc;
}

void netopts_free(netopts *o) { gate_free(&o->gate); }

static int parse(int argc, char **argv, bool listen, netopts *o)
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
        {"source", required_argument, NULL, 's'},
        {"source-port", required_argument, NULL, 'p'},
        {"scan", no_argument, NULL, 'z'},
        {"allow", required_argument, NULL, OPT_ALLOW},
        {"deny", required_argument, NULL, OPT_DENY},
        {"allowfile", required_argument, NULL, OPT_ALLOWFILE},
        {"denyfile", required_argument, NULL, OPT_DENYFILE},
        {"conn-rate", required_argument, NULL, OPT_CONN_RATE},
        {"proxy", required_argument, NULL, OPT_PROXY},
        {"exec", required_argument, NULL, 'e'},
        {"sh-exec", required_argument, NULL, 'c'},
        TLS_OPTS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    /* connect has no -k or -m, listen no -s, -p or -z; getopt then reports them as
     * unknown. */
    const char *shortopts = listen ? ":ukm:46vxw:i:q:he:c:" : ":u46vxw:i:q:hs:p:ze:c:";
    bool v4 = false, v6 = false, m_given = false, w_given = false, i_given = false;
    seen_opts seen = {0};
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
            seen.data_options = true;
            break;
        case 'w':
            rc = seconds(usage, "-w", true, &o->wait);
            w_given = true;
            break;
        case 'i':
            rc = seconds(usage, "-i", true, &o->idle);
            seen.data_options = true;
            i_given = true;
            break;
        case 'q':
            rc = seconds(usage, "-q", false, &o->linger);
            seen.data_options = true;
            break;
        case 'N':
            o->half_close = false;
            seen.data_options = true;
            break;
        case 'j':
            cli_json_enable(stderr);
            break;
        case 'h':
            help(listen);
            return CLI_OK;
        case 's':
        case 'p':
        case 'z':
            if (listen)
                return cli_usage_error(usage, "unknown option '-%c' (an option of connect)", opt);
            rc = source_option(usage, opt, optarg, o);
            break;
        case OPT_ALLOW:
        case OPT_DENY:
        case OPT_ALLOWFILE:
        case OPT_DENYFILE:
        case OPT_CONN_RATE:
            if (!listen)
                return cli_usage_error(usage, "unknown option '%s' (an option of listen)",
                                       gate_names[opt - OPT_ALLOW]);
            rc = gate_option(usage, opt, optarg, o, &seen);
            break;
        case 'e':
        case 'c':
            rc = exec_option(usage, opt, optarg, o);
            break;
        case OPT_PROXY:
            if (listen)
                return cli_usage_error(usage, "unknown option '--proxy' (an option of connect)");
            /* Checked now: a bad URL is a usage error before anything connects. */
            if (sockit_proxy_endpoint(optarg, NULL, 0, NULL) < 0)
                return cli_usage_error(usage, "--proxy: %s", sockit_errmsg());
            o->proxy = optarg;
            break;
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
        rc = combinations(o, m_given, w_given, &seen);
    if (rc < 0 && o->scan && !w_given)
        o->wait = NETOPTS_SCAN_WAIT;
    if (rc < 0 && seen.rate) {
        o->gate.rate = ratelimit_new(seen.rate_n, seen.rate_secs);
        o->gate.rate_n = seen.rate_n;
        o->gate.rate_secs = seen.rate_secs;
        if (o->gate.rate == NULL)
            return cli_fail("out of memory for --conn-rate's table");
    }
    if (rc < 0 && o->keep && !o->udp) {
        long fit = netopts_max_clients();
        if (!m_given)
            o->max_clients = fit;
    }
    if (rc < 0 && o->keep && o->udp) {
        /* Sessions cost no descriptor, but UDP never says a peer left: both bounds
         * have defaults (dgram_sessions.h says why). */
        if (!m_given)
            o->max_clients = DGRAM_SESSIONS_DEFAULT;
        if (!i_given)
            o->idle = DGRAM_SESSION_IDLE;
    }
    return rc;
}
