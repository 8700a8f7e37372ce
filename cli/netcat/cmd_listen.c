/* sockit listen: netcat's server side. Binds (every interface, dual-stack, unless
 * told otherwise), then serves one client, every client with -k, or datagrams with
 * -u (a session per sender with -u -k), through the relays; --allow, --deny and
 * --conn-rate (gate.h) say who comes in, and with --tls each client's handshake
 * comes next. */
#include "child.h"
#include "cli.h"
#include "dgram.h"
#include "dgram_sessions.h"
#include "exec.h"
#include "netlog.h"
#include "netopts.h"
#include "relay.h"
#include "tls_opts.h"

#include <time.h>

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
static int listen_with(netopts *o);

int cmd_listen(int argc, char **argv)
{
    netopts o;
    int status = netopts_parse(argc, argv, true, &o);
    if (status >= 0)
        return status;
    status = listen_with(&o);
    netopts_free(&o);
    return status;
}

/* Everything after the options were read. */
static int listen_with(netopts *o)
{
    int status;
    netlog_verbose(o->verbose);
    relay_config cfg = {.half_close = o->half_close,
                        .hexdump = o->hexdump,
                        .idle = o->idle,
                        .linger = o->linger,
                        .wait = o->wait,
                        .max_clients = o->max_clients,
                        .broker = o->broker,
                        .gate = gate_on(&o->gate) ? &o->gate : NULL};
    /* A command that cannot run is said before anything listens. */
    if (o->exec != NULL && child_check(o->exec, o->exec_shell) != 0) {
        netlog_exit("error", 0, 0, -1);
        return CLI_FAIL;
    }
    if (o->is_unix && (status = cli_check_unix_path(o->host, true)) != 0) {
        netlog_exit("error", 0, 0, -1);
        return status;
    }
    sockit_tls_ctx *tls = tls_opts_context(&o->tls, true, &status);
    if (status != 0) {
        netlog_exit("error", 0, 0, -1);
        return status;
    }
    cfg.tls = tls;
    cfg.tls_timeout = o->wait > 0 ? o->wait : LISTEN_TLS_TIMEOUT;
    sockit_server_options so = {.family = o->family, .type = o->udp ? SOCK_DGRAM : SOCK_STREAM};
    bool dual = o->host == NULL && o->family == AF_UNSPEC && sockit_has_dualstack_ipv6();
    so.dualstack = dual;
    sockit *l = sockit_create_server(o->host, o->port, &so);
    if (l == NULL)
        status = fail("error");
    else
        status = serve(o, &cfg, l, dual);
    sockit_tls_ctx_free(tls);
    return status;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The one client: the first that g lets in (the refused ones are reset), within
 * wait seconds (< 0: none) of the start. NULL with the library's error. */
static sockit *accept_one(sockit *l, gate *g, double wait, sockit_addr *peer)
{
    double until = wait >= 0 ? now() + wait : -1;
    for (;;) {
        double left = until < 0 ? SOCKIT_BLOCKING : until - now();
        if (until >= 0 && left < 0.001)
            left = 0.001; /* past the deadline: one last look, then ETIMEOUT */
        if (sockit_settimeout(l, left) < 0)
            return NULL;
        sockit *c = sockit_accept(l, peer);
        if (c == NULL || g == NULL || gate_admit(g, peer, now()))
            return c;
        gate_refuse(c);
    }
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
    if (o->udp && o->keep)
        return dgram_sessions_serve(l, cfg);
    if (o->udp)
        return dgram_relay(l, false, cfg, o->wait);
    exec_cmd cmd = {o->exec, o->exec_shell};
    if (o->keep) {
        int status = o->exec != NULL ? exec_serve(l, cfg, &cmd)
                     : o->broker     ? broker_serve(l, cfg)
                                     : relay_serve(l, cfg);
        sockit_close(l);
        return status;
    }
    /* One client: accept it, then stop listening, so a second client is refused
     * rather than left waiting in the backlog. */
    sockit_addr peer;
    sockit *c = accept_one(l, cfg->gate, o->wait, &peer);
    sockit_close(l);
    if (c == NULL)
        return fail(sockit_errcode() == SOCKIT_ETIMEOUT ? "timeout" : "error");
    char name[CLI_PEER_NAME_MAX];
    cli_peer_name(c, &peer, name, sizeof name);
    if (cfg->tls != NULL && handshake(c, cfg->tls, cfg->tls_timeout) < 0)
        return fail(sockit_errcode() == SOCKIT_ETIMEOUT ? "timeout" : "error");
    netlog_connected(name, true, c);
    if (o->exec != NULL)
        return exec_one(c, name, &cmd);
    return relay_stream(c, &peer, cfg);
}
