/* sockit bench: the load generator's shared types. cmd_bench.c parses options and
 * supervises on a sockit_loop of its own; each worker thread runs its share of
 * connections on its own sockit_loop (bench_loop.c: the run's phases, the open
 * loop's schedule, sweeps), through a transport per protocol (bench_tcp.c,
 * bench_udp.c: the sockets and their I/O watchers); bench_report.c prints what they
 * measured.
 *
 * The transports use raw non-blocking syscalls on descriptors rather than sockit
 * objects: the generator is the measuring instrument and must add nothing above the
 * syscall floor but the loop itself. */
#ifndef SOCKIT_CLI_BENCH_H
#define SOCKIT_CLI_BENCH_H

#include "histogram.h"
#include "hostport.h"
#include "tls_opts.h"

#include <sockit.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef enum bench_mode { BENCH_ECHO, BENCH_STREAM, BENCH_CONNECT } bench_mode;

/* What the messages are made of (--payload). */
typedef enum bench_payload {
    BENCH_RANDOM, /* pseudo-random bytes: byte echo servers */
    BENCH_LINES   /* printable lines ending in '\n', unchanged by upper-casing: line
                     echo servers (readline, then write the line back) */
} bench_payload;

/* Errors by kind; the order is the order of the report. */
typedef enum bench_error {
    BENCH_ERR_CONNECT,     /* refused, unreachable, or not connected within --timeout */
    BENCH_ERR_RESET,       /* ECONNRESET / EPIPE on an open connection */
    BENCH_ERR_CLOSED,      /* the server closed with a request outstanding */
    BENCH_ERR_CORRUPT,     /* bytes back differ from what was sent (or --expect) */
    BENCH_ERR_TIMEOUT,     /* no reply within --timeout */
    BENCH_ERR_UNANSWERED,  /* outstanding at the end of -d, no reply within --timeout after */
    BENCH_ERR_UNCONNECTED, /* connecting at the end of -d, not connected within --timeout
                              after */
    BENCH_ERR_OTHER,
    BENCH_ERR_KINDS
} bench_error;

extern const char *const bench_error_names[BENCH_ERR_KINDS];

typedef struct bench_config {
    bench_mode mode;
    bool udp;
    struct sockaddr_storage target;
    socklen_t target_len;
    char target_text[400];
    long conns;
    int threads;
    double duration, warmup, timeout; /* seconds */
    uint64_t max_requests;            /* -n; 0: no limit */
    size_t msg_bytes;
    bench_payload payload;
    unsigned pipeline;
    double rate;                  /* requests/s over all connections; 0: closed loop */
    const unsigned char *message; /* connect mode: what each connection sends */
    size_t message_len;
    const char *expect; /* connect mode: the exact reply wanted, or NULL */
    size_t expect_len;
    unsigned sources; /* >1: bind connections to 127.0.0.1..127.0.0.<sources> */
    unsigned spin_us; /* the worker loops' spin before sleeping */
    /* --tls: each TCP connection is a TLS client of this context (shared by the
     * workers), checking the certificate for tls_name; NULL: plain. */
    sockit_tls_ctx *tls;
    const char *tls_name;
    /* --proxy: target is the proxy's address, and each connection asks it for
     * tunnel_host:tunnel_port (sockit_tunnel) before anything else. */
    const char *proxy;
    char tunnel_host[256];
    int tunnel_port;
} bench_config;

/* What the command line asked for (bench_args.c). */
typedef struct bench_options {
    bench_config cfg;
    tls_opts tls;
    bool no_resume; /* --no-resume: every TLS connection a full handshake */
    bool msg_given, json;
    int server_pid;
    hostport target;
} bench_options;

/* Reads the options, checks them together, resolves the target, fits the fd limit.
 * Returns -1 to go on, or the exit status (CLI_OK after --help, CLI_USAGE, CLI_FAIL). */
int bench_setup(int argc, char **argv, bench_options *o);

/* The payload: a pseudo-random pattern of `period` bytes followed by a copy of its
 * start, so any window of up to `window` bytes at any offset below the period is
 * contiguous. The byte at stream offset o of a connection with seed s is
 * pattern[(s + o) % period]: position-dependent, so a dropped, added or altered
 * byte shows up in the next comparison. Random payloads have a prime period
 * (BENCH_PATTERN_PERIOD). Line payloads have a period that is a whole number of
 * lines of `line` bytes, and seeds on line starts, so every message is one line. */
#define BENCH_PATTERN_PERIOD 65521u
typedef struct bench_pattern {
    unsigned char *bytes;
    size_t window;
    size_t period;
    size_t line; /* 1 for random payloads */
} bench_pattern;

/* line 0: random bytes; else lines of that many bytes, '\n' included. */
int bench_pattern_init(bench_pattern *p, size_t window, size_t line);
void bench_pattern_free(bench_pattern *p);
/* The window of len <= p->window bytes at stream offset `offset` for seed `seed`. */
static inline const unsigned char *bench_pattern_at(const bench_pattern *p, uint64_t seed,
                                                    uint64_t offset)
{
    return p->bytes + (seed + offset) % p->period;
}
/* A seed from any number: below the period, on a line start. */
static inline uint64_t bench_seed(const bench_pattern *p, uint64_t x)
{
    return x % p->period / p->line * p->line;
}

typedef struct bench_worker bench_worker;

/* What the supervisor and the workers share. Fields a worker writes are its own
 * (bench_worker); these are written by the supervisor or claimed atomically. */
typedef struct bench_shared {
    const bench_config *cfg;
    const bench_pattern *pattern;
    uint64_t start_ns, measure_ns, end_ns; /* CLOCK_MONOTONIC, the loops' clock */
    atomic_bool stop;                      /* signal or fatal error: stop now */
    atomic_uint_fast64_t budget;           /* -n: requests not yet claimed */
    atomic_bool ever_connected;
    atomic_int fatal_errno;  /* the first connect failure while none ever succeeded */
    sockit_loop *supervisor; /* the main thread's loop: workers post to it */
    bench_worker *workers;
    int nworkers, ndone; /* started; done (the supervisor's own count) */
} bench_shared;

/* A worker's counters. The live ones are read by the supervisor for the progress
 * line while the worker runs; the rest only after it has been joined. */
typedef struct bench_stats {
    uint64_t requests, bytes_out, bytes_in;
    uint64_t errors[BENCH_ERR_KINDS];
    int first_errno[BENCH_ERR_KINDS];        /* for the summary: why, not just how many */
    char first_reason[BENCH_ERR_KINDS][256]; /* the same, where errno cannot say it */
    uint64_t last_done_ns;                   /* when the last request completed */
    histogram latency;                       /* nanoseconds */
} bench_stats;

typedef struct bench_live {
    atomic_uint_fast64_t requests, bytes_out, bytes_in, errors;
} bench_live;

/* One protocol's side of a worker's loop (bench_tcp.c, bench_udp.c). The loop
 * (bench_loop.c) owns the phases of the run, the open loop's clock and the sweeps;
 * the transport owns the sockets, their watchers and what a request is. */
typedef struct bench_transport {
    /* Allocates its state and opens the worker's sockets. Returns 0, or -1 when the
     * worker cannot run (the error counted). */
    int (*start)(bench_worker *w, uint64_t now);
    /* Open loop: the worker's request number g, due at `due`, is claimed; give it
     * to its socket (and count it outstanding). */
    void (*issue_due)(bench_worker *w, uint64_t g, uint64_t due, uint64_t now);
    /* Timeouts, reconnects and back-offs. Returns nanoseconds until the next sweep. */
    uint64_t (*sweep)(bench_worker *w, uint64_t now);
    /* Connections still connecting (asked only as the run ends). */
    long (*connecting)(bench_worker *w);
    /* Closes the sockets and their watchers and frees the state. */
    void (*cleanup)(bench_worker *w);
} bench_transport;

extern const bench_transport bench_tcp_transport, bench_udp_transport;

struct bench_worker {
    bench_shared *shared;
    int index;
    long first_conn, conns; /* this worker's slice of the connections */
    double rate;            /* its share of --rate */
    bench_stats stats;
    bench_live live;
    bool measuring;       /* the warm-up is over */
    bool draining;        /* past -d: no new requests, waiting for the outstanding */
    uint64_t stop_ns;     /* when its loop ends: the end of the run, or of the drain */
    uint64_t finished_ns; /* when its loop ended */
    /* The loop: made by the supervisor before the thread starts, so it can be
     * stopped from there at any time; run by the worker; closed after the join. */
    sockit_loop *loop;
    const bench_transport *transport;
    sockit_timer *phase;     /* the end of the warm-up, of the run, of the drain */
    sockit_timer *sweeper;   /* transport->sweep, and the live counters */
    uint64_t first_sweep_ns; /* set by transport->start */
    sockit_timer *schedule;  /* open loop: shortly before the next request is due */
    bool spinning;           /* open loop: a call_soon polls until it is due */
    uint64_t outstanding;    /* requests issued and neither completed nor lost */
    bool budget_spent;       /* no new requests: -n spent, or draining */
    double interval_ns;      /* open loop: between two requests of this worker */
    uint64_t next_g;         /* open loop: the next request to schedule */
    void *state;             /* the transport's own */
};

/* The open loop wakes this long before a request is due and then polls without
 * sleeping: timer wake-ups can be late by 0.1 ms on average and by milliseconds at
 * worst (seen on this project's VMs), and that lateness would count as latency of
 * the server. It costs generator CPU, which has a core of its own, not accuracy. */
#define BENCH_SPIN_NS 300000u

/* The worker thread's body (bench_loop.c): runs w->loop until the run is over.
 * Posts bench_worker_done to the supervisor's loop as its last act. */
void *bench_worker_run(void *worker);
/* Closes the worker's sockets, watchers and loop; after it was joined, so the
 * teardown cost is outside the measured window. */
void bench_worker_cleanup(bench_worker *w);
/* Stops every worker's loop: a sockit_call_fn for the supervisor's loop (arg: the
 * bench_shared), as posted by a worker that met a fatal error. */
void bench_stop_everyone(sockit_loop *supervisor, void *shared);

/* The loop's time in nanoseconds: read once per iteration, so all the events of
 * one wait share it, as they share their wait. */
static inline uint64_t bench_loop_now(const bench_worker *w)
{
    return (uint64_t)(sockit_loop_now(w->loop) * 1e9);
}
/* Whether the run is over now that requests completed, were lost or can no longer
 * be issued: the transports call it after every callback. */
void bench_loop_settle(bench_worker *w);
static inline void bench_settle(bench_worker *w)
{
    if (w->budget_spent) /* -n spent, or draining */
        bench_loop_settle(w);
}

/* Helpers shared by the two transports (bench_common.c). */
uint64_t bench_now_ns(void);
/* Open loop: when the worker's request number g is due. */
uint64_t bench_due_ns(const bench_shared *sh, uint64_t g, double interval_ns);
/* The next back-off after a failure: 10 ms, doubling, at most 1 s. */
uint32_t bench_backoff_ms(uint32_t previous);
/* err says nobody is there: if no connection ever succeeded, stop the run with it. */
void bench_give_up_if_unreached(bench_worker *w, int err);
/* Claims one request from the -n budget; false when it is spent. */
bool bench_claim(bench_shared *sh);
void bench_count_error(bench_worker *w, bench_error kind, int err);
/* The kind of a send/recv failure: reset, timeout or other. */
bench_error bench_error_of(int err);
/* --sources: binds a connection's socket to its 127.0.0.x source. */
void bench_bind_source(const bench_config *cfg, int fd, long global_index);
/* The same with a reason errno cannot give ("a reply of 22 bytes to 64-byte requests"). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void bench_count_error_why(bench_worker *w, bench_error kind, const char *fmt, ...);
/* Past -d, requests still waiting for a reply (and connections still connecting)
 * get --timeout more: the run is over when none is left or that time has passed,
 * and what is then still outstanding counts as a timeout (connect) error. Returns
 * true while the loop should go on; starts the drain on the first call past -d. */
bool bench_drain(bench_worker *w, uint64_t now, uint64_t outstanding, long connecting);
/* Publishes the live counters for the progress line. */
void bench_publish(bench_worker *w);
/* Resets the stats when the warm-up ends; true once measuring. */
bool bench_measuring(bench_worker *w, uint64_t now);

/* What the run measured, all workers merged. */
typedef struct bench_result {
    bench_stats total;
    double seconds; /* the measured window */
    double cpu_user_s, cpu_sys_s;
    double server_cpu_s; /* < 0: not measured */
    bool interrupted;
} bench_result;

void bench_report_text(const bench_config *cfg, const bench_result *r);
void bench_report_json(const bench_config *cfg, const bench_result *r);
/* The live line on a terminal: "\r" then the figures of the last second. */
void bench_report_progress(double elapsed, double window, uint64_t requests, uint64_t bytes,
                           uint64_t errors);
void bench_report_progress_clear(void);

/* CPU time in seconds of process `pid`: every thread, live or gone, and every child,
 * reaped or not. < 0 if it cannot be read. */
double bench_process_cpu(int pid);

#endif
