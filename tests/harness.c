#include "harness.h"
#include "sys.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void harness_assert_ok(long long value, const char *expr, const char *file, int line)
{
    if (value < 0) {
        print_error("%s:%d: %s failed: %lld %s: %s\n", file, line, expr, value,
                    sockit_errname((int)value), sockit_errmsg());
        _fail(file, line);
    }
}

void harness_assert_code(long long value, int code, const char *expr, const char *file, int line)
{
    if (value != code) {
        print_error("%s:%d: %s returned %lld (%s), expected %d (%s); last message: %s\n", file,
                    line, expr, value, value < 0 ? sockit_errname((int)value) : "not an error",
                    code, sockit_errname(code), sockit_errmsg());
        _fail(file, line);
    }
}

void harness_assert_sock(int ok, const char *expr, const char *file, int line)
{
    if (!ok) {
        print_error("%s:%d: %s is NULL: %s (%s)\n", file, line, expr,
                    sockit_errname(sockit_errcode()), sockit_errmsg());
        _fail(file, line);
    }
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The opendir descriptor itself is not counted: it is closed before counting ends
 * but listed while open, so subtract it. */
int harness_count_fds(void) { return count_dir("/proc/self/fd") - 1; }

int harness_count_threads(void) { return count_dir("/proc/self/task"); }

static int fds_at_setup;

int harness_fd_setup(void **state)
{
    (void)state;
    fds_at_setup = harness_count_fds();
    return 0;
}

int harness_fd_teardown(void **state)
{
    (void)state;
    int now = harness_count_fds();
    if (now != fds_at_setup) {
        print_error("descriptor leak: %d open before the test, %d after\n", fds_at_setup, now);
        return -1;
    }
    return 0;
}

double harness_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

sockit *harness_tcp_listener(int family, int *port)
{
    sockit *l = sockit_socket(family, SOCK_STREAM);
    assert_sock(l);
    assert_ok(sockit_bind(l, family == AF_INET6 ? "::1" : "127.0.0.1", 0));
    assert_ok(sockit_listen(l, 16));
    sockit_addr a;
    assert_ok(sockit_getsockname(l, &a));
    *port = sockit_addr_port(&a);
    return l;
}

size_t harness_fill_until_full(sockit *s, int flags)
{
    static uint8_t chunk[65536];
    size_t total = 0;
    int refused = 0;
    for (int i = 0; i < 100000 && total < (64u << 20); i++) {
        ssize_t n = sockit_send(s, chunk, sizeof chunk, flags);
        if (n > 0) {
            total += (size_t)n;
            refused = 0;
            continue;
        }
        assert_int_equal(n, SOCKIT_EWOULDBLOCK);
        if (++refused == 10)
            return total;
        struct timespec ms2 = {0, 2000000};
        nanosleep(&ms2, NULL);
    }
    fail_msg("the socket took %zu bytes and never filled", total);
    return total;
}

ssize_t harness_upper_line(sockit *s, size_t size)
{
    char line[1024];
    if (size > sizeof line)
        size = sizeof line;
    ssize_t n = sockit_readline(s, line, size);
    if (n <= 0)
        return n;
    for (ssize_t i = 0; i < n; i++)
        if (line[i] >= 'a' && line[i] <= 'z')
            line[i] = (char)(line[i] - 'a' + 'A');
    return sockit_sendall(s, line, (size_t)n, 0, NULL);
}

void harness_tcp_pair(int family, sockit **client, sockit **server)
{
    int port;
    sockit *l = harness_tcp_listener(family, &port);
    sockit *c = sockit_socket(family, SOCK_STREAM);
    assert_sock(c);
    assert_ok(sockit_connect(c, family == AF_INET6 ? "::1" : "127.0.0.1", port));
    sockit *s = sockit_accept(l, NULL);
    assert_sock(s);
    sockit_close(l);
    *client = c;
    *server = s;
}

void harness_signal_no_restart(int sig, void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(sig, &sa, NULL);
}

struct signal_after {
    pthread_t target;
    int sig;
    double seconds;
};

static void *signal_after_main(void *arg)
{
    struct signal_after *sa = arg;
    struct timespec ts = {(time_t)sa->seconds,
                          (long)((sa->seconds - (double)(time_t)sa->seconds) * 1e9)};
    nanosleep(&ts, NULL);
    pthread_kill(sa->target, sa->sig);
    free(sa);
    return NULL;
}

void harness_signal_after(int sig, double seconds)
{
    struct signal_after *sa = malloc(sizeof *sa);
    assert_non_null(sa);
    sa->target = pthread_self();
    sa->sig = sig;
    sa->seconds = seconds;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, signal_after_main, sa), 0);
    pthread_detach(t);
}

static struct {
    unsigned ops;
    int err;
    int count;
    size_t shorten;
    int hits;
} plan;

static int plan_hook(sockit__sysop op, size_t *len)
{
    if (!(plan.ops & HARNESS_OP(op)) || plan.count == 0)
        return 0;
    plan.count--;
    plan.hits++;
    if (plan.err == 0 && *len > plan.shorten)
        *len = plan.shorten;
    return plan.err;
}

void harness_inject(unsigned ops, int err, int count, size_t shorten)
{
    plan.ops = ops;
    plan.err = err;
    plan.count = count;
    plan.shorten = shorten;
    plan.hits = 0;
    sockit__set_fault_hook(plan_hook);
}

int harness_injected(void) { return plan.hits; }

int harness_fault_teardown(void **state)
{
    sockit__set_fault_hook(NULL);
    plan.count = 0;
    return harness_fd_teardown(state);
}
