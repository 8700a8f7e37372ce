/* SOCKIT_THREADS must not slow down with the connections it holds: reaping the
 * threads of finished requests costs O(1) each, never a walk over the threads still
 * running. With a few thousand idle connections held, new clients are answered
 * promptly, and the reaper looks at exactly the records of the threads that ended
 * (reap_visits, an internal counter, hence socketserver.h). */
#include "socketserver_harness.h"

#include "socketserver.h"

#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

/* Under the sanitizers every thread costs far more memory. */
#ifdef SANITIZED
enum { IDLE = 500 };
#else
enum { IDLE = 2000 };
#endif
enum { FRESH = 200 };

static void raise_fd_limit(int need)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)need)
            fail_msg("need %d descriptors, the hard limit is %ld", need, (long)rl.rlim_max);
        rl.rlim_cur = (rlim_t)need;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
}

static void test_reaping_does_not_walk_the_threads_of_idle_connections(void **state)
{
    (void)state;
    raise_fd_limit(2 * IDLE + 2 * FRESH + 64);
    sockit_server_config cfg = srv_echo_config(SOCKIT_THREADS);
    srv_place p;
    sockit_server *srv = srv_new(&p, KIND_TCP, &cfg);
    srv_run r;
    srv_start(&r, srv);
    sockit **idle = calloc(IDLE, sizeof *idle);
    assert_non_null(idle);
    for (int i = 0; i < IDLE; i++) {
        idle[i] = client_open(&p);
        assert_sock(idle[i]);
    }
    assert_true(srv_wait_active(srv, IDLE, 30.0));

    double worst = 0, t0 = harness_now();
    for (int i = 0; i < FRESH; i++) {
        double t = harness_now();
        expect_echo(&p, "fresh client\n");
        t = harness_now() - t;
        worst = t > worst ? t : worst;
    }
    double took = harness_now() - t0;
    srv_stop(&r);
    /* Read once the serving thread is gone: only it reaps. */
    unsigned long visits = srv->reap_visits;
    print_message("%d fresh clients beside %d idle ones: %.3f s, worst %.1f ms; reaper looked at "
                  "%lu thread records\n",
                  FRESH, IDLE, took, worst * 1e3, visits);
    assert_true(worst < 1.0);
    /* Every fresh client's thread at most once, and none of the idle ones. */
    assert_true(visits <= FRESH);

    for (int i = 0; i < IDLE; i++)
        sockit_close(idle[i]);
    free(idle);
    assert_ok(sockit_server_close(srv));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_reaping_does_not_walk_the_threads_of_idle_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
