/* What every test of the loop, streams, listeners and datagram endpoints needs to
 * drive a loop: one made on the backend the CTest entry asked for, and runs that are
 * always bounded in time, so a broken component fails its test instead of hanging
 * it. Static inline: each test takes what it uses. */
#ifndef SOCKIT_TEST_LOOP_HARNESS_H
#define SOCKIT_TEST_LOOP_HARNESS_H

#include "harness.h"

#include <stdlib.h>
#include <string.h>

/* A loop on $SOCKIT_LOOP_BACKEND's backend: one that silently fell back would make
 * the per-backend entries (test_x_epoll, test_x_poll) lie. */
static inline sockit_loop *new_loop(void)
{
    sockit_loop *loop = sockit_loop_new(NULL);
    assert_sock(loop);
    const char *want = getenv("SOCKIT_LOOP_BACKEND");
    if (want != NULL && want[0] != '\0')
        assert_string_equal(sockit_loop_backend(loop), want);
    return loop;
}

/* Runs the loop until cond holds or secs pass. */
#define RUN_UNTIL(loop, cond, secs)                                                                \
    do {                                                                                           \
        double until_ = harness_now() + (secs);                                                    \
        while (!(cond) && harness_now() < until_)                                                  \
            sockit_loop_run_once((loop), 0.01);                                                    \
    } while (0)

/* Runs the loop for secs whatever happens. */
static inline void run_for(sockit_loop *loop, double secs)
{
    double until = harness_now() + secs;
    while (harness_now() < until)
        sockit_loop_run_once(loop, 0.01);
}

/* Everything is gone: the loop has nothing left and closes cleanly. */
static inline void close_loop(sockit_loop *loop)
{
    for (int i = 0; i < 10; i++)
        sockit_loop_run_once(loop, 0);
    assert_ok(sockit_loop_close(loop));
}

#endif
