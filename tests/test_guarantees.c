/* The promises every call keeps: no SIGPIPE, EINTR retried against one deadline,
 * descriptors close-on-exec, and would-block told apart from timed-out. */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void sleep_s(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

static void set_buffers_small(sockit *s)
{
    int size = 65536;
    assert_int_equal(setsockopt(sockit_fileno(s), SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    assert_int_equal(setsockopt(sockit_fileno(s), SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
}

/* ---- no SIGPIPE ------------------------------------------------------------------ */

/* SIGPIPE keeps its default action (death) in these tests: a library that let one
 * through would kill the process. */
static void default_sigpipe(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, NULL), 0);
}

static ssize_t op_send(sockit *s) { return sockit_send(s, "x", 1, 0); }
static ssize_t op_sendall(sockit *s) { return sockit_sendall(s, "xyz", 3, 0, NULL); }

static ssize_t op_sendfile(sockit *s)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t rc = sockit_sendfile(s, fd, 0, 4096, NULL);
    close(fd);
    return rc;
}

static ssize_t op_send_fds(sockit *s)
{
    int fd = 0;
    return sockit_send_fds(s, "x", 1, &fd, 1);
}

/* Runs op on s in a child process, so a SIGPIPE names the operation that let it
 * through instead of killing the whole test program. Returns op's result. */
static ssize_t in_child(const char *name, ssize_t (*op)(sockit *), sockit *s)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ssize_t rc = op(s);
        _exit(write(p[1], &rc, sizeof rc) == (ssize_t)sizeof rc ? 0 : 3);
    }
    close(p[1]);
    ssize_t rc = 0;
    ssize_t n = read(p[0], &rc, sizeof rc);
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("%s on a closed peer killed the process with signal %d (%s)", name,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    assert_int_equal(n, (ssize_t)sizeof rc);
    return rc;
}

static void expect_broken_pipe(const char *name, ssize_t (*op)(sockit *))
{
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    sockit_close(p[1]);
    ssize_t rc = in_child(name, op, p[0]);
    if (rc != -EPIPE)
        fail_msg("%s on a closed peer returned %zd (%s), expected -EPIPE", name, rc,
                 sockit_errname((int)rc));
    sockit_close(p[0]);
}

static void test_no_sigpipe_from_any_sending_call(void **state)
{
    (void)state;
    default_sigpipe();
    expect_broken_pipe("sockit_send", op_send);
    expect_broken_pipe("sockit_sendall", op_sendall);
    expect_broken_pipe("sockit_sendfile", op_sendfile);
    expect_broken_pipe("sockit_send_fds", op_send_fds);
}

static void test_no_sigpipe_writing_to_a_closed_peer_in_this_process(void **state)
{
    (void)state;
    default_sigpipe();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    sockit_close(p[1]);
    assert_code(sockit_send(p[0], "x", 1, 0), -EPIPE);
    assert_code(sockit_sendall(p[0], "xy", 2, 0, NULL), -EPIPE);
    sockit_close(p[0]);

    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    sockit_close(srv);
    ssize_t rc = 0;
    for (int i = 0; i < 200 && rc >= 0; i++) {
        rc = sockit_send(c, "x", 1, 0);
        if (rc >= 0)
            sleep_s(0.005);
    }
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    assert_code(sockit_send(c, "x", 1, 0), -EPIPE);
    sockit_close(c);
}

static volatile sig_atomic_t sigpipes_seen;

static void count_sigpipe(int sig)
{
    (void)sig;
    sigpipes_seen++;
}

static void test_sigpipe_handler_never_runs_for_writes_to_a_closed_peer(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_sigpipe;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
    sigpipes_seen = 0;
    ssize_t (*ops[])(sockit *) = {op_send, op_sendall, op_sendfile, op_send_fds};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        sockit *p[2];
        assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
        sockit_close(p[1]);
        assert_code(ops[i](p[0]), -EPIPE);
        sockit_close(p[0]);
        if (sigpipes_seen != 0)
            fail_msg("operation %zu raised SIGPIPE", i);
    }
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
}

/* ---- EINTR ----------------------------------------------------------------------- */

static volatile sig_atomic_t signals_seen;
/* The same count for other threads to read (lock-free, so the handler may write it). */
static atomic_int signals_seen_shared;

static void on_signal(int sig)
{
    (void)sig;
    signals_seen++;
    atomic_fetch_add(&signals_seen_shared, 1);
}

static void arm_signals(const double *at, int n)
{
    signals_seen = 0;
    atomic_store(&signals_seen_shared, 0);
    harness_signal_no_restart(SIGUSR1, on_signal);
    for (int i = 0; i < n; i++)
        harness_signal_after(SIGUSR1, at[i]);
}

/* Waits (bounded) until every armed signal was handled, so none lands in the next
 * test. */
static void drain_signals(int n)
{
    for (int i = 0; i < 300 && signals_seen < n; i++)
        sleep_s(0.01);
    assert_int_equal(signals_seen, n);
}

struct later {
    sockit *s;
    double delay;
    int port; /* connect to 127.0.0.1:port when > 0, else send "late" on s */
};

/* Acts after its delay, and never before the armed signal was handled: on a loaded
 * machine the signal can come late, and the call must have been interrupted before
 * it can succeed. */
static void *later_main(void *arg)
{
    struct later *l = arg;
    sleep_s(l->delay);
    for (int i = 0; i < 500 && atomic_load(&signals_seen_shared) < 1; i++)
        sleep_s(0.01);
    if (l->port > 0) {
        l->s = sockit_socket(AF_INET, SOCK_STREAM);
        if (l->s != NULL)
            (void)sockit_connect(l->s, "127.0.0.1", l->port);
    } else {
        (void)sockit_sendall(l->s, "late", 4, 0, NULL);
    }
    return NULL;
}

static void recv_interrupted_then_data(double timeout)
{
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    assert_ok(sockit_settimeout(srv, timeout));
    struct later l = {.s = c, .delay = 0.3};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, later_main, &l), 0);
    static const double at[] = {0.1};
    arm_signals(at, 1);

    char buf[16];
    double t0 = harness_now();
    ssize_t n = sockit_recv(srv, buf, sizeof buf, 0);
    double elapsed = harness_now() - t0;
    /* The first bytes; the rest too when the send was cut (the fault runs). */
    assert_true(n >= 1 && n <= 4);
    if (n < 4)
        assert_int_equal(sockit_recv_exact(srv, buf + n, 4 - (size_t)n, NULL), 4 - n);
    assert_memory_equal(buf, "late", 4);
    assert_int_equal(signals_seen, 1); /* the signal did arrive during the call */
    assert_true(elapsed >= 0.25);
    assert_true(elapsed < 1.0);
    assert_int_equal(pthread_join(t, NULL), 0);
    sockit_close(c);
    sockit_close(srv);
}

static void test_eintr_during_recv_with_timeout_still_returns_data(void **state)
{
    (void)state;
    recv_interrupted_then_data(1.0);
}

static void test_eintr_during_blocking_recv_still_returns_data(void **state)
{
    (void)state;
    recv_interrupted_then_data(SOCKIT_BLOCKING);
}

static void test_eintr_does_not_restart_the_recv_deadline(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    assert_ok(sockit_settimeout(srv, 0.5));
    /* Restarting the clock after each signal would end past 0.45 + 0.5 s. */
    static const double at[] = {0.15, 0.3, 0.45};
    arm_signals(at, 3);
    char b;
    double t0 = harness_now();
    assert_code(sockit_recv(srv, &b, 1, 0), SOCKIT_ETIMEOUT);
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.45);
    assert_true(elapsed < 0.9);
    drain_signals(3);
    sockit_close(c);
    sockit_close(srv);
}

static void test_eintr_during_blocking_accept_is_retried(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    struct later cl = {.delay = 0.3, .port = port};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, later_main, &cl), 0);
    static const double at[] = {0.1};
    arm_signals(at, 1);
    sockit *srv = sockit_accept(l, NULL);
    assert_sock(srv);
    assert_int_equal(signals_seen, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    sockit_close(cl.s);
    sockit_close(srv);
    sockit_close(l);
}

/* ---- one deadline per call, whatever the progress ------------------------------- */

struct trickle {
    sockit *s;
    atomic_bool stop;
};

/* One byte every 0.1 s, for at most 5 s. */
static void *trickle_writer(void *arg)
{
    struct trickle *t = arg;
    for (int i = 0; i < 50 && !atomic_load(&t->stop); i++) {
        if (sockit_send(t->s, "t", 1, 0) < 0)
            break;
        sleep_s(0.1);
    }
    return NULL;
}

/* 1 KB every 20 ms, for at most 5 s. */
static void *trickle_reader(void *arg)
{
    struct trickle *t = arg;
    char buf[1024];
    for (int i = 0; i < 250 && !atomic_load(&t->stop); i++) {
        if (sockit_recv(t->s, buf, sizeof buf, 0) <= 0)
            break;
        sleep_s(0.02);
    }
    return NULL;
}

static void test_recv_exact_deadline_is_not_restarted_by_partial_progress(void **state)
{
    (void)state;
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    assert_ok(sockit_settimeout(srv, 0.5));
    struct trickle tr = {.s = c};
    atomic_init(&tr.stop, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, trickle_writer, &tr), 0);
    char buf[100];
    size_t got = 0;
    double t0 = harness_now();
    assert_code(sockit_recv_exact(srv, buf, sizeof buf, &got), SOCKIT_ETIMEOUT);
    double elapsed = harness_now() - t0;
    atomic_store(&tr.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(elapsed >= 0.45);
    assert_true(elapsed < 1.5);
    assert_true(got >= 1 && got < sizeof buf);
    sockit_close(c);
    sockit_close(srv);
}

static void test_sendall_deadline_is_not_restarted_by_partial_progress(void **state)
{
    (void)state;
    const size_t len = 8u << 20;
    char *data = calloc(1, len);
    assert_non_null(data);
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    set_buffers_small(c);
    set_buffers_small(srv);
    assert_ok(sockit_settimeout(c, 0.5));
    struct trickle tr = {.s = srv};
    atomic_init(&tr.stop, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, trickle_reader, &tr), 0);
    size_t sent = 0;
    double t0 = harness_now();
    assert_code(sockit_sendall(c, data, len, 0, &sent), SOCKIT_ETIMEOUT);
    double elapsed = harness_now() - t0;
    atomic_store(&tr.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(elapsed >= 0.45);
    assert_true(elapsed < 1.5);
    assert_true(sent > 0 && sent < len);
    sockit_close(c);
    sockit_close(srv);
    free(data);
}

/* ---- close-on-exec --------------------------------------------------------------- */

/* Runs a shell that reports which of fds it inherited; returns how many did. */
static int fds_surviving_exec(const int *fds, int n, bool report)
{
    char *argv[4 + 32];
    char nums[32][16];
    assert_true(n <= 32);
    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = report ? "n=0; for f in \"$@\"; do if [ -e /proc/$$/fd/$f ]; then "
                       "echo \"fd $f survived exec\" >&2; n=$((n+1)); fi; done; exit $n"
                     : "n=0; for f in \"$@\"; do [ -e /proc/$$/fd/$f ] && n=$((n+1)); done; "
                       "exit $n";
    argv[3] = "sh";
    for (int i = 0; i < n; i++) {
        snprintf(nums[i], sizeof nums[i], "%d", fds[i]);
        argv[4 + i] = nums[i];
    }
    argv[4 + n] = NULL;
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_exec_check_sees_a_descriptor_without_cloexec(void **state)
{
    (void)state;
    int raw = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(raw >= 0);
    assert_int_equal(fds_surviving_exec(&raw, 1, false), 1);
    close(raw);
}

static void test_no_descriptor_from_any_constructor_survives_exec(void **state)
{
    (void)state;
    sockit *owned[16];
    int n = 0;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    owned[n++] = l;
    owned[n++] = sockit_socket(AF_INET6, SOCK_DGRAM);
    owned[n++] = sockit_socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK);
    owned[n++] = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    owned[n++] = sockit_accept(l, NULL);
    owned[n++] = sockit_dup(l);
    int raw = socket(AF_INET, SOCK_DGRAM, 0); /* not close-on-exec: fromfd must dup it so */
    assert_true(raw >= 0);
    owned[n++] = sockit_fromfd(raw);
    close(raw);
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    owned[n++] = pair[0];
    owned[n++] = pair[1];
    owned[n++] = sockit_create_server("127.0.0.1", 0, NULL);
    for (int i = 0; i < n; i++)
        if (owned[i] == NULL)
            fail_msg("constructor %d failed: %s", i, sockit_errmsg());

    /* A descriptor passed over a Unix socket arrives close-on-exec too. */
    int sent_fd = sockit_fileno(owned[1]);
    assert_int_equal(sockit_send_fds(pair[0], "f", 1, &sent_fd, 1), 1);
    char b;
    int got_fd = -1;
    size_t nfds = 0;
    assert_int_equal(sockit_recv_fds(pair[1], &b, 1, &got_fd, 1, &nfds), 1);
    assert_int_equal(nfds, 1);

    int fds[17];
    for (int i = 0; i < n; i++)
        fds[i] = sockit_fileno(owned[i]);
    fds[n] = got_fd;
    assert_int_equal(fds_surviving_exec(fds, n + 1, true), 0);
    close(got_fd);
    for (int i = 0; i < n; i++)
        sockit_close(owned[i]);
}

/* ---- would-block is not a timeout ----------------------------------------------- */

static void test_non_blocking_calls_would_block_and_differ_from_timeout(void **state)
{
    (void)state;
    assert_int_equal(SOCKIT_EWOULDBLOCK, -EAGAIN);
    assert_int_not_equal(SOCKIT_EWOULDBLOCK, SOCKIT_ETIMEOUT);
    assert_string_not_equal(sockit_errname(SOCKIT_EWOULDBLOCK), sockit_errname(SOCKIT_ETIMEOUT));

    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c, *srv;
    harness_tcp_pair(AF_INET, &c, &srv);
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    assert_ok(sockit_bind(u, "127.0.0.1", 0));
    assert_ok(sockit_setblocking(l, false));
    assert_ok(sockit_setblocking(srv, false));
    assert_ok(sockit_setblocking(u, false));

    char buf[8];
    size_t got = 9;
    double t0 = harness_now();
    assert_null(sockit_accept(l, NULL));
    assert_int_equal(sockit_errcode(), SOCKIT_EWOULDBLOCK);
    assert_code(sockit_recv(srv, buf, sizeof buf, 0), SOCKIT_EWOULDBLOCK);
    assert_code(sockit_recv_exact(srv, buf, sizeof buf, &got), SOCKIT_EWOULDBLOCK);
    assert_int_equal(got, 0);
    assert_code(sockit_recvfrom(u, buf, sizeof buf, 0, NULL), SOCKIT_EWOULDBLOCK);
    assert_true(harness_now() - t0 < 0.5); /* none of them waited */

    assert_ok(sockit_settimeout(srv, 0.1));
    assert_ok(sockit_settimeout(u, 0.1));
    assert_code(sockit_recv(srv, buf, sizeof buf, 0), SOCKIT_ETIMEOUT);
    assert_code(sockit_recvfrom(u, buf, sizeof buf, 0, NULL), SOCKIT_ETIMEOUT);
    sockit_close(u);
    sockit_close(c);
    sockit_close(srv);
    sockit_close(l);
}

/* The promise of sockit.h's section 3: one thread receives while another sends on
 * the same object. Under ThreadSanitizer a race in the object shows here. */
#define DUPLEX_LINES 20000

static void *echo_lines_main(void *arg)
{
    sockit *s = arg;
    char line[64];
    ssize_t n;
    while ((n = sockit_readline(s, line, sizeof line)) > 0)
        if (sockit_sendall(s, line, (size_t)n, 0, NULL) < 0)
            break;
    sockit_shutdown(s, SHUT_WR);
    return NULL;
}

struct duplex_reader {
    sockit *s;
    int lines;
    bool in_order;
};

static void *duplex_reader_main(void *arg)
{
    struct duplex_reader *r = arg;
    char line[64], want[64];
    r->in_order = true;
    ssize_t n;
    while ((n = sockit_readline(r->s, line, sizeof line)) > 0) {
        snprintf(want, sizeof want, "line %d\n", r->lines);
        if (strcmp(line, want) != 0)
            r->in_order = false;
        r->lines++;
    }
    return NULL;
}

static void test_one_thread_receives_while_another_sends_on_one_socket(void **state)
{
    (void)state;
    static const double modes[] = {SOCKIT_BLOCKING, 5.0};
    for (size_t m = 0; m < 2; m++) {
        sockit *c, *srv;
        harness_tcp_pair(AF_INET, &c, &srv);
        assert_ok(sockit_settimeout(c, modes[m]));
        pthread_t echo, reader;
        assert_int_equal(pthread_create(&echo, NULL, echo_lines_main, srv), 0);
        struct duplex_reader r = {.s = c};
        assert_int_equal(pthread_create(&reader, NULL, duplex_reader_main, &r), 0);
        char line[64];
        for (int i = 0; i < DUPLEX_LINES; i++) {
            int len = snprintf(line, sizeof line, "line %d\n", i);
            assert_int_equal(sockit_sendall(c, line, (size_t)len, 0, NULL), len);
        }
        assert_ok(sockit_shutdown(c, SHUT_WR));
        assert_int_equal(pthread_join(reader, NULL), 0);
        assert_int_equal(pthread_join(echo, NULL), 0);
        assert_int_equal(r.lines, DUPLEX_LINES);
        assert_true(r.in_order);
        sockit_close(c);
        sockit_close(srv);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_no_sigpipe_from_any_sending_call),
        harness_test(test_one_thread_receives_while_another_sends_on_one_socket),
        harness_test(test_no_sigpipe_writing_to_a_closed_peer_in_this_process),
        harness_test(test_sigpipe_handler_never_runs_for_writes_to_a_closed_peer),
        harness_test(test_eintr_during_recv_with_timeout_still_returns_data),
        harness_test(test_eintr_during_blocking_recv_still_returns_data),
        harness_test(test_eintr_does_not_restart_the_recv_deadline),
        harness_test(test_eintr_during_blocking_accept_is_retried),
        harness_test(test_recv_exact_deadline_is_not_restarted_by_partial_progress),
        harness_test(test_sendall_deadline_is_not_restarted_by_partial_progress),
        harness_test(test_exec_check_sees_a_descriptor_without_cloexec),
        harness_test(test_no_descriptor_from_any_constructor_survives_exec),
        harness_test(test_non_blocking_calls_would_block_and_differ_from_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
