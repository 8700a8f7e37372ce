/* sockit_addr: parsing, building, formatting, comparing, and sockit_parse_port. */
#include "harness.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUN_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)

/* A string of n copies of c after prefix, in a static buffer. */
static const char *repeat(const char *prefix, char c, size_t n)
{
    static char buf[512];
    size_t p = strlen(prefix);
    assert_true(p + n < sizeof buf);
    memcpy(buf, prefix, p);
    memset(buf + p, c, n);
    buf[p + n] = '\0';
    return buf;
}

static void assert_formats_as(const sockit_addr *a, const char *expect)
{
    char text[SOCKIT_ADDRSTRLEN];
    assert_code(sockit_addr_format(a, text, sizeof text), (int)strlen(expect));
    assert_string_equal(text, expect);
}

static void assert_parse_fails(const char *text, int code)
{
    sockit_addr a;
    memset(&a, 0x5a, sizeof a);
    sockit_addr before = a;
    assert_code(sockit_addr_parse(&a, text), code);
    assert_memory_equal(&a, &before, sizeof a);
    assert_int_equal(sockit_errcode(), code);
    if (strstr(sockit_errmsg(), text) == NULL)
        fail_msg("message \"%s\" does not name the input \"%s\"", sockit_errmsg(), text);
}

static void test_parse_ipv4_gives_host_and_port(void **state)
{
    (void)state;
    sockit_addr a;
    assert_ok(sockit_addr_parse(&a, "127.0.0.1:80"));
    assert_int_equal(sockit_addr_family(&a), AF_INET);
    assert_int_equal(a.len, sizeof(struct sockaddr_in));
    assert_int_equal(a.u.in4.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_int_equal(sockit_addr_port(&a), 80);
    assert_formats_as(&a, "127.0.0.1:80");

    assert_ok(sockit_addr_parse(&a, "0.0.0.0:0"));
    assert_int_equal(sockit_addr_port(&a), 0);
    assert_ok(sockit_addr_parse(&a, "255.255.255.255:65535"));
    assert_int_equal(sockit_addr_port(&a), 65535);
}

static void test_parse_bracketed_ipv6(void **state)
{
    (void)state;
    sockit_addr a;
    assert_ok(sockit_addr_parse(&a, "[::1]:80"));
    assert_int_equal(sockit_addr_family(&a), AF_INET6);
    assert_int_equal(a.len, sizeof(struct sockaddr_in6));
    assert_memory_equal(&a.u.in6.sin6_addr, &in6addr_loopback, sizeof in6addr_loopback);
    assert_int_equal(a.u.in6.sin6_scope_id, 0);
    assert_int_equal(sockit_addr_port(&a), 80);
    assert_formats_as(&a, "[::1]:80");

    assert_ok(sockit_addr_parse(&a, "[0:0:0:0:0:ffff:1.2.3.4]:8080"));
    assert_formats_as(&a, "[::ffff:1.2.3.4]:8080");
}

static void test_scope_by_name_round_trips(void **state)
{
    (void)state;
    unsigned lo = if_nametoindex("lo");
    assert_true(lo > 0);
    sockit_addr a;
    assert_ok(sockit_addr_parse(&a, "[fe80::1%lo]:80"));
    assert_int_equal(a.u.in6.sin6_scope_id, lo);
    assert_formats_as(&a, "[fe80::1%lo]:80");

    char text[64];
    snprintf(text, sizeof text, "[fe80::1%%%u]:80", lo);
    sockit_addr b;
    assert_ok(sockit_addr_parse(&b, text));
    assert_true(sockit_addr_equal(&a, &b));
    assert_formats_as(&b, "[fe80::1%lo]:80");
}

static void test_scope_naming_no_interface_is_bad_addr(void **state)
{
    (void)state;
    assert_parse_fails("[fe80::1%nosuchif0]:80", SOCKIT_EBADADDR);
    assert_parse_fails("[fe80::1%]:80", SOCKIT_EBADADDR);
    assert_parse_fails("[fe80::1%99999999999]:80", SOCKIT_EBADADDR);
}

static void test_parse_unix_path(void **state)
{
    (void)state;
    sockit_addr a;
    assert_ok(sockit_addr_parse(&a, "unix:/run/x.sock"));
    assert_int_equal(sockit_addr_family(&a), AF_UNIX);
    assert_string_equal(a.u.un.sun_path, "/run/x.sock");
    assert_int_equal(a.len, SUN_PATH_OFFSET + strlen("/run/x.sock") + 1);
    assert_int_equal(sockit_addr_port(&a), -1);
    assert_formats_as(&a, "unix:/run/x.sock");
}

static void test_abstract_name_has_leading_nul_and_no_padding(void **state)
{
    (void)state;
    sockit_addr a;
    assert_ok(sockit_addr_parse(&a, "unix:@abc"));
    assert_int_equal(a.u.un.sun_path[0], '\0');
    assert_memory_equal(a.u.un.sun_path + 1, "abc", 3);
    assert_int_equal(a.len, SUN_PATH_OFFSET + 1 + 3);
    assert_formats_as(&a, "unix:@abc");
}

/* The kernel reports an abstract name with exactly the length it was bound with, so
 * a padded length would make getsockname's answer differ from the parsed address. */
static void test_abstract_name_round_trips_through_the_kernel(void **state)
{
    (void)state;
    char text[64];
    snprintf(text, sizeof text, "unix:@sockit-test-addr-%ld", (long)getpid());
    sockit_addr a, got;
    assert_ok(sockit_addr_parse(&a, text));
    sockit *s = sockit_socket(AF_UNIX, SOCK_STREAM);
    assert_sock(s);
    assert_ok(sockit_bind_addr(s, &a));
    assert_ok(sockit_getsockname(s, &got));
    assert_int_equal(got.len, a.len);
    assert_true(sockit_addr_equal(&a, &got));
    assert_formats_as(&got, text);
    assert_ok(sockit_close(s));
}

static void test_unix_path_equals_kernel_name(void **state)
{
    (void)state;
    char dir[] = "/tmp/sockit-addr-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/s", dir);
    sockit_addr a, got;
    assert_ok(sockit_addr_unix(&a, path));
    sockit *s = sockit_socket(AF_UNIX, SOCK_STREAM);
    assert_sock(s);
    assert_ok(sockit_bind_addr(s, &a));
    assert_ok(sockit_getsockname(s, &got));
    assert_true(sockit_addr_equal(&a, &got));
    /* The same path without the NUL counted is still the same address. */
    got.len = (socklen_t)(SUN_PATH_OFFSET + strlen(path));
    assert_true(sockit_addr_equal(&a, &got));
    assert_ok(sockit_close(s));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_parse_rejects_missing_port(void **state)
{
    (void)state;
    assert_parse_fails("127.0.0.1", SOCKIT_EBADPORT);
    assert_parse_fails("127.0.0.1:", SOCKIT_EBADPORT);
    assert_parse_fails("[::1]", SOCKIT_EBADPORT);
    assert_parse_fails("[::1]:", SOCKIT_EBADPORT);
    assert_parse_fails("", SOCKIT_EBADPORT);
}

static void test_parse_rejects_bad_ports(void **state)
{
    (void)state;
    assert_parse_fails("127.0.0.1:65536", SOCKIT_EBADPORT);
    assert_parse_fails("127.0.0.1:-1", SOCKIT_EBADPORT);
    assert_parse_fails("127.0.0.1:80x", SOCKIT_EBADPORT);
    assert_parse_fails("127.0.0.1:+80", SOCKIT_EBADPORT);
    assert_parse_fails("127.0.0.1: 80", SOCKIT_EBADPORT);
    assert_parse_fails("127.0.0.1:http", SOCKIT_EBADPORT);
    assert_parse_fails("127.0.0.1:99999999999999999999999", SOCKIT_EBADPORT);
    assert_parse_fails("[::1]:65536", SOCKIT_EBADPORT);
}

static void test_parse_rejects_unbracketed_ipv6(void **state)
{
    (void)state;
    assert_parse_fails("::1:80", SOCKIT_EBADADDR);
    assert_non_null(strstr(sockit_errmsg(), "brackets"));
    assert_parse_fails("fe80::1%lo:80", SOCKIT_EBADADDR);
}

static void test_parse_rejects_unbalanced_brackets(void **state)
{
    (void)state;
    assert_parse_fails("[::1", SOCKIT_EBADADDR);
    assert_parse_fails("[::1:80", SOCKIT_EBADADDR);
    assert_parse_fails("::1]:80", SOCKIT_EBADADDR);
    assert_parse_fails("[[::1]]:80", SOCKIT_EBADADDR);
    assert_parse_fails("[::1]]:80", SOCKIT_EBADADDR);
    assert_parse_fails("[::1]:80]", SOCKIT_EBADADDR);
    assert_parse_fails("[::1]x:80", SOCKIT_EBADADDR);
}

static void test_parse_rejects_host_junk(void **state)
{
    (void)state;
    assert_parse_fails("1.2.3.4.5:80", SOCKIT_EBADADDR);
    assert_parse_fails("256.1.1.1:80", SOCKIT_EBADADDR);
    assert_parse_fails("1.2.3:80", SOCKIT_EBADADDR);
    assert_parse_fails("01.2.3.4:80", SOCKIT_EBADADDR);
    assert_parse_fails(" 1.2.3.4:80", SOCKIT_EBADADDR);
    assert_parse_fails("localhost:80", SOCKIT_EBADADDR); /* no name resolution */
    assert_parse_fails(":80", SOCKIT_EBADADDR);
    assert_parse_fails("[]:80", SOCKIT_EBADADDR);
    assert_parse_fails("[1.2.3.4]:80", SOCKIT_EBADADDR);
    assert_parse_fails("[::g]:80", SOCKIT_EBADADDR);
    assert_parse_fails(repeat("[", ':', 300), SOCKIT_EBADADDR);
}

static void test_unix_path_length_limit(void **state)
{
    (void)state;
    size_t max = sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1;
    sockit_addr a;
    assert_ok(sockit_addr_parse(&a, repeat("unix:/", 'a', max - 1)));
    assert_int_equal(a.len, SUN_PATH_OFFSET + max + 1);
    assert_parse_fails(repeat("unix:/", 'a', max), SOCKIT_EPATHLEN);
    assert_ok(sockit_addr_parse(&a, repeat("unix:@", 'a', max)));
    assert_int_equal(a.len, sizeof(struct sockaddr_un));
    assert_parse_fails(repeat("unix:@", 'a', max + 1), SOCKIT_EPATHLEN);
    assert_code(sockit_addr_unix(&a, repeat("/", 'b', max)), SOCKIT_EPATHLEN);
}

static void test_empty_unix_path_is_bad_addr(void **state)
{
    (void)state;
    assert_parse_fails("unix:", SOCKIT_EBADADDR);
    assert_parse_fails("unix:@", SOCKIT_EBADADDR);
    sockit_addr a;
    assert_code(sockit_addr_unix(&a, ""), SOCKIT_EBADADDR);
    assert_code(sockit_addr_unix(&a, NULL), SOCKIT_EBADADDR);
    assert_code(sockit_addr_parse(&a, NULL), SOCKIT_EBADADDR);
}

static void test_addr_ip_builds_numeric_hosts(void **state)
{
    (void)state;
    sockit_addr a;
    assert_ok(sockit_addr_ip(&a, "127.0.0.1", 8080));
    assert_formats_as(&a, "127.0.0.1:8080");
    assert_ok(sockit_addr_ip(&a, "::1", 0));
    assert_formats_as(&a, "[::1]:0");
    assert_ok(sockit_addr_ip(&a, "fe80::2%lo", 65535));
    assert_int_equal(a.u.in6.sin6_scope_id, if_nametoindex("lo"));
    assert_formats_as(&a, "[fe80::2%lo]:65535");
}

static void test_addr_ip_rejects_bad_input(void **state)
{
    (void)state;
    sockit_addr a;
    assert_code(sockit_addr_ip(&a, "127.0.0.1", 65536), SOCKIT_EBADPORT);
    assert_non_null(strstr(sockit_errmsg(), "65536"));
    assert_code(sockit_addr_ip(&a, "127.0.0.1", -1), SOCKIT_EBADPORT);
    assert_code(sockit_addr_ip(&a, "localhost", 80), SOCKIT_EBADADDR);
    assert_non_null(strstr(sockit_errmsg(), "localhost"));
    assert_code(sockit_addr_ip(&a, "[::1]", 80), SOCKIT_EBADADDR);
    assert_code(sockit_addr_ip(&a, "", 80), SOCKIT_EBADADDR);
    assert_code(sockit_addr_ip(&a, NULL, 80), SOCKIT_EBADADDR);
}

static void test_format_into_small_buffer_is_enospc(void **state)
{
    (void)state;
    sockit_addr a;
    assert_ok(sockit_addr_parse(&a, "127.0.0.1:80"));
    char buf[16];
    memset(buf, 'x', sizeof buf);
    assert_code(sockit_addr_format(&a, buf, 12), -ENOSPC);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[12], 'x');
    assert_non_null(strstr(sockit_errmsg(), "127.0.0.1:80"));
    assert_code(sockit_addr_format(&a, buf, 0), -ENOSPC);
    assert_code(sockit_addr_format(&a, NULL, 0), -ENOSPC);
    assert_code(sockit_addr_format(&a, buf, 13), 12);
    assert_string_equal(buf, "127.0.0.1:80");
}

static void test_format_rejects_empty_and_unknown(void **state)
{
    (void)state;
    sockit_addr a;
    memset(&a, 0, sizeof a);
    char buf[SOCKIT_ADDRSTRLEN];
    assert_code(sockit_addr_format(&a, buf, sizeof buf), SOCKIT_EBADADDR);
    assert_code(sockit_addr_format(NULL, buf, sizeof buf), SOCKIT_EBADADDR);
    a.len = sizeof a.u.sa;
    a.u.sa.sa_family = AF_APPLETALK;
    assert_code(sockit_addr_format(&a, buf, sizeof buf), SOCKIT_EBADADDR);
    a.u.sa.sa_family = AF_INET6;
    a.len = sizeof(struct sockaddr_in);
    assert_code(sockit_addr_format(&a, buf, sizeof buf), SOCKIT_EBADADDR);
}

static void test_format_kernel_unix_forms(void **state)
{
    (void)state;
    sockit_addr a;
    memset(&a, 0, sizeof a);
    a.u.un.sun_family = AF_UNIX;
    a.len = sizeof(sa_family_t); /* unnamed: a socketpair end or unbound client */
    assert_formats_as(&a, "unix:");
    /* A path filling sun_path has no NUL; the length alone bounds it. */
    size_t max = sizeof a.u.un.sun_path;
    memset(a.u.un.sun_path, 'p', max);
    a.len = (socklen_t)(SUN_PATH_OFFSET + max);
    char text[SOCKIT_ADDRSTRLEN];
    assert_code(sockit_addr_format(&a, text, sizeof text), (int)(5 + max));
    /* Autobound and foreign abstract names may hold NULs; they print as '@'. */
    memset(&a.u.un.sun_path, 0, max);
    memcpy(a.u.un.sun_path + 1, "a\0b", 3);
    a.len = (socklen_t)(SUN_PATH_OFFSET + 4);
    assert_formats_as(&a, "unix:@a@b");
}

static void test_longest_forms_fit_addrstrlen(void **state)
{
    (void)state;
    sockit_addr a;
    char buf[SOCKIT_ADDRSTRLEN];
    assert_ok(
        sockit_addr_parse(&a, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535"));
    assert_ok(sockit_addr_format(&a, buf, sizeof buf));
    assert_ok(sockit_addr_parse(&a, repeat("unix:@", 'z', 107)));
    assert_ok(sockit_addr_format(&a, buf, sizeof buf));
}

static void test_family_port_and_set_port(void **state)
{
    (void)state;
    sockit_addr a;
    memset(&a, 0, sizeof a);
    assert_int_equal(sockit_addr_family(&a), AF_UNSPEC);
    assert_int_equal(sockit_addr_family(NULL), AF_UNSPEC);
    assert_int_equal(sockit_addr_port(&a), -1);
    assert_code(sockit_addr_set_port(&a, 80), -EAFNOSUPPORT);

    assert_ok(sockit_addr_parse(&a, "[::1]:1"));
    assert_ok(sockit_addr_set_port(&a, 65535));
    assert_int_equal(sockit_addr_port(&a), 65535);
    assert_code(sockit_addr_set_port(&a, 65536), SOCKIT_EBADPORT);
    assert_code(sockit_addr_set_port(&a, -1), SOCKIT_EBADPORT);
    assert_int_equal(sockit_addr_port(&a), 65535);

    assert_ok(sockit_addr_parse(&a, "10.0.0.1:1"));
    assert_ok(sockit_addr_set_port(&a, 0));
    assert_formats_as(&a, "10.0.0.1:0");

    assert_ok(sockit_addr_parse(&a, "unix:/x"));
    assert_int_equal(sockit_addr_port(&a), -1);
    assert_code(sockit_addr_set_port(&a, 80), -EAFNOSUPPORT);
}

static bool parsed_equal(const char *x, const char *y)
{
    sockit_addr a, b;
    assert_ok(sockit_addr_parse(&a, x));
    assert_ok(sockit_addr_parse(&b, y));
    bool eq = sockit_addr_equal(&a, &b);
    assert_int_equal(eq, sockit_addr_equal(&b, &a));
    return eq;
}

static void test_equal_compares_family_host_port_scope_path(void **state)
{
    (void)state;
    assert_true(parsed_equal("127.0.0.1:80", "127.0.0.1:80"));
    assert_true(parsed_equal("[::1]:80", "[0:0::1]:80"));
    assert_true(parsed_equal("unix:/a", "unix:/a"));
    assert_true(parsed_equal("unix:@a", "unix:@a"));
    assert_false(parsed_equal("127.0.0.1:80", "127.0.0.1:81"));
    assert_false(parsed_equal("127.0.0.1:80", "127.0.0.2:80"));
    assert_false(parsed_equal("127.0.0.1:80", "[::ffff:127.0.0.1]:80"));
    assert_false(parsed_equal("[fe80::1%lo]:80", "[fe80::1]:80"));
    assert_false(parsed_equal("unix:/a", "unix:/ab"));
    assert_false(parsed_equal("unix:a", "unix:@a"));

    sockit_addr a, b;
    assert_ok(sockit_addr_parse(&a, "[::1]:80"));
    b = a;
    b.u.in6.sin6_flowinfo = htonl(7); /* per-packet, not part of the address */
    assert_true(sockit_addr_equal(&a, &b));

    assert_ok(sockit_addr_parse(&a, "unix:@ab"));
    b = a;
    b.len++; /* "ab\0" is another abstract name */
    assert_false(sockit_addr_equal(&a, &b));

    sockit_addr empty;
    memset(&empty, 0, sizeof empty);
    assert_true(sockit_addr_equal(&empty, NULL));
    assert_false(sockit_addr_equal(&empty, &a));
}

static void test_parse_port_numbers_and_services(void **state)
{
    (void)state;
    assert_int_equal(sockit_parse_port("0"), 0);
    assert_int_equal(sockit_parse_port("80"), 80);
    assert_int_equal(sockit_parse_port("0080"), 80);
    assert_int_equal(sockit_parse_port("65535"), 65535);
    /* getservbyname is not thread-safe, but this test runs alone. */
    if (getservbyname("http", "tcp") == NULL || getservbyname("bootps", "udp") == NULL ||
        getservbyname("bootps", "tcp") != NULL)
        skip(); /* /etc/services is missing or unusual */
    assert_int_equal(sockit_parse_port("http"), 80);
    assert_int_equal(sockit_parse_port("www"), 80); /* an alias */
    /* bootps is udp only: tcp is tried first, then udp. */
    assert_int_equal(sockit_parse_port("bootps"), 67);
}

static void test_parse_port_rejects_junk(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "65536", "-1", "", "80x", "+80", " 80", "80 ", "abc", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_code(sockit_parse_port(bad[i]), SOCKIT_EBADPORT);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "port '%s'", bad[i]);
        if (strstr(sockit_errmsg(), quoted) == NULL)
            fail_msg("message \"%s\" does not name %s", sockit_errmsg(), quoted);
    }
    assert_code(sockit_parse_port(NULL), SOCKIT_EBADPORT);
    assert_code(sockit_parse_port("abc"), SOCKIT_EBADPORT);
    assert_string_equal(sockit_errmsg(), "port 'abc': not a number or a known service: Bad port");
    assert_code(sockit_parse_port("65536"), SOCKIT_EBADPORT);
    assert_string_equal(sockit_errmsg(), "port '65536': out of range 0-65535: Bad port");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_parse_ipv4_gives_host_and_port),
        harness_test(test_parse_bracketed_ipv6),
        harness_test(test_scope_by_name_round_trips),
        harness_test(test_scope_naming_no_interface_is_bad_addr),
        harness_test(test_parse_unix_path),
        harness_test(test_abstract_name_has_leading_nul_and_no_padding),
        harness_test(test_abstract_name_round_trips_through_the_kernel),
        harness_test(test_unix_path_equals_kernel_name),
        harness_test(test_parse_rejects_missing_port),
        harness_test(test_parse_rejects_bad_ports),
        harness_test(test_parse_rejects_unbracketed_ipv6),
        harness_test(test_parse_rejects_unbalanced_brackets),
        harness_test(test_parse_rejects_host_junk),
        harness_test(test_unix_path_length_limit),
        harness_test(test_empty_unix_path_is_bad_addr),
        harness_test(test_addr_ip_builds_numeric_hosts),
        harness_test(test_addr_ip_rejects_bad_input),
        harness_test(test_format_into_small_buffer_is_enospc),
        harness_test(test_format_rejects_empty_and_unknown),
        harness_test(test_format_kernel_unix_forms),
        harness_test(test_longest_forms_fit_addrstrlen),
        harness_test(test_family_port_and_set_port),
        harness_test(test_equal_compares_family_host_port_scope_path),
        harness_test(test_parse_port_numbers_and_services),
        harness_test(test_parse_port_rejects_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
