/* Shared by the test_socketserver_*.c tests: a server of any kind started in a
 * thread, clients that speak the tests' protocol to it, a crowd of clients that all
 * wait for their answers at once, and scripts of clients run in a thread or, for a
 * process-mode server, in a process of their own (see clients_start).
 *
 * The protocol: a request is a line ("...\n"); a stream client sends it and shuts
 * down its sending side, a datagram client sends it as one datagram. The echo
 * handler answers with the same bytes, after sleeping for a request "sleep:MS ...",
 * and fails with -EPROTO for a request starting with "fail". Everything here is
 * static inline, so each test takes what it uses. */
#ifndef SOCKIT_TEST_SOCKETSERVER_HARNESS_H
#define SOCKIT_TEST_SOCKETSERVER_HARNESS_H

#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef enum srv_kind { KIND_TCP, KIND_UDP, KIND_UNIX_STREAM, KIND_UNIX_DGRAM } srv_kind;

static inline bool kind_is_dgram(srv_kind k) { return k == KIND_UDP || k == KIND_UNIX_DGRAM; }
static inline bool kind_is_unix(srv_kind k)
{
    return k == KIND_UNIX_STREAM || k == KIND_UNIX_DGRAM;
}

static inline void srv_sleep(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

/* ---- the echo handler --------------------------------------------------------------- */

/* Counted by the handlers, so only meaningful for modes that run them in this
 * process (not SOCKIT_PROCESSES). */
static atomic_int srv_handler_calls;
static atomic_int srv_error_calls;
static atomic_int srv_last_error;
static atomic_int srv_error_had_request;

static inline void srv_reset_counters(void)
{
    atomic_store(&srv_handler_calls, 0);
    atomic_store(&srv_error_calls, 0);
    atomic_store(&srv_last_error, 0);
    atomic_store(&srv_error_had_request, 0);
}

static inline int srv_echo_one(sockit_request *req, const char *msg, size_t len)
{
    if (len > 6 && memcmp(msg, "sleep:", 6) == 0) {
        char ms[16] = {0};
        memcpy(ms, msg + 6, len - 6 < sizeof ms - 1 ? len - 6 : sizeof ms - 1);
        srv_sleep(atoi(ms) / 1000.0);
    }
    if (len >= 4 && memcmp(msg, "fail", 4) == 0)
        return -EPROTO;
    ssize_t w = req->data != NULL ? sockit_sendto_addr(req->sock, msg, len, 0, &req->peer)
                                  : sockit_sendall(req->sock, msg, len, 0, NULL);
    return w < 0 ? (int)w : 0;
}

/* Streams: answers every line until the client's end of stream. Datagrams: answers
 * the one datagram. */
static inline int srv_echo_handler(sockit_request *req)
{
    atomic_fetch_add(&srv_handler_calls, 1);
    if (req->data != NULL)
        return srv_echo_one(req, req->data, req->len);
    char line[1024];
    for (int i = 0; i < 1000; i++) {
        ssize_t n = sockit_readline(req->sock, line, sizeof line);
        if (n <= 0)
            return (int)n;
        int rc = srv_echo_one(req, line, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Counts errors instead of printing them (for tests where errors are expected). */
static inline void srv_quiet_error(sockit_request *req, int code, void *user)
{
    (void)user;
    atomic_store(&srv_last_error, code);
    atomic_store(&srv_error_had_request, req != NULL);
    atomic_fetch_add(&srv_error_calls, 1);
}

static inline sockit_server_config srv_echo_config(sockit_server_mode mode)
{
    sockit_server_config cfg = {.handler = srv_echo_handler, .mode = mode};
    return cfg;
}

/* ---- a server in a thread ----------------------------------------------------------- */

/* Where a server lives: 127.0.0.1 port 0, or a socket file in a fresh directory. */
typedef struct srv_place {
    srv_kind kind;
    char dir[64];
    char path[96];
    sockit_addr addr; /* read back from the server */
} srv_place;

static inline sockit_server *srv_new(srv_place *place, srv_kind kind,
                                     const sockit_server_config *cfg)
{
    memset(place, 0, sizeof *place);
    place->kind = kind;
    char host[128] = "127.0.0.1";
    if (kind_is_unix(kind)) {
        snprintf(place->dir, sizeof place->dir, "/tmp/sockit-srvtest-XXXXXX");
        assert_non_null(mkdtemp(place->dir));
        snprintf(place->path, sizeof place->path, "%s/s.sock", place->dir);
        snprintf(host, sizeof host, "unix:%s", place->path);
    }
    sockit_server *srv =
        sockit_server_new(host, 0, kind_is_dgram(kind) ? SOCK_DGRAM : SOCK_STREAM, cfg);
    assert_sock(srv);
    assert_ok(sockit_server_address(srv, &place->addr));
    return srv;
}

/* Removes the socket file and its directory (after sockit_server_close). */
static inline void srv_place_free(srv_place *place)
{
    if (place->path[0] != '\0')
        unlink(place->path);
    if (place->dir[0] != '\0')
        rmdir(place->dir);
}

typedef struct srv_run {
    sockit_server *srv;
    pthread_t thread;
    int rc;
    atomic_bool returned;
} srv_run;

static inline void *srv_run_main(void *arg)
{
    srv_run *r = arg;
    r->rc = sockit_server_serve_forever(r->srv);
    atomic_store(&r->returned, true);
    return NULL;
}

static inline void srv_start(srv_run *r, sockit_server *srv)
{
    r->srv = srv;
    r->rc = -1;
    atomic_store(&r->returned, false);
    assert_int_equal(pthread_create(&r->thread, NULL, srv_run_main, r), 0);
}

/* Shuts the server down from this thread and waits for serve_forever to return 0.
 * Returns the seconds that took. */
static inline double srv_stop(srv_run *r)
{
    double t0 = harness_now();
    sockit_server_shutdown(r->srv);
    assert_int_equal(pthread_join(r->thread, NULL), 0);
    double took = harness_now() - t0;
    assert_ok(r->rc);
    assert_int_equal(r->rc, 0);
    return took;
}

/* Waits (bounded) until the server has at least n requests in hand. */
static inline bool srv_wait_active(sockit_server *srv, int n, double seconds)
{
    double end = harness_now() + seconds;
    while (sockit_server_active(srv) < n) {
        if (harness_now() > end)
            return false;
        srv_sleep(0.005);
    }
    return true;
}

/* ---- clients -------------------------------------------------------------------------- */

static atomic_int srv_client_seq;

/* A client of the server at place, with a 5 s timeout: a stream connected to it, or
 * a datagram socket with an address of its own (a Unix datagram client needs one to
 * be answered). NULL on failure; safe in any thread. */
static inline sockit *client_open(const srv_place *p)
{
    sockit *c = sockit_socket(sockit_addr_family(&p->addr),
                              kind_is_dgram(p->kind) ? SOCK_DGRAM : SOCK_STREAM);
    if (c == NULL)
        return NULL;
    if (sockit_settimeout(c, 5.0) < 0)
        goto fail;
    if (p->kind == KIND_UNIX_DGRAM) {
        char name[64];
        snprintf(name, sizeof name, "@sockit-srvtest-%d-%d", (int)getpid(),
                 atomic_fetch_add(&srv_client_seq, 1));
        sockit_addr me;
        if (sockit_addr_unix(&me, name) < 0 || sockit_bind_addr(c, &me) < 0)
            goto fail;
    }
    if (!kind_is_dgram(p->kind) && sockit_connect_addr(c, &p->addr) < 0)
        goto fail;
    return c;
fail:
    sockit_close(c);
    return NULL;
}

/* Sends one request; a stream client then shuts down its sending side. */
static inline int client_send(const srv_place *p, sockit *c, const char *request, bool last)
{
    ssize_t n = kind_is_dgram(p->kind)
                    ? sockit_sendto_addr(c, request, strlen(request), 0, &p->addr)
                    : sockit_sendall(c, request, strlen(request), 0, NULL);
    if (n < 0)
        return (int)n;
    if (last && !kind_is_dgram(p->kind))
        return sockit_shutdown(c, SHUT_WR);
    return 0;
}

/* Receives one answer into buf (NUL-terminated). Returns its length, 0 at end of
 * stream, or a code. */
static inline ssize_t client_recv(const srv_place *p, sockit *c, char *buf, size_t size)
{
    if (!kind_is_dgram(p->kind))
        return sockit_readline(c, buf, size);
    ssize_t n = sockit_recvfrom(c, buf, size - 1, 0, NULL);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* One whole exchange; asserts the answer is the request. */
static inline void expect_echo(const srv_place *p, const char *request)
{
    sockit *c = client_open(p);
    assert_sock(c);
    assert_ok(client_send(p, c, request, true));
    char answer[1024];
    ssize_t n = client_recv(p, c, answer, sizeof answer);
    sockit_close(c);
    assert_ok(n);
    assert_string_equal(answer, request);
}

/* ---- a crowd: many clients waiting for their answers at once ---------------------- */

typedef struct crowd {
    const srv_place *place;
    int first, count;
    double deadline;
    int answered; /* correct answers */
    int opened;   /* clients connected and sent */
} crowd;

static inline void crowd_request(char *buf, size_t size, int id)
{
    /* Unique per client and of varied lengths, so a mixed-up answer shows. */
    int pad = id % 50;
    int n = snprintf(buf, size, "client %d pid %d ", id, (int)getpid());
    for (int i = 0; i < pad && (size_t)n + 2 < size; i++)
        buf[n++] = (char)('a' + (id + i) % 26);
    buf[n++] = '\n';
    buf[n] = '\0';
}

/* Opens every client and sends every request before reading any answer, so all
 * are in the server's hands together. A datagram without an answer within 1 s is
 * sent again (loopback may drop one when the server's queue is full). */
static inline void *crowd_main(void *arg)
{
    crowd *cr = arg;
    const srv_place *p = cr->place;
    sockit **cs = calloc((size_t)cr->count, sizeof *cs);
    double *sent_at = calloc((size_t)cr->count, sizeof *sent_at);
    bool *done = calloc((size_t)cr->count, sizeof *done);
    struct pollfd *pfds = calloc((size_t)cr->count, sizeof *pfds);
    int *who = calloc((size_t)cr->count, sizeof *who);
    if (cs == NULL || sent_at == NULL || done == NULL || pfds == NULL || who == NULL)
        goto out;
    char req[128], ans[1024];
    for (int i = 0; i < cr->count; i++) {
        cs[i] = client_open(p);
        crowd_request(req, sizeof req, cr->first + i);
        if (cs[i] == NULL || client_send(p, cs[i], req, true) < 0 ||
            sockit_settimeout(cs[i], 0) < 0) {
            done[i] = true;
            continue;
        }
        sent_at[i] = harness_now();
        cr->opened++;
    }
    for (int round = 0; round < 100000 && harness_now() < cr->deadline; round++) {
        int n = 0;
        for (int i = 0; i < cr->count; i++) {
            if (done[i])
                continue;
            if (kind_is_dgram(p->kind) && harness_now() - sent_at[i] > 1.0) {
                crowd_request(req, sizeof req, cr->first + i);
                client_send(p, cs[i], req, true);
                sent_at[i] = harness_now();
            }
            pfds[n] = (struct pollfd){.fd = sockit_fileno(cs[i]), .events = POLLIN};
            who[n++] = i;
        }
        if (n == 0)
            break;
        if (poll(pfds, (nfds_t)n, 100) < 0 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++) {
            if (pfds[k].revents == 0)
                continue;
            int i = who[k];
            ssize_t got = client_recv(p, cs[i], ans, sizeof ans);
            if (got == SOCKIT_EWOULDBLOCK)
                continue;
            crowd_request(req, sizeof req, cr->first + i);
            done[i] = true;
            if (got > 0 && strcmp(ans, req) == 0)
                cr->answered++;
        }
    }
out:
    for (int i = 0; cs != NULL && i < cr->count; i++)
        sockit_close(cs[i]);
    free(cs);
    free(sent_at);
    free(done);
    free(pfds);
    free(who);
    return NULL;
}

/* Runs clients in threads (each driving clients / threads sockets) and returns
 * how many got their own request back within seconds, or -1 if a thread could not
 * start. No cmocka assertion, so it can run in a client process. */
static inline int crowd_run(const srv_place *p, int clients, int threads, double seconds)
{
    crowd cr[16];
    pthread_t t[16];
    if (threads <= 0 || threads > 16)
        return -1;
    double deadline = harness_now() + seconds;
    int started = 0;
    for (; started < threads; started++) {
        int first = clients * started / threads, next = clients * (started + 1) / threads;
        cr[started] =
            (crowd){.place = p, .first = first, .count = next - first, .deadline = deadline};
        if (pthread_create(&t[started], NULL, crowd_main, &cr[started]) != 0)
            break;
    }
    int answered = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        answered += cr[i].answered;
    }
    return started == threads ? answered : -1;
}

/* ---- clients in a process of their own -------------------------------------------- */

/* What a client process found, in memory shared with the test. */
typedef struct client_report {
    int failed; /* 0: every check passed */
    char why[256];
    double t[4]; /* timings the test asks for */
    int n[4];    /* counts the test asks for */
    /* Lock-step between test and clients (atomics work across processes in shared
     * memory): the clients raise reached, the test raises step. */
    atomic_int reached;
    atomic_int step;
} client_report;

/* Records the first failed check; returns ok. */
static inline bool client_check(client_report *rep, bool ok, const char *what)
{
    if (!ok && !rep->failed) {
        rep->failed = 1;
        snprintf(rep->why, sizeof rep->why, "%s (last sockit error: %s: %s)", what,
                 sockit_errname(sockit_errcode()), sockit_errmsg());
    }
    return ok;
}

/* One whole exchange without cmocka; false (and a recorded failure) unless the
 * answer is the request. */
static inline bool client_echo(const srv_place *p, client_report *rep, const char *request)
{
    sockit *c = client_open(p);
    if (!client_check(rep, c != NULL, "client_open"))
        return false;
    char answer[1024];
    bool ok = client_check(rep, client_send(p, c, request, true) >= 0, "client_send") &&
              client_check(rep, client_recv(p, c, answer, sizeof answer) > 0, "client_recv") &&
              client_check(rep, strcmp(answer, request) == 0, "answer is not the request");
    sockit_close(c);
    return ok;
}

typedef void (*client_fn)(const srv_place *p, client_report *rep, void *arg);

/* Clients running fn: in a process of their own for a SOCKIT_PROCESSES server, in a
 * thread otherwise.
 *
 * A process-mode server forks while the test runs, and a child forked while another
 * thread holds an allocator lock stays stuck on it under ASan (LLVM before 17 has
 * no fork handlers for its allocator). So the clients of such a server are a
 * process forked before the server thread starts (call clients_start with no other
 * thread running), and this process only waits meanwhile. Other modes keep their
 * clients in a thread: a pool's workers already run, and under TSan a process forked
 * from a threaded one may not start threads. fn must not use cmocka assertions
 * (they would unwind into the test runner from the wrong thread or process). */
typedef struct clients {
    pid_t pid; /* 0 when running in a thread */
    pthread_t thread;
    const srv_place *place;
    client_fn fn;
    void *arg;
    client_report *rep; /* shared memory */
} clients;

static inline void *clients_thread_main(void *arg)
{
    clients *cl = arg;
    cl->fn(cl->place, cl->rep, cl->arg);
    return NULL;
}

static inline void clients_start(clients *cl, sockit_server_mode mode, const srv_place *p,
                                 client_fn fn, void *arg)
{
    *cl = (clients){.place = p, .fn = fn, .arg = arg};
    cl->rep =
        mmap(NULL, sizeof *cl->rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(cl->rep != MAP_FAILED);
    memset(cl->rep, 0, sizeof *cl->rep);
    if (mode != SOCKIT_PROCESSES) {
        assert_int_equal(pthread_create(&cl->thread, NULL, clients_thread_main, cl), 0);
        return;
    }
    fflush(NULL);
    cl->pid = fork();
    assert_true(cl->pid >= 0);
    if (cl->pid == 0) {
        fn(p, cl->rep, arg);
        _exit(cl->rep->failed);
    }
}

/* Waits (bounded) for the clients to reach stage n. */
static inline bool clients_reached(clients *cl, int n, double seconds)
{
    double end = harness_now() + seconds;
    while (atomic_load(&cl->rep->reached) < n && harness_now() < end)
        srv_sleep(0.002);
    return atomic_load(&cl->rep->reached) >= n;
}

/* Clients side: announces stage n, then waits (bounded) for the test's step n. */
static inline bool clients_sync(client_report *rep, int n, double seconds)
{
    atomic_store(&rep->reached, n);
    double end = harness_now() + seconds;
    while (atomic_load(&rep->step) < n && harness_now() < end)
        srv_sleep(0.002);
    return client_check(rep, atomic_load(&rep->step) >= n, "the test never gave the next step");
}

/* Waits for the clients to end (a process is killed if it overstays; a thread
 * ends by its own timeouts), copies the report to *out and frees it. Returns true
 * when they ended by themselves. */
static inline bool clients_finish(clients *cl, double seconds, client_report *out)
{
    bool ended = true;
    if (cl->pid == 0) {
        pthread_join(cl->thread, NULL);
    } else {
        ended = false;
        double end = harness_now() + seconds;
        int status;
        for (;;) {
            pid_t r = waitpid(cl->pid, &status, WNOHANG);
            if (r == cl->pid) {
                ended = WIFEXITED(status);
                break;
            }
            if (r < 0 && errno != EINTR)
                break;
            if (harness_now() > end) {
                kill(cl->pid, SIGKILL);
                waitpid(cl->pid, &status, 0);
                break;
            }
            srv_sleep(0.01);
        }
    }
    *out = *cl->rep;
    munmap(cl->rep, sizeof *cl->rep);
    cl->rep = NULL;
    return ended;
}

/* Serves srv in a thread while fn runs as clients, then stops the server (asserting
 * it stopped within 0.5 s) and fails the test if a client check failed. Copies the
 * report to *out if not NULL. */
static inline void serve_clients(sockit_server *srv, sockit_server_mode mode, const srv_place *p,
                                 client_fn fn, void *arg, client_report *out)
{
    clients cl;
    clients_start(&cl, mode, p, fn, arg);
    srv_run r;
    srv_start(&r, srv);
    client_report rep;
    bool ended = clients_finish(&cl, 30.0, &rep);
    double stop_took = srv_stop(&r);
    if (out != NULL)
        *out = rep;
    if (rep.failed)
        fail_msg("clients: %s", rep.why);
    assert_true(ended);
    assert_true(stop_took < 0.5);
}

/* ---- scripts every kind of server is put through -------------------------------- */

/* A few clients one after another, then 20 at once, all get their own bytes back. */
static inline void answers_script(const srv_place *p, client_report *rep, void *arg)
{
    (void)arg;
    if (!client_echo(p, rep, "hello\n") || !client_echo(p, rep, "a second, longer request\n"))
        return;
    client_check(rep, crowd_run(p, 20, 2, 10.0) == 20, "20 clients at once: not all answered");
}

/* 200 clients connect and send before any reads its answer. */
static inline void crowd_of_200_script(const srv_place *p, client_report *rep, void *arg)
{
    (void)arg;
    rep->n[0] = crowd_run(p, 200, 4, 15.0);
    client_check(rep, rep->n[0] == 200, "200 clients at once: not all answered");
}

/* One client's request takes 1.5 s to handle. t[0]: when the other clients had all
 * their answers, t[1]: when the slow one had its answer, both in seconds after the
 * slow request was sent. */
static inline void slow_client_script(const srv_place *p, client_report *rep, void *arg)
{
    (void)arg;
    sockit *slow = client_open(p);
    if (!client_check(rep, slow != NULL, "open the slow client"))
        return;
    client_check(rep, client_send(p, slow, "sleep:1500 slow\n", true) >= 0, "send slow request");
    double t0 = harness_now();
    /* Lets the server take the slow client first, so it is the one in the way. */
    srv_sleep(0.2);
    enum { OTHERS = 5 };
    sockit *others[OTHERS] = {NULL};
    char req[64], ans[128];
    for (int i = 0; i < OTHERS; i++) {
        others[i] = client_open(p);
        snprintf(req, sizeof req, "other %d\n", i);
        client_check(rep, others[i] != NULL && client_send(p, others[i], req, true) >= 0,
                     "open and send another client");
    }
    for (int i = 0; i < OTHERS && !rep->failed; i++) {
        snprintf(req, sizeof req, "other %d\n", i);
        client_check(rep, client_recv(p, others[i], ans, sizeof ans) > 0 && strcmp(ans, req) == 0,
                     "another client's answer");
    }
    rep->t[0] = harness_now() - t0;
    client_check(rep,
                 client_recv(p, slow, ans, sizeof ans) > 0 && strcmp(ans, "sleep:1500 slow\n") == 0,
                 "the slow client's answer");
    rep->t[1] = harness_now() - t0;
    for (int i = 0; i < OTHERS; i++)
        sockit_close(others[i]);
    sockit_close(slow);
}

/* 200 clients at once against an echo server of mode and kind: every answer right. */
static inline void check_200_at_once(sockit_server_mode mode, srv_kind kind)
{
    sockit_server_config cfg = srv_echo_config(mode);
    srv_place p;
    sockit_server *srv = srv_new(&p, kind, &cfg);
    serve_clients(srv, mode, &p, crowd_of_200_script, NULL, NULL);
    assert_ok(sockit_server_close(srv));
    srv_place_free(&p);
}

#endif
