/* Runs the address fuzz target's invariant (fuzz/fuzz_addr.c) on hand-written tricky
 * inputs, so the round trip is checked in every test run, not only when fuzzing. */
#include "harness.h"

#include "../fuzz/fuzz_addr.c"

static void check_all(const char *const *inputs, size_t count, bool expect_parse)
{
    for (size_t i = 0; i < count; i++) {
        const char *why = sockit_fuzz_addr_check(inputs[i]);
        if (why != NULL)
            fail_msg("input \"%s\": %s", inputs[i], why);
        sockit_addr a;
        bool parsed = sockit_addr_parse(&a, inputs[i]) == 0;
        if (parsed != expect_parse)
            fail_msg("input \"%s\" %s", inputs[i], parsed ? "parsed" : "did not parse");
    }
}

static void test_valid_addresses_round_trip(void **state)
{
    (void)state;
    static const char *const valid[] = {
        "127.0.0.1:80",
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "1.2.3.4:0000080",
        "[::1]:80",
        "[::]:0",
        "[0:0:0:0:0:0:0:1]:1",
        "[::ffff:127.0.0.1]:8080",
        "[0:0:0:0:0:ffff:7f00:1]:8080",
        "[64:ff9b::1.2.3.4]:53",
        "[FE80::ABCD]:443",
        "[fe80::1%lo]:80",
        "[fe80::1%1]:80",
        "[fe80::1%0]:80",
        "[fe80::1%4294967295]:80",
        "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535",
        "unix:/run/x.sock",
        "unix:relative/path",
        "unix:/with space/and:colon]and[brackets",
        "unix:/%s%n%%",
        "unix:@abstract",
        "unix:@@",
        "unix:@a:1",
        "unix:unix:/nested",
    };
    check_all(valid, sizeof valid / sizeof valid[0], true);
}

/* "unix:" and a path of n bytes. */
static const char *unix_text(char *buf, size_t size, char kind, size_t n)
{
    assert_true(6 + n < size);
    memcpy(buf, "unix:", 5);
    memset(buf + 5, 'a', n + 1);
    buf[5] = kind;
    buf[6 + n] = '\0';
    return buf;
}

/* sun_path holds 107 bytes and a NUL; an abstract name 107 bytes after its NUL. */
static void test_unix_length_boundaries(void **state)
{
    (void)state;
    char a[160], b[160];
    const char *fits[] = {unix_text(a, sizeof a, '/', 106), unix_text(b, sizeof b, '@', 107)};
    check_all(fits, 2, true);
    const char *too_long[] = {unix_text(a, sizeof a, '/', 107), unix_text(b, sizeof b, '@', 108)};
    check_all(too_long, 2, false);
}

static void test_invalid_addresses_fail_cleanly(void **state)
{
    (void)state;
    static const char *const invalid[] = {
        "",
        ":",
        "::",
        ":80",
        "[",
        "]",
        "[]",
        "[]:80",
        "[:]:80",
        "[::1",
        "[::1]",
        "[::1]:",
        "[::1]:65536",
        "[::1]:-0",
        "[::1]]:80",
        "[[::1]:80",
        "[::1]:80:80",
        "[::1%]:80",
        "[::1%%lo]:80",
        "[::1%lo%lo]:80",
        "[fe80::1%nosuchinterface0]:80",
        "[fe80::1%4294967296]:80",
        "[127.0.0.1]:80",
        "::1:80",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:+1",
        "127.0.0.1: 1",
        "127.0.0.1:1 ",
        "127.0.0.1:0x50",
        "127.0.0.1:80:80",
        "127.0.0.1%lo:80",
        "1.2.3.4.5:80",
        "1.2.3:80",
        "01.2.3.4:80",
        "256.0.0.1:80",
        "localhost:80",
        "unix:",
        "UNIX:/x",
        "unix",
        "unix:@",
        "%s%n:80",
    };
    check_all(invalid, sizeof invalid / sizeof invalid[0], false);
}

/* The raw entry point stops at a NUL byte and ignores over-long inputs. */
static void test_fuzz_entry_point_handles_raw_bytes(void **state)
{
    (void)state;
    static const uint8_t with_nul[] = {'1', '.', '2', '.', '3', '.', '4', ':', '8', 0, 'x'};
    assert_int_equal(LLVMFuzzerTestOneInput(with_nul, sizeof with_nul), 0);
    static uint8_t big[FUZZ_ADDR_MAX_INPUT + 1];
    memset(big, ':', sizeof big);
    assert_int_equal(LLVMFuzzerTestOneInput(big, sizeof big), 0);
    assert_int_equal(LLVMFuzzerTestOneInput(big, sizeof big - 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_valid_addresses_round_trip),
        harness_test(test_invalid_addresses_fail_cleanly),
        harness_test(test_unix_length_boundaries),
        harness_test(test_fuzz_entry_point_handles_raw_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
