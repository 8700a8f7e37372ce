/* sockit's socketserver equivalent (sockit_server, include/sockit.h section 7) as a
 * bench peer, in the concurrency mode named on the command line. Handlers are
 * plain blocking code, as a user writes them: echo loops recv / sendall until the
 * client closes.
 *
 * Usage: sockit_server [--server sequential|threads|processes|pool|events] [--workers N]
 *                      [-u] [--mode echo|oneshot|sink] [--port PORT]
 * The peer convention of bench/README.md. Defaults: --server threads, --mode echo.
 * --workers is the pool's thread count (default: the library's, 8); a pool serves
 * only that many echo or sink connections at once, the others wait for a free
 * worker. processes allows 10000 live children, so the children limit never
 * throttles a run. -u serves UDP instead (echo only: each datagram is sent back to
 * its sender); with --server threads or processes that is a thread or a process per
 * datagram, as in Python's ThreadingUDPServer and ForkingUDPServer. events is the
 * event-driven server (SOCKIT_EVENTS): stream callbacks instead of a handler,
 * every connection on one loop; with -u, one datagram endpoint on the loop whose
 * replies to a receive batch leave in one sendmmsg. --loops N runs events with N
 * loops: --accept reuseport (the default) is the library's config.loops, one
 * SO_REUSEPORT socket per loop; --accept handoff is handoff.c, one acceptor handing
 * connections out (TCP only). SIGTERM and SIGINT stop it at once: connections still
 * open are shut down, children killed.
 *
 * --cert FILE [--key FILE] serves TLS (sockit_tls.h, bench/tls_bench.py): config.tls
 * is a server context with that certificate and key (default: the key is in the cert
 * file), in every TCP mode: the blocking modes run each handshake in the handler's
 * thread before the handler, events makes every stream a TLS stream. Not with -u or
 * --accept handoff. A client that closes without close_notify is not reported, as a
 * reset is not. */
#include "handoff.h"
#include "peer_common.h"

#include <sockit.h>
#include <sockit_tls.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "usage: sockit_server [--server sequential|threads|processes|pool|events] [--workers N] "      \
    "[-u]\n"                                                                                       \
    "                     [--loops N [--accept reuseport|handoff]] [--mode echo|oneshot|sink] "    \
    "[--port PORT]\n"                                                                              \
    "                     [--cert FILE [--key FILE]]"
/* Enough that the children limit is never what a run measures. */
#define MAX_CHILDREN 10000
/* One recv or sendall of echo and sink; the handler's thread has room for it. */
#define CHUNK (64 * 1024)

static sockit_server *the_server;
static pid_t server_pid;
/* SOCKIT_SEQUENTIAL runs the handler in the serving thread, where the stop signal
 * lands, and sockit retries the recv the signal interrupts: to stop at once the
 * signal handler shuts down the connection being served, whose descriptor this is. */
static volatile sig_atomic_t serving_fd = -1;
static bool sequential;
static sockit_handler_fn tcp_handler;

static bool handing_off;

static void on_stop(int sig)
{
    if (handing_off) {
        handoff_stop();
        return;
    }
    if (getpid() == server_pid) {
        sockit_server_shutdown(the_server);
        if (serving_fd >= 0)
            shutdown(serving_fd, SHUT_RDWR);
        return;
    }
    /* A child (processes mode) inherited the handler: there it just ends. */
    signal(sig, SIG_DFL);
    raise(sig);
}

static int echo(sockit_request *req)
{
    char data[CHUNK];
    ssize_t n;
    /* Replies go out at once, not held back by Nagle while a pipelined client's ACK
     * is delayed. */
    sockit_set_nodelay(req->sock, true);
    while ((n = sockit_recv(req->sock, data, sizeof data, 0)) > 0)
        if ((n = sockit_sendall(req->sock, data, (size_t)n, 0, NULL)) < 0)
            break;
    return n < 0 ? (int)n : 0;
}

static int oneshot(sockit_request *req)
{
    char data[PEER_ONESHOT_READ];
    ssize_t n = sockit_recv(req->sock, data, sizeof data, 0);
    if (n < 0)
        return (int)n;
    n = sockit_sendall(req->sock, PEER_REPLY, sizeof PEER_REPLY - 1, 0, NULL);
    return n < 0 ? (int)n : 0;
}

static int sink(sockit_request *req)
{
    char data[CHUNK];
    ssize_t n;
    while ((n = sockit_recv(req->sock, data, sizeof data, 0)) > 0)
        continue;
    return n < 0 ? (int)n : 0;
}

static int udp_echo(sockit_request *req)
{
    ssize_t n = sockit_sendto_addr(req->sock, req->data, req->len, 0, &req->peer);
    /* A full send buffer loses the datagram, as UDP allows; the client counts it. */
    return n < 0 && n != SOCKIT_EWOULDBLOCK ? (int)n : 0;
}

static int handle_tcp(sockit_request *req)
{
    if (sequential)
        serving_fd = sockit_fileno(req->sock);
    int rc = tcp_handler(req);
    serving_fd = -1;
    return rc;
}

/* A client that resets or vanishes is the client's business; a benchmark that ends
 * with thousands of them must not flood stderr. Anything else is said. */
static void on_error(sockit_request *req, int code, void *user)
{
    (void)req;
    (void)user;
    if (code != -ECONNRESET && code != -EPIPE && code != SOCKIT_ETLSEOF)
        fprintf(stderr, "sockit_server: %s\n", sockit_strerror(code));
}

static sockit_server_mode parse_server(const char *text)
{
    static const struct {
        const char *name;
        sockit_server_mode mode;
    } modes[] = {{"sequential", SOCKIT_SEQUENTIAL},
                 {"threads", SOCKIT_THREADS},
                 {"processes", SOCKIT_PROCESSES},
                 {"pool", SOCKIT_POOL},
                 {"events", SOCKIT_EVENTS}};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        if (strcmp(text, modes[m].name) == 0)
            return modes[m].mode;
    peer_usage_error("--server '%s': not one of sequential, threads, processes, pool, events",
                     text);
}

static sockit_handler_fn handler_for(enum peer_mode mode)
{
    switch (mode) {
    case PEER_ECHO:
        return echo;
    case PEER_ONESHOT:
        return oneshot;
    case PEER_SINK:
        return sink;
    }
    return echo;
}

/* SOCKIT_EVENTS: the same three behaviours as stream callbacks. Echo stops reading
 * from a client whose replies queue past the high watermark, until they drain. */
static void ev_echo(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)user;
    if (sockit_stream_write(st, data, len) < 0)
        sockit_stream_abort(st);
    else if (sockit_stream_write_blocked(st))
        sockit_stream_pause(st);
}

static void ev_drained(sockit_stream *st, void *user)
{
    (void)user;
    sockit_stream_resume(st);
}

static void ev_oneshot(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)data;
    (void)len;
    (void)user;
    sockit_stream_write(st, PEER_REPLY, sizeof PEER_REPLY - 1);
    sockit_stream_close(st, -1);
}

static void ev_sink(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    (void)data;
    (void)len;
    (void)user;
}

static void ev_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    on_error(NULL, code, user);
}

static const sockit_stream_callbacks ev_echo_callbacks = {
    .on_data = ev_echo, .on_drain = ev_drained, .on_error = ev_error};
static const sockit_stream_callbacks ev_oneshot_callbacks = {.on_data = ev_oneshot,
                                                             .on_error = ev_error};
static const sockit_stream_callbacks ev_sink_callbacks = {.on_data = ev_sink, .on_error = ev_error};

static void ev_datagram(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user)
{
    (void)user;
    /* A full queue loses the datagram, as UDP allows; the client counts it. */
    if (from != NULL && !truncated)
        sockit_datagram_send(d, data, len, from);
}

static const sockit_datagram_callbacks ev_datagram_callbacks = {.on_datagram = ev_datagram};

static const sockit_stream_callbacks *callbacks_for(enum peer_mode mode)
{
    switch (mode) {
    case PEER_ONESHOT:
        return &ev_oneshot_callbacks;
    case PEER_SINK:
        return &ev_sink_callbacks;
    case PEER_ECHO:
        break;
    }
    return &ev_echo_callbacks;
}

static int parse_count(const char *option, const char *text)
{
    char *end;
    long n = strtol(text, &end, 10);
    if (end == text || *end != '\0' || n < 1 || n > 10000)
        peer_usage_error("%s '%s': not a number in 1-10000", option, text);
    return (int)n;
}

int main(int argc, char **argv)
{
    peer_name = "sockit_server";
    struct peer_args args = {.mode = PEER_ECHO};
    sockit_server_config cfg = {.mode = SOCKIT_THREADS,
                                .max_children = MAX_CHILDREN,
                                .abandon_on_close = true,
                                .handle_error = on_error,
                                .listen.backlog = PEER_BACKLOG};
    bool udp = false;
    int loops = 0;
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *value;
        if (peer_parse_arg(argc, argv, &i, PEER_ALL_MODES, USAGE, &args))
            continue;
        if ((value = peer_option(argc, argv, &i, "--server")) != NULL)
            cfg.mode = parse_server(value);
        else if ((value = peer_option(argc, argv, &i, "--workers")) != NULL)
            cfg.threads = parse_count("--workers", value);
        else if ((value = peer_option(argc, argv, &i, "--cert")) != NULL)
            cert = value;
        else if ((value = peer_option(argc, argv, &i, "--key")) != NULL)
            key = value;
        else if ((value = peer_option(argc, argv, &i, "--loops")) != NULL)
            loops = parse_count("--loops", value);
        else if ((value = peer_option(argc, argv, &i, "--accept")) != NULL) {
            if (strcmp(value, "handoff") == 0)
                handing_off = true;
            else if (strcmp(value, "reuseport") != 0)
                peer_usage_error("--accept '%s': not reuseport or handoff", value);
        } else if (strcmp(argv[i], "-u") == 0)
            udp = true;
        else
            peer_usage_error("'%s': unknown argument", argv[i]);
    }
    if (udp && args.mode != PEER_ECHO)
        peer_usage_error("--mode '%s': not supported with -u: only echo",
                         peer_mode_name(args.mode));
    if (key != NULL && cert == NULL)
        peer_usage_error("--key: needs --cert");
    if (cert != NULL && udp)
        peer_usage_error("--cert: TLS is TCP only, not with -u");
    if (cert != NULL && handing_off)
        peer_usage_error("--cert: not with --accept handoff");
    peer_prepare();
    if (cert != NULL) {
        cfg.tls = sockit_tls_ctx_new(SOCKIT_TLS_SERVER);
        if (cfg.tls == NULL || sockit_tls_ctx_load_cert_chain(cfg.tls, cert, key) < 0) {
            fprintf(stderr, "sockit_server: %s\n", sockit_errmsg());
            return 1;
        }
    }

    sequential = cfg.mode == SOCKIT_SEQUENTIAL;
    tcp_handler = handler_for(args.mode);
    cfg.handler = udp ? udp_echo : handle_tcp;
    if (cfg.mode == SOCKIT_EVENTS) {
        cfg.stream = callbacks_for(args.mode);
        cfg.datagram = &ev_datagram_callbacks;
        cfg.loops = loops;
        cfg.idle_timeout = -1; /* a benchmark's idle connections are meant to stay */
    }
    if (handing_off) {
        if (cfg.mode != SOCKIT_EVENTS || udp || loops < 1)
            peer_usage_error("--accept handoff: needs --server events --loops N, TCP");
        int lfd = peer_socket(SOCK_STREAM, true, args.port);
        peer_on_stop_signals(on_stop);
        peer_announce(peer_bound_port(lfd));
        int status = handoff_serve(lfd, loops, cfg.stream);
        close(lfd);
        return status;
    }
    the_server = sockit_server_new("127.0.0.1", args.port, udp ? SOCK_DGRAM : SOCK_STREAM, &cfg);
    sockit_tls_ctx_free(cfg.tls); /* the server holds its own reference */
    sockit_addr me;
    if (the_server == NULL || sockit_server_address(the_server, &me) < 0) {
        fprintf(stderr, "sockit_server: %s\n", sockit_errmsg());
        sockit_server_close(the_server);
        return 1;
    }
    server_pid = getpid();
    peer_on_stop_signals(on_stop);
    peer_announce(sockit_addr_port(&me));

    int rc = sockit_server_serve_forever(the_server);
    if (rc < 0)
        fprintf(stderr, "sockit_server: %s\n", sockit_errmsg());
    peer_on_stop_signals(SIG_DFL);
    int closed = sockit_server_close(the_server);
    the_server = NULL;
    if (closed < 0)
        fprintf(stderr, "sockit_server: %s\n", sockit_errmsg());
    return rc < 0 || closed < 0 ? 1 : 0;
}
