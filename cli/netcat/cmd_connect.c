/* sockit connect: netcat's client side. Connects (TCP, Unix stream, or with -u a
 * connected UDP / Unix datagram socket) from -s/-p's local end (source.h), with
 * --tls makes the stream TLS, and hands the socket to the relay, or with --exec to
 * a command (exec.h); with -z checks a range of ports instead (portscan.h). */
#include "child.h"
#include "cli.h"
#include "dgram.h"
#include "exec.h"
#include "netlog.h"
#include "netopts.h"
#include "portscan.h"
#include "relay.h"
#include "source.h"
#include "tls_opts.h"

static int fail(const netopts *o, const char *reason)
{
    int status = source_fail(o);
    netlog_exit(reason, 0, 0, -1);
    return status;
}

/* A connected datagram socket: replies from anyone else are filtered by the kernel,
 * and ICMP port-unreachable surfaces as ECONNREFUSED. */
static sockit *dgram_connect(const netopts *o)
{
    sockit_addr to;
    sockit *s;
    if (o->is_unix) {
        if (sockit_addr_parse(&to, o->host) < 0)
            return NULL;
        s = sockit_socket(AF_UNIX, SOCK_DGRAM);
        /* A NULL host binds a free abstract name (autobind), so the server has an
         * address to answer to. */
        if (s != NULL && sockit_bind(s, NULL, 0) < 0) {
            sockit_close(s);
            return NULL;
        }
    } else {
        char port[8];
        snprintf(port, sizeof port, "%d", o->port);
        sockit_addrinfo ai;
        if (sockit_getaddrinfo(o->host, port, source_family(o), SOCK_DGRAM, 0, &ai, 1) < 0)
            return NULL;
        to = ai.addr;
        s = sockit_socket(ai.family, SOCK_DGRAM);
        if (s != NULL && source_bind_dgram(o, s, ai.family) < 0) {
            sockit_close(s);
            return NULL;
        }
    }
    if (s != NULL && sockit_connect_addr(s, &to) < 0) {
        sockit_close(s);
        return NULL;
    }
    return s;
}

int cmd_connect(int argc, char **argv)
{
    netopts o;
    int status = netopts_parse(argc, argv, false, &o);
    if (status >= 0)
        return status;
    netlog_verbose(o.verbose);
    if (o.scan)
        return portscan_run(&o);
    if (source_check(&o) != 0) {
        netlog_exit("error", 0, 0, -1);
        return CLI_FAIL;
    }
    relay_config cfg = {.half_close = o.half_close,
                        .hexdump = o.hexdump,
                        .idle = o.idle,
                        .linger = o.linger,
                        .max_clients = 1};
    /* A command that cannot run is said before anything connects. */
    if (o.exec != NULL && child_check(o.exec, o.exec_shell) != 0) {
        netlog_exit("error", 0, 0, -1);
        return CLI_FAIL;
    }
    if (o.is_unix && (status = cli_check_unix_path(o.host, false)) != 0) {
        netlog_exit("error", 0, 0, -1);
        return status;
    }
    sockit_tls_ctx *tls = tls_opts_context(&o.tls, false, &status);
    if (status != 0) {
        netlog_exit("error", 0, 0, -1);
        return status;
    }
    sockit *c;
    if (o.udp) {
        c = dgram_connect(&o);
    } else {
        c = source_connect(&o, tls, o.port, o.wait, NULL);
    }
    sockit_tls_ctx_free(tls); /* the connection keeps its own reference */
    if (c == NULL)
        return fail(&o, sockit_errcode() == SOCKIT_ETIMEOUT ? "timeout" : "error");
    sockit_addr peer;
    if (sockit_getpeername(c, &peer) < 0)
        sockit_addr_parse(&peer, o.host); /* a unix: host; else left for "?" */
    char name[CLI_PEER_NAME_MAX];
    netlog_connected(cli_addr_text(&peer, name, sizeof name), false, c);
    if (o.udp)
        return dgram_relay(c, true, &cfg, -1);
    if (o.exec != NULL) {
        exec_cmd cmd = {o.exec, o.exec_shell};
        return exec_one(c, name, &cmd);
    }
    return relay_stream(c, &peer, &cfg);
}
