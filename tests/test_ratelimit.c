/* --conn-rate's table (cli/netcat/ratelimit.c): N connections per source per SECS,
 * refilled as time passes, sources counted apart, and the table never past
 * RATELIMIT_SOURCES however many sources come, forgetting the silent ones first.
 * Time is given by the test, so nothing here waits. */
#include "harness.h"

#include "../cli/netcat/ratelimit.h"

#include <stdio.h>
#include <string.h>

static access_ip ip(const char *text)
{
    sockit_addr a;
    access_ip out;
    assert_ok(sockit_addr_ip(&a, text, 1));
    assert_true(access_ip_of(&a, &out));
    return out;
}

/* The i-th of many distinct sources, 10.x.y.z. */
static access_ip nth(int i)
{
    char text[32];
    snprintf(text, sizeof text, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    return ip(text);
}

static void test_n_per_window_then_refused(void **state)
{
    (void)state;
    ratelimit *r = ratelimit_new(3, 1.0);
    assert_non_null(r);
    access_ip a = ip("127.0.0.1");
    for (int i = 0; i < 3; i++)
        assert_true(ratelimit_take(r, &a, 100.0 + i * 0.01));
    assert_false(ratelimit_take(r, &a, 100.05));
    /* Refusals take nothing: still refused, not pushed further back. */
    assert_false(ratelimit_take(r, &a, 100.2));
    /* A third of the window refills one token. */
    assert_true(ratelimit_take(r, &a, 100.02 + 1.0 / 3 + 0.001));
    assert_false(ratelimit_take(r, &a, 100.4));
    /* A whole window later the bucket is full again, and no fuller. */
    for (int i = 0; i < 3; i++)
        assert_true(ratelimit_take(r, &a, 200.0));
    assert_false(ratelimit_take(r, &a, 200.0));
    ratelimit_free(r);
}

static void test_exactly_one_window_later_is_accepted(void **state)
{
    (void)state;
    /* N 1: the refill over exactly SECS must give the token back, rounding or not. */
    ratelimit *r = ratelimit_new(1, 0.1);
    access_ip a = ip("127.0.0.1");
    double t = 1.7;
    for (int i = 0; i < 50; i++, t += 0.1) {
        assert_true(ratelimit_take(r, &a, t));
        assert_false(ratelimit_take(r, &a, t + 0.05));
    }
    ratelimit_free(r);
}

static void test_sources_are_counted_apart(void **state)
{
    (void)state;
    ratelimit *r = ratelimit_new(1, 10.0);
    access_ip a = ip("127.0.0.1"), b = ip("127.0.0.2"), c = ip("::1");
    access_ip mapped = ip("::ffff:127.0.0.1");
    assert_true(ratelimit_take(r, &a, 0));
    assert_true(ratelimit_take(r, &b, 0));
    assert_true(ratelimit_take(r, &c, 0));
    /* The mapped form of 127.0.0.1 is 127.0.0.1. */
    assert_false(ratelimit_take(r, &mapped, 1));
    assert_int_equal(ratelimit_sources(r), 3);
    ratelimit_free(r);
}

static void test_table_never_grows_past_its_cap(void **state)
{
    (void)state;
    ratelimit *r = ratelimit_new(1, 60.0);
    for (int i = 0; i < 3 * RATELIMIT_SOURCES; i++) {
        access_ip s = nth(i);
        assert_true(ratelimit_take(r, &s, 1.0 + i * 1e-6));
        assert_true(ratelimit_sources(r) <= RATELIMIT_SOURCES);
    }
    assert_int_equal(ratelimit_sources(r), RATELIMIT_SOURCES);
    /* The newest are remembered: the last source is still refused. */
    access_ip last = nth(3 * RATELIMIT_SOURCES - 1);
    assert_false(ratelimit_take(r, &last, 2.0));
    ratelimit_free(r);
}

static void test_silent_sources_go_first_and_the_rest_stay_found(void **state)
{
    (void)state;
    ratelimit *r = ratelimit_new(1, 1.0);
    /* A full table: sources seen at 0, and one, x, seen at 0.5 and again at 0.99. */
    for (int i = 0; i < RATELIMIT_SOURCES - 1; i++) {
        access_ip s = nth(i);
        assert_true(ratelimit_take(r, &s, 0));
    }
    access_ip x = ip("192.0.2.1");
    assert_true(ratelimit_take(r, &x, 0.5));
    assert_false(ratelimit_take(r, &x, 0.99));
    assert_int_equal(ratelimit_sources(r), RATELIMIT_SOURCES);
    /* A newcomer at 1.001: the sources silent for a whole window are let go... */
    access_ip y = ip("192.0.2.2");
    assert_true(ratelimit_take(r, &y, 1.001));
    assert_int_equal(ratelimit_sources(r), 2);
    /* ...and x, moved around by the removals, is still found and still limited. */
    assert_false(ratelimit_take(r, &x, 1.002));
    assert_false(ratelimit_take(r, &y, 1.002));
    ratelimit_free(r);
}

static void test_full_table_forgets_the_oldest(void **state)
{
    (void)state;
    ratelimit *r = ratelimit_new(1, 100.0);
    access_ip old = ip("192.0.2.1");
    assert_true(ratelimit_take(r, &old, 0));
    for (int i = 0; i < RATELIMIT_SOURCES - 1; i++) {
        access_ip s = nth(i);
        assert_true(ratelimit_take(r, &s, 1.0 + i * 1e-4));
    }
    /* None has been silent for 100 s: the newcomer pushes out the oldest, which
     * then starts again with a full bucket; the others are still limited. */
    access_ip fresh = ip("192.0.2.2");
    assert_true(ratelimit_take(r, &fresh, 5));
    assert_int_equal(ratelimit_sources(r), RATELIMIT_SOURCES);
    access_ip second = nth(RATELIMIT_SOURCES - 2);
    assert_false(ratelimit_take(r, &second, 5));
    assert_true(ratelimit_take(r, &old, 5));
    ratelimit_free(r);
    ratelimit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_n_per_window_then_refused),
        cmocka_unit_test(test_exactly_one_window_later_is_accepted),
        cmocka_unit_test(test_sources_are_counted_apart),
        cmocka_unit_test(test_table_never_grows_past_its_cap),
        cmocka_unit_test(test_silent_sources_go_first_and_the_rest_stay_found),
        cmocka_unit_test(test_full_table_forgets_the_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
