/* sockit forward ADDR1 ADDR2: socat's core. Each session opens its first address
 * (accepting a client when it listens), then its second, and joins the two with a
 * sockit_relay: both ways, with backpressure and half-close, on the loop. With -k
 * a listening first address serves every client, each with its own second side
 * (its own connection, command or file). */
#include "child.h"
#include "cli.h"
#include "fwd_addr.h"
#include "fwd_end.h"
#include "netlog.h"
#include "tls_opts.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] = "sockit forward [-k] [-m N] [-v] [-w SECS] [-i SECS] [-t SECS] "
                            "[--tls options] ADDR1 ADDR2";

#define FWD_MAX_CLIENTS_DEFAULT 256
#define FWD_CONNECT_TIMEOUT     10.0

typedef struct fwd fwd;
typedef struct session {
    struct session *prev, *next;
    fwd *f;
    fwd_end end[2];
    int opening; /* the side being opened; 2 once both are */
    sockit_connector *connecting;
    sockit_relay *relay;
} session;

struct fwd {
    sockit_loop *loop;
    fwd_addr addr[2];
    bool keep, verbose, stopping;
    long max_clients;
    double idle, half_close, connect_timeout;
    tls_opts tls;
    sockit_tls_ctx *tls_client, *tls_server;
    sockit *server[2]; /* a listening address's socket until its listener takes it */
    sockit_listener *listener[2];
    session *waiting[2]; /* the session waiting for listener i's client */
    session *sessions;
    sockit_signal *sigs[3];
    int status;
    /* Commands told to stop (their session is over) whose end is still to come:
     * reaped by SIGCHLD, and waited for (then killed) before sockit exits. */
    pid_t *strays;
    size_t nstrays, cap_strays;
};

static void start_next(session *s);
static void stop(fwd *f, int status);

static void help(void)
{
    printf(
        "usage: %s\n\n"
        "Joins two addresses and relays bytes between them both ways, with half-close\n"
        "and backpressure, until both directions have ended (socat's core).\n\n"
        "Addresses:\n"
        "  tcp:HOST:PORT            connect          tcp-listen:[HOST:]PORT   accept\n"
        "  tls:HOST:PORT            TLS connect      tls-listen:[HOST:]PORT   TLS accept\n"
        "  unix:PATH                connect          unix-listen:PATH         accept\n"
        "  udp:HOST:PORT            UDP to HOST      udp-listen:[HOST:]PORT   UDP; the first\n"
        "                                                                     sender is the peer\n"
        "  stdio, -                 stdin and stdout\n"
        "  file:PATH                PATH's bytes, then the end (bytes sent to it are "
        "discarded)\n"
        "  create:PATH              PATH created or emptied, then written; sends nothing\n"
        "  exec:CMD                 CMD's stdin and stdout (words split on blanks)\n"
        "  system:CMD               /bin/sh -c CMD's stdin and stdout\n\n"
        "Options:\n"
        "  -k, --keep-open          a listening ADDR1 serves every client, each with its\n"
        "                           own ADDR2 (socat's fork)\n"
        "  -m, --max-clients N      with -k, sessions at once (default %d); more wait\n"
        "  -w, --wait SECS          connect timeout (default %g)\n"
        "  -i, --idle-timeout SECS  end a session when nothing moved for SECS\n"
        "  -t, --half-close-timeout SECS\n"
        "                           after one direction ended, end the session SECS later\n"
        "                           (with a UDP side: 0.5 s unless given, then a clean end)\n"
        "  -v, --verbose            say what opens and closes on stderr\n"
        "  -h, --help               this text\n\n"
        "TLS (tls: and tls-listen:):\n",
        usage, FWD_MAX_CLIENTS_DEFAULT, FWD_CONNECT_TIMEOUT);
    tls_opts_help(false);
    printf("\nExit status: 0 when the session ended cleanly (both directions), 1 on a\n"
           "failure, 2 on a usage error. With -k: 0 after SIGINT or SIGTERM.\n");
}

/* ---- sessions ---- */

static session *session_new(fwd *f)
{
    session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        cli_fail("forward: out of memory");
        return NULL;
    }
    s->f = f;
    s->next = f->sessions;
    if (f->sessions != NULL)
        f->sessions->prev = s;
    f->sessions = s;
    return s;
}

/* A session's command that has not ended yet is kept until it has. */
static void keep_strays(fwd *f, session *s)
{
    for (int i = 0; i < 2; i++) {
        pid_t pid = s->end[i].pid;
        if (pid <= 0)
            continue;
        if (f->nstrays == f->cap_strays) {
            size_t cap = f->cap_strays > 0 ? 2 * f->cap_strays : 8;
            pid_t *grown = realloc(f->strays, cap * sizeof *grown);
            if (grown == NULL) {
                child_kill(pid, SIGKILL); /* no room to remember it: it goes now */
                continue;
            }
            f->strays = grown;
            f->cap_strays = cap;
        }
        f->strays[f->nstrays++] = pid;
    }
}

static void forget_stray(fwd *f, pid_t pid)
{
    for (size_t i = 0; i < f->nstrays; i++)
        if (f->strays[i] == pid) {
            f->strays[i] = f->strays[--f->nstrays];
            return;
        }
}

/* Before exiting: every command told to stop gets a second to do so, then
 * SIGKILL; none is left behind running, nor as a zombie. */
static void wait_strays(fwd *f)
{
    double until = 1.0;
    for (size_t i = 0; i < f->nstrays; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (child_wait(f->strays[i], until > 0 ? until : 0) < 0 && errno == ETIMEDOUT) {
            child_kill(f->strays[i], SIGKILL);
            child_wait(f->strays[i], 1.0);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        until -= (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    }
    free(f->strays);
    f->strays = NULL;
    f->nstrays = f->cap_strays = 0;
}

static void session_free(session *s)
{
    fwd *f = s->f;
    keep_strays(f, s);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        f->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    for (int i = 0; i < 2; i++)
        if (f->waiting[i] == s)
            f->waiting[i] = NULL;
    free(s);
}

/* A session that could not be opened: what it has is closed. */
static void session_fail(session *s)
{
    fwd *f = s->f;
    for (int i = 0; i < 2; i++)
        fwd_end_release(&s->end[i], true);
    session_free(s);
    if (!f->keep)
        stop(f, CLI_FAIL);
}

static void session_ended(sockit_relay *r, int code, const char *reason, void *user)
{
    session *s = user;
    fwd *f = s->f;
    if (f->verbose)
        cli_line("closed %s <-> %s: %s (%llu bytes ->, %llu bytes <-)", s->end[0].name,
                 s->end[1].name, reason, sockit_relay_bytes(r, 0), sockit_relay_bytes(r, 1));
    else if (code != 0 && !f->keep && !f->stopping)
        cli_fail("forward: %s", reason);
    bool ok = fwd_end_release(&s->end[0], false);
    ok = fwd_end_release(&s->end[1], false) && ok;
    s->relay = NULL;
    session_free(s);
    if (!f->keep)
        stop(f, code == 0 && ok ? CLI_OK : CLI_FAIL);
}

/* A side as the relay takes it. */
static sockit_relay_side side_of(const fwd_end *e)
{
    sockit_relay_side side = {.in = e->in, .out = e->out, .datagram = e->dg};
    return side;
}

/* udp-listen's first datagram, held until the other side was there. */
static void hand_first(fwd_end *from, fwd_end *to)
{
    if (from->first == NULL)
        return;
    int rc = to->dg != NULL ? sockit_datagram_send(to->dg, from->first, from->first_len, NULL)
                            : sockit_stream_write(to->out, from->first, from->first_len);
    if (rc < 0)
        cli_warn("forward: the first datagram from %s: %s", from->name, sockit_strerror(rc));
    free(from->first);
    from->first = NULL;
}

static void make_relay(session *s)
{
    fwd *f = s->f;
    sockit_relay_config cfg = {.idle_timeout = f->idle,
                               .half_close_timeout = f->half_close,
                               .name_a = s->end[0].name,
                               .name_b = s->end[1].name,
                               .on_end = session_ended,
                               .user = s};
    sockit_relay_side a = side_of(&s->end[0]), b = side_of(&s->end[1]);
    s->relay = sockit_relay_join(&a, &b, &cfg);
    if (s->relay == NULL) {
        cli_fail_lib();
        session_fail(s);
        return;
    }
    /* An accepted client, a UDP socket were paused until the other side was there. */
    for (int i = 0; i < 2; i++) {
        if (s->end[i].dg != NULL)
            sockit_datagram_resume(s->end[i].dg);
        else
            sockit_stream_resume(s->end[i].in);
        hand_first(&s->end[i], &s->end[1 - i]);
    }
    if (f->verbose)
        cli_line("forwarding %s <-> %s", s->end[0].name, s->end[1].name);
}

static void opened(fwd_end *e, bool ok, void *user)
{
    (void)e;
    session *s = user;
    s->connecting = NULL;
    if (!ok) {
        session_fail(s);
        return;
    }
    if (s->f->verbose)
        cli_line("connected to %s", s->end[s->opening].name);
    s->opening++;
    start_next(s);
}

/* ---- listening ---- */

static void on_accept(sockit_listener *l, sockit_stream *st, const sockit_addr *peer, void *user)
{
    fwd *f = user;
    int i = l == f->listener[0] ? 0 : 1;
    char name[CLI_PEER_NAME_MAX];
    cli_addr_text(peer, name, sizeof name);
    if (peer == NULL || peer->len == 0)
        snprintf(name, sizeof name, "%s", f->addr[i].text);
    sockit_stream_pause(st);
    session *s;
    if (f->keep) {
        s = session_new(f);
        if (s == NULL) {
            sockit_stream_abort(st);
            return;
        }
    } else {
        s = f->waiting[i];
        f->waiting[i] = NULL;
        /* One client: the listener goes, so a second one is refused. */
        sockit_listener_close(l);
        f->listener[i] = NULL;
        if (s == NULL) {
            sockit_stream_abort(st);
            return;
        }
    }
    netlog_connected(name, true, NULL);
    fwd_end_accepted(&s->end[i], &f->addr[i], st, name);
    s->opening = i + 1;
    start_next(s);
}

static void on_listen_error(sockit_listener *l, int code, void *user)
{
    (void)l;
    (void)user;
    (void)code;
    cli_warn("forward: %s", sockit_errmsg());
}

static int start_listener(fwd *f, int i)
{
    if (f->listener[i] != NULL)
        return 0;
    sockit_listener_config cfg = {.on_accept = on_accept,
                                  .user = f,
                                  .on_error = on_listen_error,
                                  .idle_timeout = -1, /* the relay's -i, if any */
                                  .max_connections = f->keep ? (int)f->max_clients : 0};
    if (f->addr[i].kind == FWD_TLS_LISTEN)
        cfg.tls = f->tls_server;
    f->listener[i] = sockit_listener_new(f->loop, f->server[i], &cfg);
    if (f->listener[i] == NULL)
        return cli_fail_lib();
    f->server[i] = NULL;
    return 0;
}

/* ---- a session's next side ---- */

static void start_next(session *s)
{
    fwd *f = s->f;
    if (f->stopping) {
        session_fail(s);
        return;
    }
    while (s->opening < 2) {
        int i = s->opening;
        const fwd_addr *a = &f->addr[i];
        fwd_open_opts o = {.loop = f->loop,
                           .connect_timeout = f->connect_timeout,
                           .tls = f->tls_client,
                           .verbose = f->verbose};
        if (a->kind == FWD_UDP_LISTEN) {
            sockit *bound = f->server[i];
            f->server[i] = NULL;
            if (fwd_end_wait_datagram(&o, a, bound, &s->end[i], opened, s) < 0)
                session_fail(s);
            return; /* opened() goes on */
        }
        if (fwd_addr_listens(a)) {
            f->waiting[i] = s;
            if (start_listener(f, i) != 0)
                session_fail(s);
            return;
        }
        int rc = fwd_end_open(&o, a, &s->end[i], opened, s, &s->connecting);
        if (rc < 0) {
            session_fail(s);
            return;
        }
        if (rc > 0)
            return; /* opened() goes on */
        s->opening++;
    }
    make_relay(s);
}

/* ---- the end ---- */

static void stop(fwd *f, int status)
{
    if (f->stopping)
        return;
    f->stopping = true;
    f->status = status;
    for (int i = 0; i < 2; i++) {
        if (f->listener[i] != NULL)
            sockit_listener_close(f->listener[i]);
        f->listener[i] = NULL;
        if (f->server[i] != NULL)
            sockit_close(f->server[i]);
        f->server[i] = NULL;
    }
    for (session *s = f->sessions, *next; s != NULL; s = next) {
        next = s->next;
        if (s->relay != NULL)
            sockit_relay_close(s->relay);
        else if (s->connecting != NULL)
            sockit_connector_cancel(s->connecting); /* opened() fails it */
        else
            session_fail(s); /* waiting for a listener's client */
    }
    for (int i = 0; i < 3; i++) {
        sockit_signal_close(f->sigs[i]);
        f->sigs[i] = NULL;
    }
}

static void on_signal(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    (void)count;
    fwd *f = user;
    if (signum == SIGCHLD) {
        pid_t pid;
        int status;
        while ((status = child_reap(&pid)) >= 0) {
            for (session *s = f->sessions; s != NULL; s = s->next)
                for (int i = 0; i < 2; i++)
                    if (s->end[i].pid == pid)
                        s->end[i].pid = 0;
            forget_stray(f, pid);
            if (f->verbose)
                fprintf(stderr, "pid %ld exited with status %d\n", (long)pid, status);
        }
        return;
    }
    if (f->verbose)
        fprintf(stderr, "stopping on %s\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    stop(f, f->keep ? CLI_OK : CLI_FAIL);
}

/* ---- setting up ---- */

static int check(fwd *f)
{
    fwd_addr *a = f->addr;
    if (f->keep && a[0].kind == FWD_UDP_LISTEN)
        return cli_usage_error(usage, "-k: udp-listen: serves its first sender only (sockit "
                                      "listen -u -k serves many)");
    if (f->keep && !fwd_addr_listens(&a[0]))
        return cli_usage_error(usage,
                               "-k: the first address must listen (tcp-listen:, "
                               "tls-listen:, unix-listen:), not '%s'",
                               a[0].text);
    if (f->keep && fwd_addr_binds(&a[1]))
        return cli_usage_error(usage,
                               "-k: the second address '%s' cannot listen too (each "
                               "client gets its own second side)",
                               a[1].text);
    if (a[0].kind == FWD_STDIO && a[1].kind == FWD_STDIO)
        return cli_usage_error(usage, "stdio can be one side only");
    if (f->keep && a[1].kind == FWD_STDIO)
        return cli_usage_error(usage, "-k: stdio cannot be every client's second side");
    bool tls_client = a[0].kind == FWD_TLS || a[1].kind == FWD_TLS;
    bool tls_server = a[0].kind == FWD_TLS_LISTEN || a[1].kind == FWD_TLS_LISTEN;
    if (f->tls.on && !tls_client && !tls_server)
        return cli_usage_error(usage, "%s: no tls: or tls-listen: address", f->tls.first);
    if (tls_server && f->tls.cert == NULL)
        return cli_usage_error(usage, "tls-listen: needs --cert (and --key)");
    if (f->tls.sni != NULL)
        return cli_usage_error(usage, "--sni: forward checks the tls: address's host");
    for (int i = 0; i < 2; i++) {
        if ((a[i].kind == FWD_EXEC || a[i].kind == FWD_SYSTEM) &&
            child_check(a[i].value, a[i].kind == FWD_SYSTEM) < 0)
            return CLI_FAIL;
        if ((a[i].kind == FWD_UNIX || a[i].kind == FWD_UNIX_LISTEN) &&
            cli_check_unix_path(a[i].hp.host, a[i].kind == FWD_UNIX_LISTEN) != 0)
            return CLI_FAIL;
    }
    return 0;
}

static int bind_listeners(fwd *f)
{
    for (int i = 0; i < 2; i++) {
        const fwd_addr *a = &f->addr[i];
        if (!fwd_addr_binds(a))
            continue;
        const char *host = a->hp.host[0] != '\0' ? a->hp.host : NULL;
        bool dual = host == NULL && sockit_has_dualstack_ipv6();
        sockit_server_options so = {.type = a->kind == FWD_UDP_LISTEN ? SOCK_DGRAM : SOCK_STREAM,
                                    .dualstack = dual};
        f->server[i] = sockit_create_server(host, a->hp.is_unix ? 0 : a->hp.port, &so);
        if (f->server[i] == NULL)
            return cli_fail_lib();
        sockit_addr bound;
        if (sockit_getsockname(f->server[i], &bound) == 0)
            netlog_bound(&bound, dual);
    }
    return 0;
}

/* -1: go on; else the exit status (--help, a usage error). */
static int parse(fwd *f, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"keep-open", no_argument, NULL, 'k'},
        {"max-clients", required_argument, NULL, 'm'},
        {"wait", required_argument, NULL, 'w'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"half-close-timeout", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        TLS_OPTS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int opt, rc;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:km:w:i:t:vh", longopts, NULL)) != -1) {
        if ((rc = tls_opts_take(&f->tls, opt, usage)) >= 0) {
            if (rc != 0)
                return rc;
            continue;
        }
        switch (opt) {
        case 'k':
            f->keep = true;
            break;
        case 'm':
            if ((rc = cli_parse_count(usage, "-m", optarg, 1, 10000, &f->max_clients)) != 0)
                return rc;
            break;
        case 'w':
            if ((rc = cli_parse_seconds(usage, "-w", optarg, &f->connect_timeout)) != 0)
                return rc;
            break;
        case 'i':
            if ((rc = cli_parse_seconds(usage, "-i", optarg, &f->idle)) != 0)
                return rc;
            break;
        case 't':
            if ((rc = cli_parse_seconds(usage, "-t", optarg, &f->half_close)) != 0)
                return rc;
            break;
        case 'v':
            f->verbose = true;
            break;
        case 'h':
            help();
            return CLI_OK;
        case ':':
            return cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_unknown_option(usage, argc, argv, -1);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error(usage, argc - optind < 2 ? "two addresses are needed"
                                                        : "only two addresses are taken");
    for (int i = 0; i < 2; i++) {
        char why[512];
        if (fwd_addr_parse(argv[optind + i], &f->addr[i], why, sizeof why) < 0)
            return cli_usage_error(usage, "%s", why);
    }
    int rc2 = check(f);
    return rc2 != 0 ? rc2 : -1;
}

static int run(fwd *f)
{
    int status = 0;
    /* A tls: address verifies against the system's CAs when no option says else. */
    if (f->addr[0].kind == FWD_TLS || f->addr[1].kind == FWD_TLS)
        f->tls.on = true;
    if (f->tls.on) {
        f->tls_client = tls_opts_context(&f->tls, false, &status);
        if (status == 0 && (f->addr[0].kind == FWD_TLS_LISTEN || f->addr[1].kind == FWD_TLS_LISTEN))
            f->tls_server = tls_opts_context(&f->tls, true, &status);
        if (status != 0)
            return status;
    }
    f->loop = sockit_loop_new(NULL);
    if (f->loop == NULL)
        return cli_fail_lib();
    static const int signals[3] = {SIGINT, SIGTERM, SIGCHLD};
    for (int i = 0; i < 3; i++) {
        f->sigs[i] = sockit_signal_new(f->loop, on_signal, f);
        if (f->sigs[i] == NULL || sockit_signal_start(f->sigs[i], signals[i]) < 0) {
            status = cli_fail_lib();
            break;
        }
        sockit_signal_keepalive(f->sigs[i], false);
    }
    if (status == 0)
        status = bind_listeners(f);
    if (status == 0 && f->keep) {
        status = start_listener(f, 0);
    } else if (status == 0) {
        session *s = session_new(f);
        if (s == NULL)
            status = CLI_FAIL;
        else
            start_next(s);
    }
    if (status != 0)
        stop(f, status);
    sockit_loop_run(f->loop);
    stop(f, f->status);
    sockit_loop_run(f->loop); /* what closing left for the loop */
    if (sockit_loop_close(f->loop) < 0)
        cli_warn("forward: %s", sockit_errmsg());
    wait_strays(f);
    return f->status;
}

int cmd_forward(int argc, char **argv)
{
    fwd f = {.max_clients = FWD_MAX_CLIENTS_DEFAULT,
             .connect_timeout = FWD_CONNECT_TIMEOUT,
             .status = CLI_OK};
    int status = parse(&f, argc, argv);
    if (status >= 0)
        return status;
    netlog_verbose(f.verbose);
    status = run(&f);
    sockit_tls_ctx_free(f.tls_client);
    sockit_tls_ctx_free(f.tls_server);
    return status;
}
