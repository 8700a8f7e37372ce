/* Name resolution: sockit_getaddrinfo, the resolver test hook, and the internal
 * per-socket resolution, host:port text and port checks. */
#include "harness.h"
#include "internal.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_ADDRS 16

static bool is_eai_code(ssize_t code) { return code <= SOCKIT_EAI_AGAIN && code >= -5199; }

static void assert_eai(ssize_t code)
{
    if (!is_eai_code(code))
        fail_msg("expected a resolver (EAI) code, got %zd %s: %s", code, sockit_errname((int)code),
                 sockit_errmsg());
}

static void assert_message_starts(const char *prefix)
{
    if (strncmp(sockit_errmsg(), prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", sockit_errmsg(), prefix);
}

static void assert_addr_text(const sockit_addr *a, const char *expect)
{
    char text[SOCKIT_ADDRSTRLEN];
    assert_ok(sockit_addr_format(a, text, sizeof text));
    assert_string_equal(text, expect);
}

/* ---- a scripted resolver -------------------------------------------------------- */

static struct {
    int calls, frees;
    int result; /* EAI_* to fail with, 0 to succeed */
    int err;    /* errno set with EAI_SYSTEM */
    char node[64], service[16];
    bool node_null;
    struct addrinfo hints;
    struct addrinfo list[4];
    struct sockaddr_in sin[4];
    size_t count;
} script;

static int scripted_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                                struct addrinfo **res)
{
    script.calls++;
    script.node_null = node == NULL;
    snprintf(script.node, sizeof script.node, "%s", node ? node : "");
    snprintf(script.service, sizeof script.service, "%s", service ? service : "");
    script.hints = *hints;
    if (script.result != 0) {
        errno = script.err;
        return script.result;
    }
    *res = &script.list[0];
    return 0;
}

static void scripted_free(struct addrinfo *res)
{
    assert_ptr_equal(res, &script.list[0]);
    script.frees++;
}

/* Scripts count IPv4 answers 192.0.2.1 .. 192.0.2.count, port 4242. */
static void script_answers(size_t count)
{
    memset(&script, 0, sizeof script);
    script.count = count;
    for (size_t i = 0; i < count; i++) {
        script.sin[i].sin_family = AF_INET;
        script.sin[i].sin_port = htons(4242);
        script.sin[i].sin_addr.s_addr = htonl(0xc0000201u + (uint32_t)i);
        script.list[i].ai_family = AF_INET;
        script.list[i].ai_socktype = SOCK_STREAM;
        script.list[i].ai_protocol = IPPROTO_TCP;
        script.list[i].ai_addr = (struct sockaddr *)&script.sin[i];
        script.list[i].ai_addrlen = sizeof script.sin[i];
        script.list[i].ai_next = i + 1 < count ? &script.list[i + 1] : NULL;
    }
    sockit__set_getaddrinfo_pair(scripted_getaddrinfo, scripted_free);
}

static int restore_resolver(void **state)
{
    sockit__set_getaddrinfo(NULL);
    return harness_fd_teardown(state);
}

#define hooked_test(t) cmocka_unit_test_setup_teardown(t, harness_fd_setup, restore_resolver)

/* ---- sockit_getaddrinfo with the system resolver --------------------------------- */

static void test_getaddrinfo_localhost_is_127_0_0_1(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    ssize_t n = sockit_getaddrinfo("localhost", "80", AF_INET, SOCK_STREAM, 0, ai, MAX_ADDRS);
    assert_ok(n);
    assert_int_equal(ai[0].family, AF_INET);
    assert_int_equal(ai[0].type, SOCK_STREAM);
    assert_int_equal(ai[0].protocol, IPPROTO_TCP);
    assert_addr_text(&ai[0].addr, "127.0.0.1:80");
}

static void test_getaddrinfo_unspec_gives_only_stream_and_dgram(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    ssize_t n = sockit_getaddrinfo("localhost", NULL, AF_UNSPEC, 0, 0, ai, MAX_ADDRS);
    assert_ok(n);
    bool saw_loopback = false;
    for (ssize_t i = 0; i < n; i++) {
        assert_true(ai[i].type == SOCK_STREAM || ai[i].type == SOCK_DGRAM);
        assert_true(ai[i].family == AF_INET || ai[i].family == AF_INET6);
        assert_int_equal(sockit_addr_family(&ai[i].addr), ai[i].family);
        assert_int_equal(sockit_addr_port(&ai[i].addr), 0);
        char text[SOCKIT_ADDRSTRLEN];
        assert_ok(sockit_addr_format(&ai[i].addr, text, sizeof text));
        saw_loopback |= strcmp(text, "127.0.0.1:0") == 0;
    }
    assert_true(saw_loopback);
}

static void test_getaddrinfo_ipv6_literal_is_af_inet6(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    ssize_t n = sockit_getaddrinfo("::1", "443", AF_UNSPEC, SOCK_DGRAM, 0, ai, MAX_ADDRS);
    assert_int_equal(n, 1);
    assert_int_equal(ai[0].family, AF_INET6);
    assert_int_equal(ai[0].protocol, IPPROTO_UDP);
    assert_addr_text(&ai[0].addr, "[::1]:443");
}

static void test_getaddrinfo_null_host_is_wildcard_or_loopback(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    assert_int_equal(sockit_getaddrinfo(NULL, "7", AF_INET, SOCK_STREAM, AI_PASSIVE, ai, 1), 1);
    assert_addr_text(&ai[0].addr, "0.0.0.0:7");
    assert_int_equal(sockit_getaddrinfo(NULL, "7", AF_INET6, SOCK_STREAM, 0, ai, 1), 1);
    assert_addr_text(&ai[0].addr, "[::1]:7");
}

static void test_getaddrinfo_service_name(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    if (getservbyname("http", "tcp") == NULL)
        skip();
    assert_ok(sockit_getaddrinfo("127.0.0.1", "http", AF_INET, SOCK_STREAM, 0, ai, MAX_ADDRS));
    assert_int_equal(sockit_addr_port(&ai[0].addr), 80);
    assert_eai(sockit_getaddrinfo("127.0.0.1", "nosuchservice", AF_INET, SOCK_STREAM, 0, ai, 1));
}

static void test_getaddrinfo_unknown_host_is_resolver_error(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    assert_eai(sockit_getaddrinfo("nosuch.invalid", "80", AF_UNSPEC, SOCK_STREAM, 0, ai, 1));
    assert_message_starts("getaddrinfo nosuch.invalid:80: ");
}

static void test_getaddrinfo_malformed_literals_are_noname(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    assert_code(sockit_getaddrinfo("1.2.3.4.5", "80", AF_UNSPEC, 0, AI_NUMERICHOST, ai, 1),
                SOCKIT_EAI_NONAME);
    assert_message_starts("getaddrinfo 1.2.3.4.5:80: ");
    assert_code(sockit_getaddrinfo("[::1", "80", AF_UNSPEC, 0, AI_NUMERICHOST, ai, 1),
                SOCKIT_EAI_NONAME);
}

static void test_getaddrinfo_family_mismatch_is_resolver_error(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    assert_eai(sockit_getaddrinfo("127.0.0.1", "80", AF_INET6, SOCK_STREAM, 0, ai, 1));
    assert_eai(sockit_getaddrinfo("::1", "80", AF_INET, SOCK_STREAM, 0, ai, 1));
    assert_message_starts("getaddrinfo [::1]:80: ");
}

static void test_getaddrinfo_rejects_ports_it_would_misread(void **state)
{
    (void)state;
    sockit_addrinfo ai[MAX_ADDRS];
    /* The system resolver wraps 65536 to 0 and reads " 80", "+80" and "" as numbers. */
    static const char *const bad[] = {"65536", "-1", " 80", "+80", "", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_code(sockit_getaddrinfo("127.0.0.1", bad[i], AF_INET, 0, 0, ai, 1), SOCKIT_EBADPORT);
        char quoted[32];
        snprintf(quoted, sizeof quoted, "port '%s'", bad[i]);
        assert_non_null(strstr(sockit_errmsg(), quoted));
    }
    assert_int_equal(sockit_getaddrinfo("127.0.0.1", "65535", AF_INET, SOCK_STREAM, 0, ai, 1), 1);
    assert_int_equal(sockit_addr_port(&ai[0].addr), 65535);
}

static void test_getaddrinfo_max_smaller_than_results_truncates(void **state)
{
    (void)state;
    sockit_addrinfo ai[3];
    memset(ai, 0x7f, sizeof ai);
    sockit_addrinfo untouched = ai[1];
    /* type 0 gives one entry per socket type, so at least two. */
    assert_int_equal(sockit_getaddrinfo("127.0.0.1", "1", AF_INET, 0, 0, ai, 1), 1);
    assert_addr_text(&ai[0].addr, "127.0.0.1:1");
    assert_memory_equal(&ai[1], &untouched, sizeof untouched);
    assert_code(sockit_getaddrinfo("127.0.0.1", "1", AF_INET, 0, 0, ai, 0), -EINVAL);
    assert_code(sockit_getaddrinfo("127.0.0.1", "1", AF_INET, 0, 0, NULL, 4), -EINVAL);
}

/* ---- the hook ------------------------------------------------------------------- */

static void test_hook_injects_scripted_answers_in_order(void **state)
{
    (void)state;
    script_answers(3);
    sockit_addrinfo ai[MAX_ADDRS];
    assert_int_equal(
        sockit_getaddrinfo("example.test", "4242", AF_INET, SOCK_STREAM, 0, ai, MAX_ADDRS), 3);
    assert_int_equal(script.calls, 1);
    assert_int_equal(script.frees, 1);
    assert_string_equal(script.node, "example.test");
    assert_string_equal(script.service, "4242");
    assert_true(script.hints.ai_flags & AI_NUMERICSERV);
    assert_int_equal(script.hints.ai_family, AF_INET);
    assert_int_equal(script.hints.ai_socktype, SOCK_STREAM);
    assert_addr_text(&ai[0].addr, "192.0.2.1:4242");
    assert_addr_text(&ai[1].addr, "192.0.2.2:4242");
    assert_addr_text(&ai[2].addr, "192.0.2.3:4242");

    assert_int_equal(sockit_getaddrinfo("example.test", "4242", 0, 0, 0, ai, 2), 2);
    assert_addr_text(&ai[1].addr, "192.0.2.2:4242");
    assert_int_equal(script.frees, 2);

    sockit__set_getaddrinfo(NULL);
    assert_int_equal(sockit_getaddrinfo("localhost", "1", AF_INET, SOCK_STREAM, 0, ai, 1), 1);
    assert_addr_text(&ai[0].addr, "127.0.0.1:1");
    assert_int_equal(script.calls, 2); /* the system answered the third */
}

static void test_hook_error_is_mapped_with_message(void **state)
{
    (void)state;
    script_answers(1);
    script.result = EAI_NONAME;
    sockit_addrinfo ai[MAX_ADDRS];
    assert_code(sockit_getaddrinfo("nosuch.invalid", "80", 0, 0, 0, ai, 1), SOCKIT_EAI_NONAME);
    char expect[128];
    snprintf(expect, sizeof expect, "getaddrinfo nosuch.invalid:80: %s",
             sockit_strerror(SOCKIT_EAI_NONAME));
    assert_string_equal(sockit_errmsg(), expect);

    script.result = EAI_SYSTEM;
    script.err = EMFILE;
    assert_code(sockit_getaddrinfo("host", "80", 0, 0, 0, ai, 1), -EMFILE);
    assert_int_equal(script.frees, 0); /* nothing to free after a failure */
}

static void test_hook_answers_without_ip_entries_are_enoaddr(void **state)
{
    (void)state;
    script_answers(2);
    script.list[0].ai_family = AF_UNIX;
    script.list[1].ai_socktype = SOCK_RAW;
    sockit_addrinfo ai[MAX_ADDRS];
    assert_code(sockit_getaddrinfo("odd.test", "1", 0, 0, 0, ai, MAX_ADDRS), SOCKIT_ENOADDR);
    assert_message_starts("getaddrinfo odd.test:1: ");
    assert_int_equal(script.frees, 1);
}

static void test_hook_cyclic_list_is_bounded(void **state)
{
    (void)state;
    script_answers(1);
    script.list[0].ai_socktype = SOCK_RAW; /* skipped, so only the bound stops it */
    script.list[0].ai_next = &script.list[0];
    sockit_addrinfo ai[MAX_ADDRS];
    assert_code(sockit_getaddrinfo("loop.test", "1", 0, 0, 0, ai, MAX_ADDRS), SOCKIT_ENOADDR);
}

/* ---- sockit__resolve_for -------------------------------------------------------- */

static void test_resolve_for_unix_takes_host_as_path(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_UNIX, SOCK_DGRAM);
    assert_sock(s);
    sockit_addrinfo ai[2];
    assert_int_equal(sockit__resolve_for(s, "bind", "/tmp/x.sock", 0, true, SOCKIT__NEVER, ai, 2),
                     1);
    assert_int_equal(ai[0].family, AF_UNIX);
    assert_int_equal(ai[0].type, SOCK_DGRAM);
    assert_addr_text(&ai[0].addr, "unix:/tmp/x.sock");
    assert_int_equal(sockit__resolve_for(s, "connect", "unix:@abs", 0, false, SOCKIT__NEVER, ai, 2),
                     1);
    assert_addr_text(&ai[0].addr, "unix:@abs");

    assert_code(sockit__resolve_for(s, "bind", "/tmp/x.sock", 80, true, SOCKIT__NEVER, ai, 2),
                SOCKIT_EBADPORT);
    assert_message_starts("bind to unix:/tmp/x.sock: ");
    assert_code(sockit__resolve_for(s, "bind", "", 0, true, SOCKIT__NEVER, ai, 2), SOCKIT_EBADADDR);
    /* NULL is the Unix wildcard for bind (autobind); a client still needs a path. */
    assert_int_equal(sockit__resolve_for(s, "bind", NULL, 0, true, SOCKIT__NEVER, ai, 2), 1);
    assert_int_equal(ai[0].addr.len, sizeof(sa_family_t));
    assert_code(sockit__resolve_for(s, "connect", NULL, 0, false, SOCKIT__NEVER, ai, 2),
                SOCKIT_EBADADDR);
    assert_code(sockit__resolve_for(s, "sendto", "unix:", 0, false, SOCKIT__NEVER, ai, 2),
                SOCKIT_EBADADDR);
    assert_message_starts("sendto unix:: ");
    char path[200];
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    assert_code(sockit__resolve_for(s, "bind", path, 0, true, SOCKIT__NEVER, ai, 2),
                SOCKIT_EPATHLEN);
    assert_ok(sockit_close(s));
}

static void test_resolve_for_checks_port_range(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(s);
    sockit_addrinfo ai[MAX_ADDRS];
    assert_code(
        sockit__resolve_for(s, "bind", "127.0.0.1", 65536, true, SOCKIT__NEVER, ai, MAX_ADDRS),
        SOCKIT_EBADPORT);
    assert_message_starts("bind: port 65536 out of range 0-65535: ");
    assert_code(sockit__resolve_for(s, "bind", "127.0.0.1", -1, true, SOCKIT__NEVER, ai, MAX_ADDRS),
                SOCKIT_EBADPORT);
    assert_code(
        sockit__resolve_for(s, "connect", "127.0.0.1", 0, false, SOCKIT__NEVER, ai, MAX_ADDRS),
        SOCKIT_EBADPORT);
    assert_message_starts("connect: port 0 out of range 1-65535: ");
    assert_int_equal(
        sockit__resolve_for(s, "bind", "127.0.0.1", 0, true, SOCKIT__NEVER, ai, MAX_ADDRS), 1);
    assert_addr_text(&ai[0].addr, "127.0.0.1:0");
    assert_ok(sockit_close(s));
}

static void test_resolve_for_empty_host_is_wildcard_or_loopback(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_INET6, SOCK_STREAM);
    assert_sock(s);
    sockit_addrinfo ai[MAX_ADDRS];
    assert_ok(sockit__resolve_for(s, "bind", NULL, 5, true, SOCKIT__NEVER, ai, MAX_ADDRS));
    assert_addr_text(&ai[0].addr, "[::]:5");
    assert_ok(sockit__resolve_for(s, "bind", "", 5, true, SOCKIT__NEVER, ai, MAX_ADDRS));
    assert_addr_text(&ai[0].addr, "[::]:5");
    assert_ok(sockit__resolve_for(s, "connect", NULL, 5, false, SOCKIT__NEVER, ai, MAX_ADDRS));
    assert_addr_text(&ai[0].addr, "[::1]:5");
    assert_ok(sockit_close(s));
}

static void test_resolve_for_asks_in_the_socket_family_and_type(void **state)
{
    (void)state;
    sockit *s = sockit_socket(AF_INET6, SOCK_DGRAM);
    assert_sock(s);
    script_answers(1);
    sockit_addrinfo ai[MAX_ADDRS];
    assert_int_equal(sockit__resolve_for(s, "bind", NULL, 8080, true, SOCKIT__NEVER, ai, MAX_ADDRS),
                     1);
    assert_true(script.node_null);
    assert_string_equal(script.service, "8080");
    assert_int_equal(script.hints.ai_family, AF_INET6);
    assert_int_equal(script.hints.ai_socktype, SOCK_DGRAM);
    assert_int_equal(script.hints.ai_flags, AI_NUMERICSERV | AI_PASSIVE);
    assert_int_equal(
        sockit__resolve_for(s, "connect", "h.test", 1, false, SOCKIT__NEVER, ai, MAX_ADDRS), 1);
    assert_string_equal(script.node, "h.test");
    /* A name is first tried as a numeric host (no DNS, no thread), so the scripted
     * resolver may see AI_NUMERICHOST too. */
    assert_int_equal(script.hints.ai_flags & ~AI_NUMERICHOST, AI_NUMERICSERV);
    assert_int_equal(script.frees, 2);
    assert_ok(sockit_close(s));
}

static void test_resolve_for_family_mismatch_names_the_address(void **state)
{
    (void)state;
    sockit *s6 = sockit_socket(AF_INET6, SOCK_STREAM);
    sockit *s4 = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(s6);
    assert_sock(s4);
    sockit_addrinfo ai[MAX_ADDRS];
    assert_eai(
        sockit__resolve_for(s6, "connect", "127.0.0.1", 80, false, SOCKIT__NEVER, ai, MAX_ADDRS));
    assert_message_starts("connect to 127.0.0.1:80: ");
    assert_eai(sockit__resolve_for(s4, "sendto", "::1", 80, false, SOCKIT__NEVER, ai, MAX_ADDRS));
    assert_message_starts("sendto [::1]:80: ");
    assert_ok(sockit_close(s6));
    assert_ok(sockit_close(s4));
}

/* ---- messages and ports ---------------------------------------------------------- */

static void test_hostport_text_forms(void **state)
{
    (void)state;
    char buf[SOCKIT_ADDRSTRLEN];
    sockit__hostport(buf, sizeof buf, "localhost", 80);
    assert_string_equal(buf, "localhost:80");
    sockit__hostport(buf, sizeof buf, "::1", 80);
    assert_string_equal(buf, "[::1]:80");
    sockit__hostport(buf, sizeof buf, "fe80::1%lo", 1);
    assert_string_equal(buf, "[fe80::1%lo]:1");
    sockit__hostport(buf, sizeof buf, "unix:/run/s", 0);
    assert_string_equal(buf, "unix:/run/s");
    sockit__hostport(buf, sizeof buf, "/run/s", 0);
    assert_string_equal(buf, "unix:/run/s");
    sockit__hostport(buf, sizeof buf, NULL, 8);
    assert_string_equal(buf, ":8");
    sockit__hostport(buf, 5, "localhost", 80);
    assert_string_equal(buf, "loca");
    buf[0] = 'x';
    sockit__hostport(buf, 0, "localhost", 80);
    assert_int_equal(buf[0], 'x');
}

static void test_check_port_bounds(void **state)
{
    (void)state;
    assert_int_equal(sockit__check_port("bind", 0, true), 0);
    assert_int_equal(sockit__check_port("bind", 65535, true), 0);
    assert_int_equal(sockit__check_port("connect", 1, false), 0);
    assert_code(sockit__check_port("connect", 0, false), SOCKIT_EBADPORT);
    assert_code(sockit__check_port("bind", 65536, true), SOCKIT_EBADPORT);
    char expect[128];
    snprintf(expect, sizeof expect, "bind: port 65536 out of range 0-65535: %s",
             sockit_strerror(SOCKIT_EBADPORT));
    assert_string_equal(sockit_errmsg(), expect);
    assert_code(sockit__check_port("bind", -1, true), SOCKIT_EBADPORT);
}

/* ---- threads ---------------------------------------------------------------------- */

#define RESOLVER_THREADS    4
#define RESOLVES_PER_THREAD 25

static void *resolve_many(void *arg)
{
    const char *bad = arg;
    for (int i = 0; i < RESOLVES_PER_THREAD; i++) {
        sockit_addrinfo ai[MAX_ADDRS];
        if (sockit_getaddrinfo("127.0.0.1", "9", AF_INET, SOCK_STREAM, 0, ai, MAX_ADDRS) != 1)
            return "good resolution failed";
        if (sockit_getaddrinfo(bad, "9", AF_INET, SOCK_STREAM, AI_NUMERICHOST, ai, 1) >= 0)
            return "bad resolution succeeded";
        /* The message is this thread's own, whatever the others did meanwhile. */
        if (strstr(sockit_errmsg(), bad) == NULL)
            return "message names another thread's host";
    }
    return NULL;
}

static void test_getaddrinfo_in_threads_keeps_messages_apart(void **state)
{
    (void)state;
    static char bad[RESOLVER_THREADS][8] = {"bad-a", "bad-b", "bad-c", "bad-d"};
    pthread_t t[RESOLVER_THREADS];
    for (int i = 0; i < RESOLVER_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, resolve_many, bad[i]), 0);
    for (int i = 0; i < RESOLVER_THREADS; i++) {
        void *why = NULL;
        assert_int_equal(pthread_join(t[i], &why), 0);
        if (why != NULL)
            fail_msg("thread %d: %s", i, (const char *)why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_getaddrinfo_localhost_is_127_0_0_1),
        harness_test(test_getaddrinfo_unspec_gives_only_stream_and_dgram),
        harness_test(test_getaddrinfo_ipv6_literal_is_af_inet6),
        harness_test(test_getaddrinfo_null_host_is_wildcard_or_loopback),
        harness_test(test_getaddrinfo_service_name),
        harness_test(test_getaddrinfo_unknown_host_is_resolver_error),
        harness_test(test_getaddrinfo_malformed_literals_are_noname),
        harness_test(test_getaddrinfo_family_mismatch_is_resolver_error),
        harness_test(test_getaddrinfo_rejects_ports_it_would_misread),
        harness_test(test_getaddrinfo_max_smaller_than_results_truncates),
        hooked_test(test_hook_injects_scripted_answers_in_order),
        hooked_test(test_hook_error_is_mapped_with_message),
        hooked_test(test_hook_answers_without_ip_entries_are_enoaddr),
        hooked_test(test_hook_cyclic_list_is_bounded),
        harness_test(test_resolve_for_unix_takes_host_as_path),
        harness_test(test_resolve_for_checks_port_range),
        harness_test(test_resolve_for_empty_host_is_wildcard_or_loopback),
        hooked_test(test_resolve_for_asks_in_the_socket_family_and_type),
        harness_test(test_resolve_for_family_mismatch_names_the_address),
        harness_test(test_hostport_text_forms),
        harness_test(test_check_port_bounds),
        harness_test(test_getaddrinfo_in_threads_keeps_messages_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
