/* Features: the bits agree with each other, with the calls that use each feature
 * (a uring loop, a TLS context, an IPv6 bind, SO_REUSEPORT) and with the kernel's
 * own settings; threads asking at once get one answer. */
#include "harness.h"
#include "sockit_tls.h"
#include "sys.h"

#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define NTHREADS 8
#define NBITS    7 /* SOCKIT_FEATURE_TLS .. SOCKIT_FEATURE_KTLS */

typedef struct answer {
    unsigned usable;
    const char *reasons[NBITS];
} answer;

static pthread_barrier_t start;

static void *ask(void *arg)
{
    answer *a = arg;
    pthread_barrier_wait(&start);
    a->usable = sockit_features_usable();
    for (int i = 0; i < NBITS; i++)
        a->reasons[i] = sockit_feature_reason(1u << i);
    return NULL;
}

/* A ring the kernel refuses (injected, as seccomp or kernel.io_uring_disabled
 * would) makes io_uring built but not usable, with the refusal as the reason. In a
 * child that has not asked yet: the answer is kept for the process. */
static void test_refused_ring_is_not_usable_and_says_why(void **state)
{
    (void)state;
    if (!(sockit_features_built() & SOCKIT_FEATURE_URING))
        skip();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        harness_inject(HARNESS_OP(SOCKIT__SYS_RING_SETUP), EPERM, 1000, 0);
        unsigned usable = sockit_features_usable();
        const char *why = sockit_feature_reason(SOCKIT_FEATURE_URING);
        if (usable & SOCKIT_FEATURE_URING)
            _exit(10);
        if (why == NULL || strstr(why, "io_uring_setup") == NULL ||
            strstr(why, "Operation not permitted") == NULL)
            _exit(11);
        if (!(sockit_features_built() & SOCKIT_FEATURE_URING))
            _exit(12);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Early in the file, so the threads make this process's first ask together. */
static void test_threads_asking_at_once_get_one_answer(void **state)
{
    (void)state;
    pthread_t t[NTHREADS];
    answer got[NTHREADS];
    assert_int_equal(pthread_barrier_init(&start, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ask, &got[i]), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(got[i].usable, got[0].usable);
        for (int b = 0; b < NBITS; b++) {
            assert_ptr_equal(got[i].reasons[b], got[0].reasons[b]);
            if (got[i].reasons[b] != NULL)
                assert_string_equal(got[i].reasons[b], sockit_feature_reason(1u << b));
        }
    }
    assert_int_equal(sockit_features_usable(), got[0].usable);
}

static void test_usable_is_within_built(void **state)
{
    (void)state;
    unsigned built = sockit_features_built(), usable = sockit_features_usable();
    assert_int_equal(usable & ~built, 0);
    assert_int_equal(built & ~((1u << NBITS) - 1), 0);
    /* The parts that need nothing at build time are always in. */
    unsigned always = SOCKIT_FEATURE_IPV6 | SOCKIT_FEATURE_DUALSTACK | SOCKIT_FEATURE_REUSEPORT |
                      SOCKIT_FEATURE_TCP_FASTOPEN | SOCKIT_FEATURE_KTLS;
    assert_int_equal(built & always, always);
}

static void test_every_bit_has_a_name_and_unknown_ones_none(void **state)
{
    (void)state;
    static const char *const want[NBITS] = {"tls",       "io_uring",     "ipv6", "dualstack_ipv6",
                                            "reuseport", "tcp_fastopen", "ktls"};
    int seen = 0;
    for (unsigned bit = 1; sockit_feature_name(bit) != NULL; bit <<= 1)
        assert_string_equal(sockit_feature_name(bit), want[seen++]);
    assert_int_equal(seen, NBITS);
    assert_string_equal(sockit_feature_name(SOCKIT_FEATURE_URING), "io_uring");
    assert_string_equal(sockit_feature_name(SOCKIT_FEATURE_KTLS), "ktls");
    static const unsigned unknown[] = {0, 1u << NBITS, 0x80000000u,
                                       SOCKIT_FEATURE_TLS | SOCKIT_FEATURE_URING};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_null(sockit_feature_name(unknown[i]));
        assert_null(sockit_feature_reason(unknown[i]));
    }
}

/* A reason exactly where a feature is not usable; not built says so. */
static void test_reasons_exactly_where_not_usable(void **state)
{
    (void)state;
    unsigned built = sockit_features_built(), usable = sockit_features_usable();
    for (unsigned bit = 1; sockit_feature_name(bit) != NULL; bit <<= 1) {
        const char *why = sockit_feature_reason(bit);
        if (usable & bit) {
            assert_null(why);
            continue;
        }
        assert_non_null(why);
        assert_true(strlen(why) > 0);
        if (!(built & bit))
            assert_non_null(strstr(why, "built without"));
    }
}

static void test_tls_bit_agrees_with_sockit_has_tls(void **state)
{
    (void)state;
    bool built = (sockit_features_built() & SOCKIT_FEATURE_TLS) != 0;
    assert_int_equal(built, sockit_has_tls());
    sockit_tls_ctx *ctx = sockit_tls_ctx_new(SOCKIT_TLS_SERVER);
    assert_int_equal(ctx != NULL, (sockit_features_usable() & SOCKIT_FEATURE_TLS) != 0);
    if (!built)
        assert_non_null(strstr(sockit_feature_reason(SOCKIT_FEATURE_TLS), "OpenSSL"));
    sockit_tls_ctx_free(ctx);
}

static void test_uring_bit_agrees_with_a_uring_loop(void **state)
{
    (void)state;
    bool built = (sockit_features_built() & SOCKIT_FEATURE_URING) != 0;
    assert_int_equal(built, strstr(sockit_loop_backends(), "uring") != NULL);
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "uring";
    sockit_loop *loop = sockit_loop_new(&o);
    bool usable = (sockit_features_usable() & SOCKIT_FEATURE_URING) != 0;
    if (loop == NULL && usable)
        fail_msg("io_uring usable, but a uring loop fails: %s", sockit_errmsg());
    if (loop != NULL && !usable)
        fail_msg("io_uring not usable (%s), but a uring loop starts",
                 sockit_feature_reason(SOCKIT_FEATURE_URING));
    if (loop != NULL)
        assert_ok(sockit_loop_close(loop));
    /* A default loop is on uring exactly when the feature is usable. */
    o.backend = NULL;
    loop = sockit_loop_new(&o);
    assert_sock(loop);
    if (getenv("SOCKIT_LOOP_BACKEND") == NULL)
        assert_int_equal(strcmp(sockit_loop_backend(loop), "uring") == 0, usable);
    assert_ok(sockit_loop_close(loop));
}

static void test_ipv6_bits_agree_with_an_ipv6_bind(void **state)
{
    (void)state;
    unsigned usable = sockit_features_usable();
    bool bound = false;
    sockit *s = sockit_socket(AF_INET6, SOCK_STREAM);
    if (s != NULL) {
        bound = sockit_bind(s, "::1", 0) == 0;
        sockit_close(s);
    }
    assert_int_equal((usable & SOCKIT_FEATURE_IPV6) != 0, bound);
    bool dual = (usable & SOCKIT_FEATURE_DUALSTACK) != 0;
    if (dual)
        assert_true(sockit_has_dualstack_ipv6());
    if (bound && sockit_has_dualstack_ipv6())
        assert_true(dual);
}

static void test_reuseport_bit_agrees_with_the_option(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(s);
    bool ok = sockit_set_reuseport(s, true) == 0;
    sockit_close(s);
    assert_int_equal((sockit_features_usable() & SOCKIT_FEATURE_REUSEPORT) != 0, ok);
}

static void test_fastopen_bit_follows_the_sysctl(void **state)
{
    (void)state;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_fastopen", "r");
    if (f == NULL)
        skip();
    int v = 0;
    assert_int_equal(fscanf(f, "%i", &v), 1);
    fclose(f);
    bool usable = (sockit_features_usable() & SOCKIT_FEATURE_TCP_FASTOPEN) != 0;
    assert_int_equal(usable, (v & 3) == 3);
    if (!usable) {
        char value[32];
        snprintf(value, sizeof value, "is %d", v);
        assert_non_null(strstr(sockit_feature_reason(SOCKIT_FEATURE_TCP_FASTOPEN), value));
    }
}

/* Usable kTLS means an established TCP connection takes the "tls" ULP. (The other
 * way round holds only without module autoloading, so that is not asserted.) */
static void test_ktls_bit_agrees_with_attaching_the_ulp(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    assert_sock(c);
    sockit *a = sockit_accept(l, NULL);
    assert_sock(a);
    bool attached = setsockopt(sockit_fileno(c), IPPROTO_TCP, TCP_ULP, "tls", 3) == 0;
    sockit_close(a);
    sockit_close(c);
    sockit_close(l);
    if (sockit_features_usable() & SOCKIT_FEATURE_KTLS)
        assert_true(attached);
    else
        assert_non_null(strstr(sockit_feature_reason(SOCKIT_FEATURE_KTLS), "tls"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_refused_ring_is_not_usable_and_says_why),
        harness_test(test_threads_asking_at_once_get_one_answer),
        harness_test(test_usable_is_within_built),
        harness_test(test_every_bit_has_a_name_and_unknown_ones_none),
        harness_test(test_reasons_exactly_where_not_usable),
        harness_test(test_tls_bit_agrees_with_sockit_has_tls),
        harness_test(test_uring_bit_agrees_with_a_uring_loop),
        harness_test(test_ipv6_bits_agree_with_an_ipv6_bind),
        harness_test(test_reuseport_bit_agrees_with_the_option),
        harness_test(test_fastopen_bit_follows_the_sysctl),
        harness_test(test_ktls_bit_agrees_with_attaching_the_ulp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
