/* The default handle_error must not let a client flood the log: 500 failed
 * requests print at most 10 lines a second, and summary lines account for every
 * one that was not printed, in every mode (a process server's children share the
 * budget). stderr is sent to a file for the test. */
#include "socketserver_harness.h"

#include <fcntl.h>

enum { FAILING = 500 };

/* FAILING clients one after another, each sending a request the handler fails;
 * n[0] counts those that saw their connection end. */
static void failing_script(const srv_place *p, client_report *rep, void *arg)
{
    (void)arg;
    for (int i = 0; i < FAILING; i++) {
        sockit *c = client_open(p);
        if (!client_check(rep, c != NULL, "connect"))
            return;
        char ans[64];
        if (client_check(rep, client_send(p, c, "fail now\n", true) >= 0, "send"))
            rep->n[0] += client_recv(p, c, ans, sizeof ans) <= 0;
        sockit_close(c);
    }
}

static void check_failures_are_rate_limited(sockit_server_mode mode)
{
    char path[] = "/tmp/sockit-errlog-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);

    sockit_server_config cfg = srv_echo_config(mode);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    double t0 = harness_now();
    client_report rep;
    serve_clients(srv, mode, &p, failing_script, NULL, &rep);
    assert_ok(sockit_server_close(srv));
    double took = harness_now() - t0;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rep.n[0], FAILING);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int lines = 0, shown = 0, suppressed = 0, summaries = 0;
    char text[512];
    while (fgets(text, sizeof text, f) != NULL) {
        lines++;
        int n;
        if (strstr(text, "sockit_server: request from 127.0.0.1:") == text)
            shown++;
        else if (sscanf(text, "sockit_server: %d more failure", &n) == 1) {
            suppressed += n;
            summaries++;
        } else
            print_message("unexpected line: %s", text);
    }
    fclose(f);
    unlink(path);
    print_message("%d lines in %.2f s: %d failures shown, %d counted in %d summaries\n", lines,
                  took, shown, suppressed, summaries);
    assert_int_equal(shown + suppressed, FAILING);
    assert_int_equal(lines, shown + summaries);
    assert_true(summaries >= 1);
    /* 10 for each one-second window the run touched (a run shorter than a second
     * may touch two), and a little more at a window's edge. */
    assert_true(shown <= 12 * ((int)took + 2));
}

static void test_failures_are_rate_limited_and_summarised_in_sequential_mode(void **state)
{
    (void)state;
    check_failures_are_rate_limited(SOCKIT_SEQUENTIAL);
}

static void test_failures_are_rate_limited_and_summarised_in_threads_mode(void **state)
{
    (void)state;
    check_failures_are_rate_limited(SOCKIT_THREADS);
}

static void test_failures_are_rate_limited_and_summarised_in_processes_mode(void **state)
{
    (void)state;
    check_failures_are_rate_limited(SOCKIT_PROCESSES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_failures_are_rate_limited_and_summarised_in_sequential_mode),
        harness_test(test_failures_are_rate_limited_and_summarised_in_threads_mode),
        harness_test(test_failures_are_rate_limited_and_summarised_in_processes_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
