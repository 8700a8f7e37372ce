/* The load generator's latency histogram: percentiles right on known inputs, within
 * the documented relative error on any input, exact extremes, and merging. */
#include "harness.h"

#include "../cli/bench/histogram.h"

#include <stdlib.h>

static histogram h, other;

static void assert_within(uint64_t got, uint64_t want)
{
    /* The bucket holding want is at most want/128 wide, and the answer is its top. */
    assert_true(got >= want);
    assert_true(got - want <= want / HISTOGRAM_SUB);
}

static void test_percentiles_of_one_to_ten_thousand(void **state)
{
    (void)state;
    histogram_init(&h);
    for (uint64_t v = 1; v <= 10000; v++)
        histogram_record(&h, v);
    assert_int_equal(h.count, 10000);
    assert_within(histogram_percentile(&h, 50), 5000);
    assert_within(histogram_percentile(&h, 90), 9000);
    assert_within(histogram_percentile(&h, 99), 9900);
    assert_within(histogram_percentile(&h, 99.9), 9990);
    assert_int_equal(histogram_percentile(&h, 100), 10000);
    assert_int_equal(h.min, 1);
    assert_true(histogram_mean(&h) > 5000.49 && histogram_mean(&h) < 5000.51);
}

static void test_small_values_are_exact(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < HISTOGRAM_SUB; v++)
        assert_int_equal(histogram_bucket_max(histogram_index(v)), v);
    histogram_init(&h);
    histogram_record(&h, 3);
    histogram_record(&h, 7);
    assert_int_equal(histogram_percentile(&h, 50), 3);
    assert_int_equal(histogram_percentile(&h, 75), 7);
}

static void test_empty_and_single_value(void **state)
{
    (void)state;
    histogram_init(&h);
    assert_int_equal(histogram_percentile(&h, 50), 0);
    assert_true(histogram_mean(&h) == 0.0);
    histogram_record(&h, 123456789);
    /* Never above the largest value recorded, so one value is reported exactly. */
    assert_int_equal(histogram_percentile(&h, 50), 123456789);
    assert_int_equal(histogram_percentile(&h, 99.9), 123456789);
}

static void test_extreme_values_have_buckets(void **state)
{
    (void)state;
    assert_int_equal(histogram_index(UINT64_MAX), HISTOGRAM_BUCKETS - 1);
    assert_int_equal(histogram_bucket_max(HISTOGRAM_BUCKETS - 1), UINT64_MAX);
    histogram_init(&h);
    histogram_record(&h, UINT64_MAX);
    histogram_record(&h, UINT64_C(1) << 62);
    assert_int_equal(histogram_percentile(&h, 50), (UINT64_C(1) << 62) + ((UINT64_C(1) << 55) - 1));
    assert_int_equal(histogram_percentile(&h, 100), UINT64_MAX);
}

/* Every value lands in a bucket whose range holds it and is at most 1/128 wide. */
static void test_every_bucket_bounds_its_values(void **state)
{
    (void)state;
    srand(42);
    for (int i = 0; i < 200000; i++) {
        uint64_t v = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
        v >>= rand() % 64;
        unsigned idx = histogram_index(v);
        assert_true(idx < HISTOGRAM_BUCKETS);
        uint64_t top = histogram_bucket_max(idx);
        assert_true(top >= v);
        assert_true(top - v <= v / HISTOGRAM_SUB);
        if (idx > 0)
            assert_true(histogram_bucket_max(idx - 1) < v);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Against the exact percentiles of a sorted sample with a long tail. */
static void test_matches_sorted_percentiles_within_the_bound(void **state)
{
    (void)state;
    enum { N = 50000 };
    static uint64_t sample[N];
    srand(7);
    histogram_init(&h);
    for (int i = 0; i < N; i++) {
        /* ~20 us typical, a few ms tail: what a loopback round trip looks like. */
        uint64_t v = 15000 + (uint64_t)(rand() % 10000);
        if (rand() % 1000 == 0)
            v *= 100 + (uint64_t)(rand() % 100);
        sample[i] = v;
        histogram_record(&h, v);
    }
    qsort(sample, N, sizeof sample[0], cmp_u64);
    const double ps[] = {50, 90, 99, 99.9, 99.99};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        size_t rank = (size_t)((ps[k] / 100.0) * N + 0.5);
        assert_within(histogram_percentile(&h, ps[k]), sample[rank - 1]);
    }
    assert_int_equal(histogram_percentile(&h, 100), sample[N - 1]);
}

static void test_merge_equals_recording_everything_in_one(void **state)
{
    (void)state;
    histogram all;
    histogram_init(&h);
    histogram_init(&other);
    histogram_init(&all);
    for (uint64_t v = 1; v <= 1000; v++) {
        histogram_record(v % 2 ? &h : &other, v * 37);
        histogram_record(&all, v * 37);
    }
    histogram empty;
    histogram_init(&empty);
    histogram_merge(&h, &other);
    histogram_merge(&h, &empty); /* an empty one changes nothing, min included */
    assert_int_equal(h.count, all.count);
    assert_int_equal(h.min, all.min);
    assert_int_equal(h.max, all.max);
    assert_memory_equal(h.buckets, all.buckets, sizeof h.buckets);
    assert_int_equal(histogram_percentile(&h, 99), histogram_percentile(&all, 99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles_of_one_to_ten_thousand),
        cmocka_unit_test(test_small_values_are_exact),
        cmocka_unit_test(test_empty_and_single_value),
        cmocka_unit_test(test_extreme_values_have_buckets),
        cmocka_unit_test(test_every_bucket_bounds_its_values),
        cmocka_unit_test(test_matches_sorted_percentiles_within_the_bound),
        cmocka_unit_test(test_merge_equals_recording_everything_in_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
