/* The CLI's one host-and-port rule (cli/hostport.c): every form the tool prints is
 * read back, every ambiguity has one answer, and every bad input has a reason that
 * names it. */
#include "harness.h"

#include "../cli/hostport.h"

#include <string.h>

static hostport hp;
static char why[256];

#define L HOSTPORT_LISTENER

static int operands(unsigned flags, const char *a, const char *b)
{
    char *args[2] = {(char *)a, (char *)b};
    why[0] = '\0';
    return hostport_operands(b != NULL ? 2 : 1, args, flags, &hp, why, sizeof why);
}

static void assert_target(const char *host, int port, bool is_unix)
{
    assert_string_equal(hp.host, host);
    assert_int_equal(hp.port, port);
    assert_int_equal(hp.is_unix, is_unix);
}

static void assert_reason(const char *part)
{
    if (strstr(why, part) == NULL)
        fail_msg("reason [%s] does not contain [%s]", why, part);
}

static void test_bracketed_ipv6_with_and_without_port(void **state)
{
    (void)state;
    assert_int_equal(operands(0, "[::1]:80", NULL), 0);
    assert_target("::1", 80, false);
    assert_int_equal(operands(0, "[::1]", "80"), 0);
    assert_target("::1", 80, false);
    assert_int_equal(operands(L, "[::1]", "0"), 0);
    assert_target("::1", 0, false);
    assert_int_equal(operands(L, "[fe80::1%lo]:9000", NULL), 0);
    assert_target("fe80::1%lo", 9000, false);
}

static void test_bare_ipv6_is_a_host_never_a_port(void **state)
{
    (void)state;
    assert_int_equal(operands(0, "::1", "443"), 0);
    assert_target("::1", 443, false);
    /* "::1" alone has no port: the last group is not taken for one. */
    assert_int_equal(operands(0, "::1", NULL), -1);
    assert_reason("missing PORT after HOST '::1'");
    assert_int_equal(operands(L, "2001:db8::1:80", NULL), -1);
    assert_reason("missing PORT");
}

static void test_one_colon_splits_host_and_port(void **state)
{
    (void)state;
    assert_int_equal(operands(0, "localhost:12345", NULL), 0);
    assert_target("localhost", 12345, false);
    assert_int_equal(operands(0, "127.0.0.1:http", NULL), 0);
    assert_target("127.0.0.1", 80, false);
    assert_int_equal(operands(0, ":80", NULL), -1);
    assert_reason("no host before ':'");
    assert_int_equal(operands(0, "localhost:", NULL), -1);
    assert_reason("port ''");
}

static void test_unix_comes_first_and_takes_no_port(void **state)
{
    (void)state;
    assert_int_equal(operands(0, "unix:/p", NULL), 0);
    assert_target("unix:/p", -1, true);
    assert_int_equal(operands(L, "unix:@name:with:colons", NULL), 0);
    assert_target("unix:@name:with:colons", -1, true);
    assert_int_equal(operands(0, "unix:/p", "80"), -1);
    assert_reason("a unix: host takes no PORT (got '80')");
    assert_int_equal(operands(0, "unix:", NULL), -1);
    assert_reason("no path after unix:");
    assert_int_equal(operands(0, "unix:@", NULL), -1);
    assert_reason("no name after unix:@");
    char path[200] = "unix:/";
    memset(path + 6, 'a', 107); /* 108 bytes of path: one too many */
    assert_int_equal(operands(0, path, NULL), -1);
    assert_reason("a Unix socket path of 108 bytes, at most 107");
    path[6 + 106] = '\0'; /* 107: fits */
    assert_int_equal(operands(0, path, NULL), 0);
}

static void test_lone_number_is_the_port_of_a_listener(void **state)
{
    (void)state;
    assert_int_equal(operands(L, "8080", NULL), 0);
    assert_target("", 8080, false);
    assert_int_equal(operands(L, "0", NULL), 0);
    assert_target("", 0, false);
    /* Not for a client, and not when a second operand says the port. */
    assert_int_equal(operands(0, "8080", NULL), -1);
    assert_reason("missing PORT after HOST '8080'");
    assert_int_equal(operands(L, "localhost", NULL), -1);
    assert_reason("missing PORT after HOST 'localhost'");
}

static void test_port_given_twice_is_refused(void **state)
{
    (void)state;
    assert_int_equal(operands(0, "[::1]:80", "81"), -1);
    assert_reason("port given twice");
    assert_int_equal(operands(L, "localhost:80", "80"), -1);
    assert_reason("port given twice");
    why[0] = '\0';
    assert_int_equal(hostport_options("[::1]:80", "81", 0, &hp, why, sizeof why), -1);
    assert_reason("port given twice");
    assert_int_equal(hostport_options("[::1]:80", NULL, 0, &hp, why, sizeof why), 0);
    assert_target("::1", 80, false);
    assert_int_equal(hostport_options(NULL, "81", 0, &hp, why, sizeof why), 0);
    assert_target("", 81, false);
    /* --host never takes rule 5: a number there is a (strange) host name. */
    assert_int_equal(hostport_options("8080", NULL, L, &hp, why, sizeof why), 0);
    assert_target("8080", -1, false);
}

static void test_bad_ports_say_why(void **state)
{
    (void)state;
    assert_int_equal(operands(0, "127.0.0.1", "-1"), -1);
    assert_reason("port '-1': out of range 1-65535");
    assert_int_equal(operands(L, "127.0.0.1", "-1"), -1);
    assert_reason("port '-1': out of range 0-65535");
    assert_int_equal(operands(0, "127.0.0.1", "70000"), -1);
    assert_reason("port '70000': out of range 1-65535");
    assert_int_equal(operands(0, "127.0.0.1", "0"), -1);
    assert_reason("port '0': must be 1-65535");
    assert_int_equal(operands(0, "[::1]:x", NULL), -1);
    assert_reason("port 'x'");
    assert_int_equal(operands(0, "[::1", "80"), -1);
    assert_reason("'[' without ']'");
    assert_int_equal(operands(0, "[::1]x", NULL), -1);
    assert_reason("want [ADDRESS] or [ADDRESS]:PORT");
    assert_int_equal(operands(0, "[]:80", NULL), -1);
    assert_reason("no address between");
}

static void test_operand_counts(void **state)
{
    (void)state;
    char *args[3] = {"a", "1", "extra"};
    assert_int_equal(hostport_operands(0, args, L, &hp, why, sizeof why), -1);
    assert_string_equal(why, "missing PORT");
    assert_int_equal(hostport_operands(0, args, 0, &hp, why, sizeof why), -1);
    assert_string_equal(why, "missing HOST and PORT");
    assert_int_equal(hostport_operands(3, args, 0, &hp, why, sizeof why), -1);
    assert_string_equal(why, "unexpected argument 'extra'");
}

static void test_output_is_bounded(void **state)
{
    (void)state;
    static char longhost[HOSTPORT_HOST_MAX + 10];
    memset(longhost, 'h', sizeof longhost - 1);
    assert_int_equal(operands(0, longhost, "80"), -1);
    assert_reason("longer than 1024 bytes");
    char tiny[8];
    assert_int_equal(hostport_operands(0, NULL, 0, &hp, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bracketed_ipv6_with_and_without_port),
        cmocka_unit_test(test_bare_ipv6_is_a_host_never_a_port),
        cmocka_unit_test(test_one_colon_splits_host_and_port),
        cmocka_unit_test(test_unix_comes_first_and_takes_no_port),
        cmocka_unit_test(test_lone_number_is_the_port_of_a_listener),
        cmocka_unit_test(test_port_given_twice_is_refused),
        cmocka_unit_test(test_bad_ports_say_why),
        cmocka_unit_test(test_operand_counts),
        cmocka_unit_test(test_output_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
