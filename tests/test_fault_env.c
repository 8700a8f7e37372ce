/* The faults SOCKIT_FAULTS describes (src/fault_env.c), as the test builds load
 * them. CTest runs this with SOCKIT_FAULTS="short=100,rmax=1,seed=7": every stream
 * send takes less than it was given, every stream receive reads one byte, and
 * datagrams still travel whole. Run without the variable (or in a build without
 * SOCKIT_FAULT_INJECTION) it says so and fails: it would prove nothing. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_stream_sends_are_short_and_receives_take_one_byte(void **state)
{
    (void)state;
    sockit *p[2];
    harness_tcp_pair(AF_INET, &p[0], &p[1]);
    char out[100], in[100];
    memset(out, 'x', sizeof out);
    ssize_t n = sockit_send(p[0], out, sizeof out, 0);
    assert_true(n >= 1 && n < (ssize_t)sizeof out);
    /* sendall finishes what the short sends leave, and recv_exact what the one-byte
     * reads leave: the promise the fault runs of the suites rest on. */
    assert_int_equal(sockit_sendall(p[0], out + n, sizeof out - (size_t)n, 0, NULL),
                     (ssize_t)sizeof out - n);
    assert_int_equal(sockit_recv(p[1], in, sizeof in, 0), 1);
    assert_int_equal(sockit_recv_exact(p[1], in + 1, sizeof in - 1, 0), (ssize_t)sizeof in - 1);
    assert_memory_equal(in, out, sizeof out);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_datagrams_are_never_cut(void **state)
{
    (void)state;
    sockit *r = sockit_socket(AF_INET, SOCK_DGRAM);
    sockit *s = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(r);
    assert_sock(s);
    assert_ok(sockit_bind(r, "127.0.0.1", 0));
    sockit_addr a;
    assert_ok(sockit_getsockname(r, &a));
    assert_ok(sockit_connect_addr(s, &a));
    char out[100], in[200];
    memset(out, 'd', sizeof out);
    assert_int_equal(sockit_send(s, out, sizeof out, 0), (ssize_t)sizeof out);
    assert_int_equal(sockit_recv(r, in, sizeof in, 0), (ssize_t)sizeof out);
    assert_int_equal(sockit_sendto_addr(s, out, 60, 0, &a), 60);
    assert_int_equal(sockit_recvfrom(r, in, sizeof in, 0, NULL), 60);
    assert_memory_equal(in, out, 60);
    sockit_close(r);
    sockit_close(s);
}

int main(void)
{
    const char *spec = getenv("SOCKIT_FAULTS");
    if (spec == NULL || strstr(spec, "short=100") == NULL || strstr(spec, "rmax=1") == NULL) {
        fprintf(stderr, "test_fault_env: run with SOCKIT_FAULTS=short=100,rmax=1 (CTest does)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        harness_test(test_stream_sends_are_short_and_receives_take_one_byte),
        harness_test(test_datagrams_are_never_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
