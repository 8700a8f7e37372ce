/* The error model: code names and texts from the one X-macro table, unknown codes,
 * and the thread-local code and message that every failing call sets. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A TCP port that refuses connections for as long as *holder stays open: bound but
 * not listening, so no parallel test can take the port in the meantime. */
static int refusing_port(sockit **holder)
{
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(s);
    assert_ok(sockit_bind(s, "127.0.0.1", 0));
    sockit_addr a;
    assert_ok(sockit_getsockname(s, &a));
    *holder = s;
    return sockit_addr_port(&a);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void test_version_is_the_header_version(void **state)
{
    (void)state;
    assert_string_equal(sockit_version(), SOCKIT_VERSION_STRING);
}

static void test_econnrefused_has_its_name_and_system_text(void **state)
{
    (void)state;
    assert_string_equal(sockit_errname(-ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(sockit_strerror(-ECONNREFUSED), "Connection refused");
}

static void test_common_system_codes_have_their_errno_names(void **state)
{
    (void)state;
    assert_string_equal(sockit_errname(-EPIPE), "EPIPE");
    assert_string_equal(sockit_errname(-ECONNRESET), "ECONNRESET");
    assert_string_equal(sockit_errname(-EADDRINUSE), "EADDRINUSE");
    assert_string_equal(sockit_errname(-ENOTCONN), "ENOTCONN");
    assert_string_equal(sockit_errname(-EINVAL), "EINVAL");
    assert_string_equal(sockit_errname(-EMFILE), "EMFILE");
    assert_string_equal(sockit_errname(SOCKIT_EWOULDBLOCK), "EAGAIN");
    assert_string_equal(sockit_strerror(-EPIPE), "Broken pipe");
    assert_string_equal(sockit_strerror(-ECONNRESET), "Connection reset by peer");
    /* The kernel's ETIMEDOUT (a TCP connection timed out) is not sockit's deadline. */
    assert_string_equal(sockit_errname(-ETIMEDOUT), "ETIMEDOUT");
    assert_string_not_equal(sockit_errname(-ETIMEDOUT), sockit_errname(SOCKIT_ETIMEOUT));
}

static void test_every_own_code_is_named_by_its_macro_and_has_its_table_text(void **state)
{
    (void)state;
    int checked = 0;
#define CHECK_OWN_CODE_(name, value, msg)                                                          \
    assert_int_equal(SOCKIT_##name, (value));                                                      \
    assert_string_equal(sockit_errname(SOCKIT_##name), #name);                                     \
    assert_string_equal(sockit_strerror(SOCKIT_##name), (msg));                                    \
    checked++;
    SOCKIT_ERRNO_MAP(CHECK_OWN_CODE_)
#undef CHECK_OWN_CODE_
    assert_true(checked >= 19);
}

static void test_own_codes_are_distinct_and_outside_the_errno_range(void **state)
{
    (void)state;
    static const int codes[] = {
#define LIST_OWN_CODE_(name, value, msg) SOCKIT_##name,
        SOCKIT_ERRNO_MAP(LIST_OWN_CODE_)
#undef LIST_OWN_CODE_
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < -4095);
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
    assert_int_not_equal(SOCKIT_EWOULDBLOCK, SOCKIT_ETIMEOUT);
}

static void test_unknown_codes_are_eunknown_with_some_text(void **state)
{
    (void)state;
    static const int unknown[] = {-4000, -4095, -5000, -5200, -99999, 12345, -2147483647 - 1};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(sockit_errname(unknown[i]), "EUNKNOWN");
        const char *text = sockit_strerror(unknown[i]);
        assert_non_null(text);
        assert_true(text[0] != '\0');
    }
}

static void test_code_zero_has_a_name_and_text(void **state)
{
    (void)state;
    assert_non_null(sockit_errname(0));
    assert_non_null(sockit_strerror(0));
    assert_true(sockit_strerror(0)[0] != '\0');
}

static void test_connect_refused_sets_code_and_message_naming_the_address(void **state)
{
    (void)state;
    sockit *holder;
    int port = refusing_port(&holder);
    sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c);
    assert_code(sockit_connect(c, "127.0.0.1", port), -ECONNREFUSED);
    assert_int_equal(sockit_errcode(), -ECONNREFUSED);

    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    assert_contains(sockit_errmsg(), where);
    assert_contains(sockit_errmsg(), "Connection refused");
    assert_contains(sockit_errmsg(), "connect");
    sockit_close(c);
    sockit_close(holder);
}

static void test_bind_in_use_message_names_operation_and_address(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(s);
    assert_code(sockit_bind(s, "127.0.0.1", port), -EADDRINUSE);
    assert_int_equal(sockit_errcode(), -EADDRINUSE);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    assert_contains(sockit_errmsg(), "bind");
    assert_contains(sockit_errmsg(), where);
    assert_contains(sockit_errmsg(), sockit_strerror(-EADDRINUSE));
    sockit_close(s);
    sockit_close(l);
}

static void test_bad_port_message_names_operation_and_port(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(s);
    assert_code(sockit_connect(s, "127.0.0.1", 70000), SOCKIT_EBADPORT);
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
    assert_contains(sockit_errmsg(), "connect");
    assert_contains(sockit_errmsg(), "70000");
    sockit_close(s);
}

static void test_failed_constructor_sets_code(void **state)
{
    (void)state;
    assert_null(sockit_socket(12345, SOCK_STREAM));
    assert_int_equal(sockit_errcode(), -EAFNOSUPPORT);
    assert_true(strlen(sockit_errmsg()) > 0);
}

struct other_thread {
    int code_at_start;
    int code;
    char msg[256];
};

static void *fail_differently(void *arg)
{
    struct other_thread *o = arg;
    o->code_at_start = sockit_errcode();
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    if (s != NULL) {
        (void)sockit_bind(s, "127.0.0.1", 65536);
        o->code = sockit_errcode();
        snprintf(o->msg, sizeof o->msg, "%s", sockit_errmsg());
        sockit_close(s);
    }
    return NULL;
}

static void test_failure_in_another_thread_leaves_this_threads_error(void **state)
{
    (void)state;
    sockit *holder;
    int port = refusing_port(&holder);
    sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(c);
    assert_code(sockit_connect(c, "127.0.0.1", port), -ECONNREFUSED);
    char mine[1024];
    snprintf(mine, sizeof mine, "%s", sockit_errmsg());

    struct other_thread o = {.code = 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fail_differently, &o), 0);
    assert_int_equal(pthread_join(t, NULL), 0);

    assert_int_equal(o.code_at_start, 0); /* a new thread starts with no error */
    assert_int_equal(o.code, SOCKIT_EBADPORT);
    assert_contains(o.msg, "65536");
    assert_int_equal(sockit_errcode(), -ECONNREFUSED);
    assert_string_equal(sockit_errmsg(), mine);
    sockit_close(c);
    sockit_close(holder);
}

static void test_errmsg_text_stays_until_this_threads_next_failure(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(s);
    assert_code(sockit_connect(s, "127.0.0.1", 0), SOCKIT_EBADPORT);
    const char *msg = sockit_errmsg();
    char copy[256];
    snprintf(copy, sizeof copy, "%s", msg);
    /* Asking again, or for the code, changes nothing. */
    assert_int_equal(sockit_errcode(), SOCKIT_EBADPORT);
    assert_ptr_equal(sockit_errmsg(), msg);
    assert_string_equal(msg, copy);
    /* The next failure replaces it in the same buffer. */
    assert_code(sockit_bind(s, "127.0.0.1", 65536), SOCKIT_EBADPORT);
    assert_ptr_equal(sockit_errmsg(), msg);
    assert_string_not_equal(msg, copy);
    sockit_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_version_is_the_header_version),
        harness_test(test_errmsg_text_stays_until_this_threads_next_failure),
        harness_test(test_econnrefused_has_its_name_and_system_text),
        harness_test(test_common_system_codes_have_their_errno_names),
        harness_test(test_every_own_code_is_named_by_its_macro_and_has_its_table_text),
        harness_test(test_own_codes_are_distinct_and_outside_the_errno_range),
        harness_test(test_unknown_codes_are_eunknown_with_some_text),
        harness_test(test_code_zero_has_a_name_and_text),
        harness_test(test_connect_refused_sets_code_and_message_naming_the_address),
        harness_test(test_bind_in_use_message_names_operation_and_address),
        harness_test(test_bad_port_message_names_operation_and_port),
        harness_test(test_failed_constructor_sets_code),
        harness_test(test_failure_in_another_thread_leaves_this_threads_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
