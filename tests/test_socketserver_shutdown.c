/* Stopping a server: shutdown from another thread or a signal handler wakes it at
 * once (no polling interval); close waits for requests in flight, or with
 * abandon_on_close returns at once; nothing leaks either way. */
#include "socketserver_harness.h"

#include <dirent.h>

static const sockit_server_mode all_modes[] = {SOCKIT_SEQUENTIAL, SOCKIT_THREADS, SOCKIT_PROCESSES,
                                               SOCKIT_POOL};

/* Child processes of this process (zombies included), except one. */
static int count_children(pid_t except)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        int pid;
        while (fscanf(f, "%d", &pid) == 1)
            n += pid != except;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Waits (bounded) until this process is back to fds open, threads running and no
 * child but except; they may take a moment when handlers finish alone. */
static void expect_back_to(int fds, int threads, pid_t except, double seconds)
{
    double end = harness_now() + seconds;
    while (harness_now() < end && (harness_count_fds() != fds ||
                                   harness_count_threads() != threads || count_children(except)))
        srv_sleep(0.01);
    assert_int_equal(harness_count_fds(), fds);
    assert_int_equal(harness_count_threads(), threads);
    assert_int_equal(count_children(except), 0);
}

/* Starts and stops a server once, so what a first server starts lazily (the TSan
 * runtime's own thread) is not counted as a leak. */
static void warm_up(sockit_server_mode mode)
{
    sockit_server_config cfg = srv_echo_config(mode);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    srv_stop(&r);
    assert_ok(sockit_server_close(srv));
}

/* ---- shutdown with requests in flight ------------------------------------------------ */

enum { INFLIGHT = 50, SLEEPERS = 25 };

typedef struct inflight {
    int sleep_ms;
    bool abandon;
} inflight;

/* 50 clients: 25 whose handlers sleep, 25 whose handlers wait for a line. Stage 1:
 * all are in the server's hands. Without abandon the waiting ones then send
 * (stage 2) and every answer is checked (n[0] correct answers); with abandon each
 * client must see its connection end (n[1] ended: n[2] sleepers, n[3] waiting;
 * t[0] when the last ended). */
static void inflight_script(const srv_place *p, client_report *rep, void *arg)
{
    const inflight *in = arg;
    sockit *c[INFLIGHT] = {NULL};
    char req[64], ans[128];
    for (int i = 0; i < INFLIGHT; i++) {
        c[i] = client_open(p);
        if (!client_check(rep, c[i] != NULL, "connect"))
            goto out;
        snprintf(req, sizeof req, "sleep:%d sleeper %d\n", in->sleep_ms, i);
        if (i < SLEEPERS && !client_check(rep, client_send(p, c[i], req, true) >= 0, "send"))
            goto out;
    }
    /* With abandon, stage 1 ends when close returned: a close stuck on a handler
     * that waits for this client is given 5 s, then the client gives up. */
    if (!clients_sync(rep, 1, in->abandon ? 5.0 : 20.0))
        goto out;
    if (in->abandon) {
        double t0 = harness_now();
        for (int i = 0; i < INFLIGHT; i++) {
            sockit_settimeout(c[i], 1.0);
            ssize_t n = client_recv(p, c[i], ans, sizeof ans);
            bool ended = n == 0 || n == -ECONNRESET;
            rep->n[1] += ended;
            rep->n[i < SLEEPERS ? 2 : 3] += ended;
        }
        rep->t[0] = harness_now() - t0;
        goto out;
    }
    for (int i = SLEEPERS; i < INFLIGHT; i++) {
        snprintf(req, sizeof req, "late %d\n", i);
        client_check(rep, client_send(p, c[i], req, true) >= 0, "send late request");
    }
    atomic_store(&rep->reached, 2);
    for (int i = 0; i < INFLIGHT; i++) {
        if (i < SLEEPERS)
            snprintf(req, sizeof req, "sleep:%d sleeper %d\n", in->sleep_ms, i);
        else
            snprintf(req, sizeof req, "late %d\n", i);
        rep->n[0] += client_recv(p, c[i], ans, sizeof ans) > 0 && strcmp(ans, req) == 0;
    }
out:
    for (int i = 0; i < INFLIGHT; i++)
        sockit_close(c[i]);
}

static void check_inflight(sockit_server_mode mode, bool abandon)
{
    warm_up(mode);
    int fds0 = harness_count_fds(), threads0 = harness_count_threads();
    /* Long enough that the first sleepers are still in hand when the fiftieth
     * request arrives, even when forks are slow (ThreadSanitizer on a busy machine). */
    /* Abandoned sleepers sleep far longer than close may take, so a close that waited
     * for them cannot pass for one that did not, even on a loaded machine. */
    inflight in = {.sleep_ms = abandon ? 3000 : 1500, .abandon = abandon};
    sockit_server_config cfg = srv_echo_config(mode);
    cfg.threads = INFLIGHT;
    cfg.max_children = INFLIGHT + 10;
    cfg.abandon_on_close = abandon;
    cfg.handle_error = srv_quiet_error;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    clients cl;
    clients_start(&cl, mode, &p, inflight_script, &in);
    srv_run r;
    srv_start(&r, srv);
    assert_true(clients_reached(&cl, 1, 20.0));
    assert_true(srv_wait_active(srv, INFLIGHT, 10.0));

    /* No polling interval: the serving thread is woken at once. */
    assert_true(srv_stop(&r) < 0.25);
    if (!abandon) {
        atomic_store(&cl.rep->step, 1);
        assert_true(clients_reached(&cl, 2, 10.0));
    }
    double t0 = harness_now();
    assert_ok(sockit_server_close(srv));
    double close_took = harness_now() - t0;
    if (abandon) {
        /* Milliseconds here (SIGKILL and reap 50 children, or let 50 threads go); the
         * bound leaves room for TSan's slow forks and still is far below the 3 s a
         * close that waited for the sleepers would take. */
        assert_true(close_took < 1.0);
        atomic_store(&cl.rep->step, 1);
    } else {
        /* close waited for the children: none is left to reap. */
        assert_int_equal(count_children(cl.pid), 0);
    }
    client_report rep;
    bool ended = clients_finish(&cl, 20.0, &rep);
    if (rep.failed)
        fail_msg("clients: %s", rep.why);
    assert_true(ended);
    if (abandon) {
        if (rep.n[1] != INFLIGHT)
            print_message("ended: %d of %d sleeping, %d of %d waiting for a line\n", rep.n[2],
                          SLEEPERS, rep.n[3], INFLIGHT - SLEEPERS);
        assert_int_equal(rep.n[1], INFLIGHT);
        assert_true(rep.t[0] < 0.5);
    } else {
        assert_int_equal(rep.n[0], INFLIGHT);
    }
    /* Abandoned threads finish alone, after their sleep. */
    expect_back_to(fds0, threads0, 0, abandon ? 6.0 : 3.0);
}

static void test_shutdown_with_50_requests_in_flight_in_threads_mode(void **state)
{
    (void)state;
    check_inflight(SOCKIT_THREADS, false);
}

static void test_shutdown_with_50_requests_in_flight_in_pool_mode(void **state)
{
    (void)state;
    check_inflight(SOCKIT_POOL, false);
}

static void test_shutdown_with_50_requests_in_flight_in_processes_mode(void **state)
{
    (void)state;
    check_inflight(SOCKIT_PROCESSES, false);
}

static void test_abandon_on_close_returns_at_once_in_threads_mode(void **state)
{
    (void)state;
    check_inflight(SOCKIT_THREADS, true);
}

static void test_abandon_on_close_returns_at_once_in_pool_mode(void **state)
{
    (void)state;
    check_inflight(SOCKIT_POOL, true);
}

static void test_abandon_on_close_returns_at_once_in_processes_mode(void **state)
{
    (void)state;
    check_inflight(SOCKIT_PROCESSES, true);
}

/* ---- shutdown of an idle server, and serving again ---------------------------------- */

static void test_shutdown_wakes_an_idle_server_at_once_in_every_mode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof all_modes / sizeof all_modes[0]; i++) {
        sockit_server_config cfg = srv_echo_config(all_modes[i]);
        srv_place p;
        sockit_server *srv = srv_new(&p, i % 2 ? KIND_UDP : KIND_TCP, &cfg);
        srv_run r;
        srv_start(&r, srv);
        /* Long enough for serve_forever to be asleep in its wait. */
        srv_sleep(0.3);
        assert_true(srv_stop(&r) < 0.25);
        assert_ok(sockit_server_close(srv));
    }
}

static void test_serve_forever_serves_again_after_a_shutdown(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_THREADS);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    for (int round = 0; round < 2; round++) {
        srv_run r;
        srv_start(&r, srv);
        expect_echo(&p, round == 0 ? "first run\n" : "second run\n");
        srv_stop(&r);
    }
    assert_ok(sockit_server_close(srv));
}

static atomic_int timeouts;

static void count_timeout(sockit_server *server, void *user)
{
    (void)server;
    (void)user;
    atomic_fetch_add(&timeouts, 1);
}

static void *shutdown_later(void *arg)
{
    srv_sleep(0.2);
    sockit_server_shutdown(arg);
    return NULL;
}

/* Shutdown ends a handle_request with no limit: 0, and it is not a timeout. */
static void test_handle_request_returns_0_when_shut_down_from_another_thread(void **state)
{
    (void)state;
    atomic_store(&timeouts, 0);
    sockit_server_config cfg = srv_echo_config(SOCKIT_SEQUENTIAL);
    cfg.handle_timeout = count_timeout;
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shutdown_later, srv), 0);
    double t0 = harness_now();
    assert_int_equal(sockit_server_handle_request(srv, -1.0), 0);
    double took = harness_now() - t0;
    pthread_join(t, NULL);
    assert_true(took >= 0.15 && took < 0.7);
    assert_int_equal(atomic_load(&timeouts), 0);
    assert_ok(sockit_server_close(srv));
}

/* ---- shutdown from a signal handler -------------------------------------------------- */

static sockit_server *_Atomic signal_server;

static void shutdown_on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(atomic_load(&signal_server));
}

static void ignore_signal(int sig) { (void)sig; }

static void restore_default(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(sig, &sa, NULL), 0);
}

static void *kill_process_later(void *arg)
{
    srv_sleep(0.3);
    kill(getpid(), *(const int *)arg);
    return NULL;
}

static void echo_script(const srv_place *p, client_report *rep, void *arg)
{
    client_echo(p, rep, arg);
}

/* serve_forever runs in this thread, serves a client, and returns 0 after the
 * signal's handler called sockit_server_shutdown: sent to this very thread
 * (pthread_kill) or to the process from another thread (kill). */
static void check_signal_stops(int sig, bool to_process)
{
    sockit_server_config cfg = srv_echo_config(SOCKIT_THREADS);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    atomic_store(&signal_server, srv);
    harness_signal_no_restart(sig, shutdown_on_signal);
    clients cl;
    clients_start(&cl, SOCKIT_THREADS, &p, echo_script, "before the signal\n");
    pthread_t killer;
    if (to_process)
        assert_int_equal(pthread_create(&killer, NULL, kill_process_later, &sig), 0);
    else
        harness_signal_after(sig, 0.3);
    double t0 = harness_now();
    int rc = sockit_server_serve_forever(srv);
    double took = harness_now() - t0;
    if (to_process)
        pthread_join(killer, NULL);
    restore_default(sig);
    atomic_store(&signal_server, NULL);
    client_report rep;
    clients_finish(&cl, 10.0, &rep);
    if (rep.failed)
        fail_msg("client: %s", rep.why);
    assert_ok(rc);
    assert_int_equal(rc, 0);
    assert_true(took >= 0.25 && took < 0.8);
    assert_ok(sockit_server_close(srv));
}

static void test_sigint_handler_calling_shutdown_stops_serve_forever(void **state)
{
    (void)state;
    check_signal_stops(SIGINT, false);
}

static void test_sigterm_to_the_process_stops_serve_forever(void **state)
{
    (void)state;
    check_signal_stops(SIGTERM, true);
}

/* A signal whose handler does not ask for shutdown interrupts the wait (no
 * SA_RESTART) but not the serving. */
static void test_other_signal_does_not_stop_serving(void **state)
{
    (void)state;
    sockit_server_config cfg = srv_echo_config(SOCKIT_THREADS);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    harness_signal_no_restart(SIGUSR1, ignore_signal);
    srv_run r;
    srv_start(&r, srv);
    srv_sleep(0.1);
    assert_int_equal(pthread_kill(r.thread, SIGUSR1), 0);
    srv_sleep(0.2);
    assert_false(atomic_load(&r.returned));
    expect_echo(&p, "after the signal\n");
    srv_stop(&r);
    restore_default(SIGUSR1);
    assert_ok(sockit_server_close(srv));
}

/* A process-mode program that stops on SIGTERM through sockit_server_shutdown (as
 * the header suggests) passes that handler on to its children. abandon_on_close
 * must still return at once and leave no child behind. */
static void test_abandon_on_close_in_processes_mode_with_a_sigterm_handler(void **state)
{
    (void)state;
    harness_signal_no_restart(SIGTERM, shutdown_on_signal);
    check_inflight(SOCKIT_PROCESSES, true);
    restore_default(SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_shutdown_with_50_requests_in_flight_in_threads_mode),
        harness_test(test_shutdown_with_50_requests_in_flight_in_pool_mode),
        harness_test(test_shutdown_with_50_requests_in_flight_in_processes_mode),
        harness_test(test_abandon_on_close_returns_at_once_in_threads_mode),
        harness_test(test_abandon_on_close_returns_at_once_in_pool_mode),
        harness_test(test_abandon_on_close_returns_at_once_in_processes_mode),
        harness_test(test_shutdown_wakes_an_idle_server_at_once_in_every_mode),
        harness_test(test_serve_forever_serves_again_after_a_shutdown),
        harness_test(test_handle_request_returns_0_when_shut_down_from_another_thread),
        harness_test(test_sigint_handler_calling_shutdown_stops_serve_forever),
        harness_test(test_sigterm_to_the_process_stops_serve_forever),
        harness_test(test_other_signal_does_not_stop_serving),
        harness_test(test_abandon_on_close_in_processes_mode_with_a_sigterm_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
