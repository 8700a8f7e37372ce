/* Shared test helpers: assertions that print sockit's own error text, and a
 * fixture that fails a test which leaks file descriptors. */
#ifndef SOCKIT_TEST_HARNESS_H
#define SOCKIT_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sockit.h"

/* Asserts expr >= 0; on failure prints the code's name and sockit_errmsg(). */
#define assert_ok(expr) harness_assert_ok((long long)(expr), #expr, __FILE__, __LINE__)
/* Asserts expr == code (a sockit code), printing both names on failure. */
#define assert_code(expr, code)                                                                    \
    harness_assert_code((long long)(expr), (code), #expr, __FILE__, __LINE__)
/* Asserts ptr != NULL; on failure prints sockit_errmsg(). */
#define assert_sock(ptr) harness_assert_sock((ptr) != NULL, #ptr, __FILE__, __LINE__)

void harness_assert_ok(long long value, const char *expr, const char *file, int line);
void harness_assert_code(long long value, int code, const char *expr, const char *file, int line);
void harness_assert_sock(int ok, const char *expr, const char *file, int line);

/* Number of open descriptors of this process. */
int harness_count_fds(void);
/* Number of threads of this process. */
int harness_count_threads(void);

/* cmocka setup/teardown pair: teardown fails the test if it left descriptors open.
 * Use with cmocka_unit_test_setup_teardown(t, harness_fd_setup, harness_fd_teardown). */
int harness_fd_setup(void **state);
int harness_fd_teardown(void **state);
#define harness_test(t) cmocka_unit_test_setup_teardown(t, harness_fd_setup, harness_fd_teardown)

/* Seconds on CLOCK_MONOTONIC. */
double harness_now(void);

/* A listening TCP socket on 127.0.0.1 (or ::1 when family is AF_INET6) on a free
 * port; the port is stored in *port. */
sockit *harness_tcp_listener(int family, int *port);
/* A connected TCP pair over loopback of that family: *client connected, *server
 * the accepted end. */
void harness_tcp_pair(int family, sockit **client, sockit **server);

/* Sends on s (non-blocking, or with flags MSG_DONTWAIT) until the kernel takes no
 * more, and returns the bytes it took. One EAGAIN may be injected (the fault runs,
 * one send in five) or meet bytes still in flight on loopback, which their
 * acknowledgements free at once; poll cannot tell, as it reports a socket writable
 * only once a good part of its buffer is free. Full is ten refusals in a row, 2 ms
 * apart. */
size_t harness_fill_until_full(sockit *s, int flags);

/* A blocking server's handler body: reads one line of at most size - 1 bytes from
 * s and sends it back upper-cased. Returns readline's result when it is 0 or less
 * (the peer's end, a failure), else sendall's. */
ssize_t harness_upper_line(sockit *s, size_t size);

/* Installs handler for sig without SA_RESTART, so blocking syscalls see EINTR. */
void harness_signal_no_restart(int sig, void (*handler)(int));
/* Sends sig to this thread after the given seconds (a one-shot timer thread). */
void harness_signal_after(int sig, double seconds);

/* Fault injection through src/sys.h's hook: the next `count` operations whose kind is
 * in `ops` (a mask of HARNESS_OP(SOCKIT__SYS_...)) fail with err, or, with err 0,
 * go through shortened to `shorten` bytes. harness_fault_test(t) clears the plan
 * when the test ends. */
#define HARNESS_OP(op) (1u << (op))
void harness_inject(unsigned ops, int err, int count, size_t shorten);
/* Operations the plan has hit since harness_inject. */
int harness_injected(void);
int harness_fault_teardown(void **state);
#define harness_fault_test(t)                                                                      \
    cmocka_unit_test_setup_teardown(t, harness_fd_setup, harness_fault_teardown)

#endif
