/* sockit listen: netcat's server side. Binds (every interface, dual-stack, unless
 * told otherwise), then serves one client, every client with -k, or datagrams with
 * -u, through the relays; with --tls each client's handshake comes first. */
#include "cli.h"
#include "dgram.h"
#include "netlog.h"
#include "netopts.h"
#include "relay.h"
#include "tls_opts.h"

static int fail(const char *reason)
{
    int status = cli_fail_lib();
    netlog_exit(reason, 0, 0, -1);
    return status;
}

/* A client's handshake without -w: long enough for a slow link, short enough that
 * a client that never speaks TLS does not hold the listener for long. */
#define LISTEN_TLS_TIMEOUT 10.0

/* The one client's server handshake, blocking within timeout. Returns 0, or -1 with
 * the library's error (c is then closed). */
static int handshake(sockit *c, sockit_tls_ctx *tls, double timeout)
{
    int rc = sockit_settimeout(c, timeout);
    if (rc == 0)
        rc = sockit_tls_wrap(c, tls, NULL);
    if (rc == 0)
        rc = sockit_settimeout(c, SOCKIT_BLOCKING);
    if (rc < 0) {
        sockit_close(c);
        return -1;
    }
    return 0;
}

static int serve(const netopts *o, relay_config *cfg, sockit *l, bool dual);

int cmd_listen(int argc, char **argv)
{
    netopts o;
    int status = netopts_parse(argc, argv, true, &o);
    if (status >= 0)
        return status;
    netlog_verbose(o.verbose);
    relay_config cfg = {.half_close = o.half_close,
                        .hexdump = o.hexdump,
                        .idle = o.idle,
                        .linger = o.linger,
                        .wait = o.wait,
                        .max_clients = o.max_clients,
                        .broker = o.broker};
    if (o.is_unix && (status = cli_check_unix_path(o.host, true)) != 0) {
        netlog_exit("error", 0, 0, -1);
        return status;
    }
    sockit_tls_ctx *tls = tls_opts_context(&o.tls, true, &status);
    if (status != 0) {
        netlog_exit("error", 0, 0, -1);
        return status;
    }
    cfg.tls = tls;
    cfg.tls_timeout = o.wait > 0 ? o.wait : LISTEN_TLS_TIMEOUT;
    sockit_server_options so = {.family = o.family, .type = o.udp ? SOCK_DGRAM : SOCK_STREAM};
    bool dual = o.host == NULL && o.family == AF_UNSPEC && sockit_has_dualstack_ipv6();
    so.dualstack = dual;
    sockit *l = sockit_create_server(o.host, o.port, &so);
    if (l == NULL)
        status = fail("error");
    else
        status = serve(&o, &cfg, l, dual);
    sockit_tls_ctx_free(tls);
    return status;
}

/* Serves on l (taken) as the options say; dual: l takes IPv6 and IPv4. */
static int serve(const netopts *o, relay_config *cfg, sockit *l, bool dual)
{
    sockit_addr bound;
    if (sockit_getsockname(l, &bound) < 0) {
        sockit_close(l);
        return fail("error");
    }
    netlog_bound(&bound, dual);
    if (o->udp)
        return dgram_relay(l, false, cfg, o->wait);
    if (o->keep) {
        int status = o->broker ? broker_serve(l, cfg) : relay_serve(l, cfg);
        sockit_close(l);
        return status;
    }
    /* One client: accept it, then stop listening, so a second client is refused
     * rather than left waiting in the backlog. */
    sockit_addr peer;
    sockit *c = NULL;
    if (sockit_settimeout(l, o->wait) == 0)
        c = sockit_accept(l, &peer);
    sockit_close(l);
    if (c == NULL)
        return fail(sockit_errcode() == SOCKIT_ETIMEOUT ? "timeout" : "error");
    char name[CLI_PEER_NAME_MAX];
    cli_peer_name(c, &peer, name, sizeof name);
    if (cfg->tls != NULL && handshake(c, cfg->tls, cfg->tls_timeout) < 0)
        return fail(sockit_errcode() == SOCKIT_ETIMEOUT ? "timeout" : "error");
    netlog_connected(name, true, c);
    return relay_stream(c, &peer, cfg);
}
