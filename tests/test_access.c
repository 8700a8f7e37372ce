/* The address rules of `sockit listen` (cli/netcat/access.c): every rule form is
 * read, every bad rule says why, a prefix matches exactly its range, deny wins over
 * allow, and an IPv4-mapped peer is judged by the IPv4 rules. */
#include "harness.h"

#include "../cli/netcat/access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char why[512];

static void assert_reason(const char *part)
{
    if (strstr(why, part) == NULL)
        fail_msg("reason [%s] does not contain [%s]", why, part);
}

/* The rule text parses and prints back as want. */
static void assert_rule(const char *text, const char *want)
{
    access_rule r;
    char buf[ACCESS_RULE_TEXT_MAX];
    why[0] = '\0';
    if (access_rule_parse(text, &r, why, sizeof why) != 0)
        fail_msg("'%s' refused: %s", text, why);
    assert_string_equal(access_rule_text(&r, buf, sizeof buf), want);
}

static void assert_bad_rule(const char *text, const char *part)
{
    access_rule r;
    why[0] = '\0';
    assert_int_equal(access_rule_parse(text, &r, why, sizeof why), -1);
    assert_reason(part);
}

static access_ip ip(const char *text)
{
    sockit_addr a;
    access_ip out;
    assert_ok(sockit_addr_ip(&a, text, 1234));
    assert_true(access_ip_of(&a, &out));
    return out;
}

static bool matches(const char *rule, const char *addr)
{
    access_rule r;
    assert_int_equal(access_rule_parse(rule, &r, why, sizeof why), 0);
    access_ip i = ip(addr);
    return access_rule_match(&r, &i);
}

static int check(const access_list *l, const char *addr)
{
    sockit_addr a;
    assert_ok(sockit_addr_ip(&a, addr, 5555));
    return access_check(l, &a, NULL);
}

static void test_rules_read_back_in_canonical_form(void **state)
{
    (void)state;
    assert_rule("127.0.0.1", "127.0.0.1/32");
    assert_rule("10.0.0.0/8", "10.0.0.0/8");
    assert_rule("0.0.0.0/0", "0.0.0.0/0");
    assert_rule("::1", "::1/128");
    assert_rule("[::1]", "::1/128");
    assert_rule("[2001:db8::]/32", "2001:db8::/32");
    assert_rule("::/0", "::/0");
    /* Host bits past the prefix are cleared, not refused. */
    assert_rule("10.1.2.3/8", "10.0.0.0/8");
    assert_rule("192.168.77.1/20", "192.168.64.0/20");
    assert_rule("2001:db8::1/64", "2001:db8::/64");
    /* An IPv4-mapped rule is the IPv4 range it names. */
    assert_rule("::ffff:127.0.0.1", "127.0.0.1/32");
    assert_rule("::ffff:10.0.0.0/104", "10.0.0.0/8");
    assert_rule("::ffff:0:0/96", "0.0.0.0/0");
    /* Below /96 it is an IPv6 range like any other. */
    assert_rule("::ffff:0:0/95", "::fffe:0:0/95");
}

static void test_bad_rules_say_why(void **state)
{
    (void)state;
    assert_bad_rule("10.0.0.0/33",
                    "'10.0.0.0/33': prefix length /33 is out of range 0-32 for IPv4");
    assert_bad_rule("::1/129", "prefix length /129 is out of range 0-128 for IPv6");
    assert_bad_rule("::1/99999999999999999999", "out of range 0-128");
    assert_bad_rule("abc", "'abc': not an IPv4 or IPv6 address (host names are not looked up");
    assert_bad_rule("localhost", "host names are not looked up");
    assert_bad_rule("10.1", "not an IPv4 or IPv6 address");
    assert_bad_rule("256.0.0.1", "not an IPv4 or IPv6 address");
    assert_bad_rule("1.2.3.4/x", "prefix length 'x' is not a number 0-32");
    assert_bad_rule("1.2.3.4/-1", "is not a number");
    assert_bad_rule("1.2.3.4/", "no prefix length after '/'");
    assert_bad_rule("1.2.3.4/8/8", "is not a number");
    assert_bad_rule("fe80::1%lo", "a scope id");
    assert_bad_rule("", "empty rule");
    assert_bad_rule(" 1.2.3.4", "not an IPv4 or IPv6 address");
    char longtext[200];
    memset(longtext, '1', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    assert_bad_rule(longtext, "longer than any address/prefix");
    /* The reason is cut to the buffer, never past it. */
    access_rule r;
    char tiny[6];
    assert_int_equal(access_rule_parse("abc", &r, tiny, sizeof tiny), -1);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void test_prefix_matches_exactly_its_range(void **state)
{
    (void)state;
    assert_true(matches("127.0.0.0/8", "127.0.0.2"));
    assert_true(matches("127.0.0.0/8", "127.255.255.255"));
    assert_false(matches("127.0.0.0/8", "128.0.0.0"));
    assert_true(matches("127.0.0.1/32", "127.0.0.1"));
    assert_false(matches("127.0.0.1/32", "127.0.0.2"));
    assert_true(matches("192.168.64.0/20", "192.168.79.255"));
    assert_false(matches("192.168.64.0/20", "192.168.80.0"));
    assert_false(matches("192.168.64.0/20", "192.168.63.255"));
    assert_true(matches("0.0.0.0/0", "203.0.113.9"));
    assert_true(matches("::1", "::1"));
    assert_false(matches("::1", "::2"));
    assert_true(matches("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(matches("2001:db8::/33", "2001:db8:8000::1"));
    /* Families never cross: ::/0 is every IPv6 address and no IPv4 one. */
    assert_true(matches("::/0", "2001:db8::1"));
    assert_false(matches("::/0", "127.0.0.1"));
    assert_false(matches("0.0.0.0/0", "::1"));
}

static void test_mapped_peers_are_judged_as_ipv4(void **state)
{
    (void)state;
    assert_true(matches("127.0.0.1", "::ffff:127.0.0.1"));
    assert_true(matches("127.0.0.0/8", "::ffff:127.0.0.2"));
    assert_false(matches("127.0.0.1", "::ffff:127.0.0.2"));
    assert_false(matches("::/0", "::ffff:127.0.0.1"));
    access_ip i = ip("::ffff:10.1.2.3");
    assert_int_equal(i.family, AF_INET);
    assert_memory_equal(i.b, "\x0a\x01\x02\x03", 4);
    /* A Unix address has no IP to judge. */
    sockit_addr u;
    access_ip out;
    assert_ok(sockit_addr_unix(&u, "/tmp/x.sock"));
    assert_false(access_ip_of(&u, &out));
}

static void test_deny_wins_and_allow_narrows(void **state)
{
    (void)state;
    access_list l = {0};
    assert_false(access_any(&l));
    assert_int_equal(check(&l, "127.0.0.2"), ACCESS_OK);
    /* Deny alone: everyone else comes in. */
    assert_int_equal(access_add(&l, false, "127.0.0.2", why, sizeof why), 0);
    assert_true(access_any(&l));
    assert_int_equal(check(&l, "127.0.0.2"), ACCESS_DENIED);
    assert_int_equal(check(&l, "127.0.0.1"), ACCESS_OK);
    assert_int_equal(check(&l, "::1"), ACCESS_OK);
    /* An allow rule narrows to itself; a deny inside it still wins. */
    assert_int_equal(access_add(&l, true, "127.0.0.0/8", why, sizeof why), 0);
    assert_int_equal(check(&l, "127.0.0.1"), ACCESS_OK);
    assert_int_equal(check(&l, "127.0.0.2"), ACCESS_DENIED);
    assert_int_equal(check(&l, "::ffff:127.0.0.2"), ACCESS_DENIED);
    assert_int_equal(check(&l, "::1"), ACCESS_NOT_ALLOWED);
    assert_int_equal(check(&l, "10.0.0.1"), ACCESS_NOT_ALLOWED);
    /* The deny rule that matched is told. */
    sockit_addr a;
    const access_rule *rule = NULL;
    char text[ACCESS_RULE_TEXT_MAX];
    assert_ok(sockit_addr_ip(&a, "127.0.0.2", 1));
    assert_int_equal(access_check(&l, &a, &rule), ACCESS_DENIED);
    assert_non_null(rule);
    assert_string_equal(access_rule_text(rule, text, sizeof text), "127.0.0.2/32");
    assert_ok(sockit_addr_ip(&a, "::1", 1));
    assert_int_equal(access_check(&l, &a, &rule), ACCESS_NOT_ALLOWED);
    assert_null(rule);
    /* Rules are about IP addresses: a Unix peer passes. */
    assert_ok(sockit_addr_unix(&a, "/tmp/x.sock"));
    assert_int_equal(access_check(&l, &a, NULL), ACCESS_OK);
    access_free(&l);
    assert_false(access_any(&l));
}

static void test_lists_take_commas_and_blanks(void **state)
{
    (void)state;
    access_list l = {0};
    assert_int_equal(access_add(&l, true, "127.0.0.1, ::1 ,10.0.0.0/8", why, sizeof why), 0);
    assert_int_equal(l.nallow, 3);
    assert_int_equal(check(&l, "10.9.9.9"), ACCESS_OK);
    assert_int_equal(check(&l, "::1"), ACCESS_OK);
    assert_int_equal(access_add(&l, true, "1.2.3.4,,5.6.7.8", why, sizeof why), -1);
    assert_reason("empty rule");
    assert_int_equal(access_add(&l, true, "1.2.3.4,", why, sizeof why), -1);
    assert_reason("empty rule");
    /* The rules before the bad one were added; nothing after. */
    assert_int_equal(access_add(&l, false, "9.9.9.9,nope,8.8.8.8", why, sizeof why), -1);
    assert_reason("'nope'");
    assert_int_equal(l.ndeny, 1);
    access_free(&l);
}

static void test_lists_are_bounded(void **state)
{
    (void)state;
    access_list l = {0};
    char rule[32];
    for (int i = 0; i < ACCESS_RULES_MAX; i++) {
        snprintf(rule, sizeof rule, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert_int_equal(access_add(&l, false, rule, why, sizeof why), 0);
    }
    assert_int_equal(access_add(&l, false, "11.0.0.1", why, sizeof why), -1);
    assert_reason("more than 10000 deny rules");
    assert_int_equal(l.ndeny, ACCESS_RULES_MAX);
    assert_int_equal(check(&l, "10.0.39.15"), ACCESS_DENIED); /* rule 9999 */
    /* The allow list has its own room. */
    assert_int_equal(access_add(&l, true, "11.0.0.1", why, sizeof why), 0);
    access_free(&l);
}

/* Writes text to a fresh temporary file; its path goes in path[64]. */
static void temp_file(char *path, const char *text)
{
    snprintf(path, 64, "/tmp/test_access.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_files_hold_lists_and_comments(void **state)
{
    (void)state;
    char path[64];
    access_list l = {0};
    temp_file(path, "# the lab\n127.0.0.1  ::1\t10.0.0.0/8 # routers\n\n  \n192.168.0.0/16,\r\n");
    assert_int_equal(access_add_file(&l, true, path, why, sizeof why), 0);
    assert_int_equal(l.nallow, 4);
    assert_int_equal(check(&l, "192.168.1.1"), ACCESS_OK);
    assert_int_equal(check(&l, "172.16.0.1"), ACCESS_NOT_ALLOWED);
    unlink(path);
    temp_file(path, "127.0.0.1\n\n10.0.0.0/33\n");
    assert_int_equal(access_add_file(&l, false, path, why, sizeof why), -2);
    assert_reason("line 3: '10.0.0.0/33': prefix length /33 is out of range");
    unlink(path);
    char *big = malloc(2000);
    assert_non_null(big);
    memset(big, ' ', 1999);
    big[1999] = '\0';
    big[0] = '1';
    temp_file(path, big);
    free(big);
    assert_int_equal(access_add_file(&l, false, path, why, sizeof why), -2);
    assert_reason("line 1: longer than 1024 bytes");
    unlink(path);
    assert_int_equal(access_add_file(&l, true, "/nonexistent/rules", why, sizeof why), -1);
    assert_reason("No such file or directory");
    access_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_read_back_in_canonical_form),
        cmocka_unit_test(test_bad_rules_say_why),
        cmocka_unit_test(test_prefix_matches_exactly_its_range),
        cmocka_unit_test(test_mapped_peers_are_judged_as_ipv4),
        cmocka_unit_test(test_deny_wins_and_allow_narrows),
        cmocka_unit_test(test_lists_take_commas_and_blanks),
        cmocka_unit_test(test_lists_are_bounded),
        harness_test(test_files_hold_lists_and_comments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
