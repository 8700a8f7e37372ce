/* sockit_selector, Python's selectors: keys, errors with their messages, timeouts,
 * readiness subsets, level triggering, results beyond max, read-ahead, EINTR,
 * hang-ups, reused descriptors, regular files, 10,000 registrations, and faults
 * injected through src/sys.h (EINTR and failures of the wait, ENOMEM). CTest runs
 * it once per backend (SOCKIT_LOOP_BACKEND=epoll, =poll); every test checks that the
 * selector really uses the backend named, so one that fell back is caught. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *wanted_backend(void)
{
    const char *name = getenv("SOCKIT_LOOP_BACKEND");
    return name != NULL && name[0] != '\0' ? name : "epoll";
}

static bool under_epoll(void) { return strcmp(wanted_backend(), "epoll") == 0; }

static sockit_selector *new_selector(void)
{
    sockit_selector *sel = sockit_selector_new(NULL);
    assert_sock(sel);
    assert_string_equal(sockit_selector_backend(sel), wanted_backend());
    return sel;
}

/* The last message names the operation and "fd N" (not a longer number). */
static void assert_message_names(const char *op, int fd)
{
    const char *msg = sockit_errmsg();
    if (strstr(msg, op) == NULL)
        fail_msg("message [%s] does not name %s", msg, op);
    char want[32];
    snprintf(want, sizeof want, "fd %d", fd);
    const char *at = strstr(msg, want);
    if (at == NULL || (at[strlen(want)] >= '0' && at[strlen(want)] <= '9'))
        fail_msg("message [%s] does not name %s", msg, want);
}

static void make_pipe(int p[2]) { assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0); }

static void make_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
}

static void close_two(int p[2])
{
    close(p[0]);
    close(p[1]);
}

static void put(int fd, const char *text)
{
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* The result for fd among out[0..n), or NULL. */
static const sockit_selector_event *result_for(const sockit_selector_event *out, ssize_t n, int fd)
{
    for (ssize_t i = 0; i < n; i++)
        if (out[i].key->fd == fd)
            return &out[i];
    return NULL;
}

static void test_selector_uses_the_backend_that_was_asked_for(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    assert_ok(sockit_selector_close(sel));
    sockit_loop_options opts = SOCKIT_LOOP_OPTIONS_INIT;
    opts.backend = under_epoll() ? "poll" : "epoll"; /* the option wins over the variable */
    sel = sockit_selector_new(&opts);
    assert_sock(sel);
    assert_string_equal(sockit_selector_backend(sel), opts.backend);
    assert_ok(sockit_selector_close(sel));
    assert_ok(sockit_selector_close(NULL));
}

static void test_register_modify_unregister_keep_keys_and_count(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    int a = 1, b = 2;
    assert_int_equal(sockit_selector_count(sel), 0);

    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, &a));
    assert_ok(
        sockit_selector_register_socket(sel, pair[0], SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE, &b));
    assert_int_equal(sockit_selector_count(sel), 2);
    const sockit_selector_key *k = sockit_selector_get_key(sel, p[0]);
    assert_non_null(k);
    assert_int_equal(k->fd, p[0]);
    assert_null(k->sock);
    assert_int_equal(k->events, SOCKIT_EVENT_READ);
    assert_ptr_equal(k->data, &a);
    const sockit_selector_key *ks = sockit_selector_get_key(sel, sockit_fileno(pair[0]));
    assert_non_null(ks);
    assert_ptr_equal(ks->sock, pair[0]);
    assert_int_equal(ks->fd, sockit_fileno(pair[0]));
    assert_int_equal(ks->events, SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE);

    /* modify changes events and data in place; the key stays the same object. */
    assert_ok(sockit_selector_modify(sel, p[0], SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE, &b));
    assert_ptr_equal(sockit_selector_get_key(sel, p[0]), k);
    assert_int_equal(k->events, SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE);
    assert_ptr_equal(k->data, &b);
    assert_ok(sockit_selector_modify(sel, p[0], SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE, NULL));
    assert_null(k->data);
    assert_ok(sockit_selector_modify(sel, p[0], SOCKIT_EVENT_READ, &a));
    assert_int_equal(k->events, SOCKIT_EVENT_READ);
    assert_int_equal(sockit_selector_count(sel), 2);

    assert_ok(sockit_selector_unregister(sel, p[0]));
    assert_int_equal(sockit_selector_count(sel), 1);
    assert_null(sockit_selector_get_key(sel, p[0]));
    assert_int_equal(sockit_errcode(), -ENOENT);
    /* Registered again after unregistering: a new key. */
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, &b));
    assert_ptr_equal(sockit_selector_get_key(sel, p[0])->data, &b);
    assert_int_equal(sockit_selector_count(sel), 2);

    /* Closing the selector with keys left leaves their descriptors open. */
    assert_ok(sockit_selector_close(sel));
    assert_int_not_equal(fcntl(p[0], F_GETFD), -1);
    assert_int_not_equal(fcntl(sockit_fileno(pair[0]), F_GETFD), -1);
    close_two(p);
    sockit_close(pair[0]);
    sockit_close(pair[1]);
}

static void test_register_twice_is_eexist_naming_the_fd(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    assert_code(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL), -EEXIST);
    assert_message_names("selector_register", p[0]);
    assert_int_equal(sockit_selector_count(sel), 1);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
}

static void test_unknown_fd_is_enoent_for_modify_unregister_and_get_key(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    assert_code(sockit_selector_modify(sel, p[0], SOCKIT_EVENT_READ, NULL), -ENOENT);
    assert_message_names("selector_modify", p[0]);
    assert_code(sockit_selector_unregister(sel, p[0]), -ENOENT);
    assert_message_names("selector_unregister", p[0]);
    assert_null(sockit_selector_get_key(sel, p[0]));
    assert_int_equal(sockit_errcode(), -ENOENT);
    assert_message_names("selector_get_key", p[0]);
    /* Beyond any slot the selector has, and negative. */
    assert_code(sockit_selector_unregister(sel, 100000), -ENOENT);
    assert_message_names("selector_unregister", 100000);
    assert_null(sockit_selector_get_key(sel, -1));
    assert_int_equal(sockit_errcode(), -ENOENT);
    /* Unregistered once: a second time is unknown. */
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    assert_ok(sockit_selector_unregister(sel, p[0]));
    assert_code(sockit_selector_unregister(sel, p[0]), -ENOENT);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
}

static void test_events_zero_or_unknown_bits_are_einval(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    assert_code(sockit_selector_register(sel, p[0], 0, NULL), -EINVAL);
    assert_message_names("selector_register", p[0]);
    assert_code(sockit_selector_register(sel, p[0], 4, NULL), -EINVAL);
    assert_message_names("selector_register", p[0]);
    assert_non_null(strstr(sockit_errmsg(), "events 0x4"));
    assert_int_equal(sockit_selector_count(sel), 0);
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    assert_code(sockit_selector_modify(sel, p[0], 0, NULL), -EINVAL);
    assert_message_names("selector_modify", p[0]);
    assert_code(sockit_selector_modify(sel, p[0], 4 | SOCKIT_EVENT_READ, NULL), -EINVAL);
    assert_message_names("selector_modify", p[0]);
    /* A failed modify changed nothing. */
    assert_int_equal(sockit_selector_get_key(sel, p[0])->events, SOCKIT_EVENT_READ);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
}

static void test_negative_fd_is_ebadf(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    assert_code(sockit_selector_register(sel, -1, SOCKIT_EVENT_READ, NULL), -EBADF);
    assert_message_names("selector_register", -1);
    assert_code(sockit_selector_register_socket(sel, NULL, SOCKIT_EVENT_READ, NULL), -EBADF);
    assert_non_null(strstr(sockit_errmsg(), "selector_register_socket"));
    /* A descriptor that is not open is the backend's -EBADF, with the fd. */
    int p[2];
    make_pipe(p);
    int gone = p[0];
    close_two(p);
    assert_code(sockit_selector_register(sel, gone, SOCKIT_EVENT_READ, NULL), -EBADF);
    assert_message_names("selector_register", gone);
    assert_int_equal(sockit_selector_count(sel), 0);
    assert_ok(sockit_selector_close(sel));
}

static void test_null_selector_is_refused_everywhere(void **state)
{
    (void)state;
    sockit_selector_event out[1];
    assert_code(sockit_selector_register(NULL, 0, SOCKIT_EVENT_READ, NULL), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "no selector"));
    assert_code(sockit_selector_modify(NULL, 0, SOCKIT_EVENT_READ, NULL), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "no selector"));
    assert_code(sockit_selector_unregister(NULL, 0), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "no selector"));
    assert_code(sockit_selector_select(NULL, 0, out, 1), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "no selector"));
    assert_null(sockit_selector_get_key(NULL, 0));
    assert_int_equal(sockit_selector_count(NULL), 0);
    assert_ok(sockit_selector_close(NULL));
    /* And select with nowhere to put results, or a NaN timeout. */
    sockit_selector *sel = new_selector();
    assert_code(sockit_selector_select(sel, 0, NULL, 1), -EINVAL);
    assert_code(sockit_selector_select(sel, NAN, out, 1), -EINVAL);
    assert_ok(sockit_selector_close(sel));
}

static void test_options_size_zero_is_the_base_and_an_unknown_tail_is_einval(void **state)
{
    (void)state;
    sockit_loop_options opts = SOCKIT_LOOP_OPTIONS_INIT;
    opts.size = 0;
    sockit_selector *base = sockit_selector_new(&opts);
    assert_sock(base);
    assert_ok(sockit_selector_close(base));
    struct {
        sockit_loop_options o;
        unsigned char later[8];
    } newer = {.o = SOCKIT_LOOP_OPTIONS_INIT};
    newer.o.size = sizeof newer;
    newer.later[7] = 0x5a;
    assert_null(sockit_selector_new(&newer.o));
    assert_int_equal(sockit_errcode(), -EINVAL);
    char want[64];
    snprintf(want, sizeof want, "selector_new: options: size %zu", sizeof newer);
    assert_non_null(strstr(sockit_errmsg(), want));
    opts.size = 4;
    assert_null(sockit_selector_new(&opts));
    assert_int_equal(sockit_errcode(), -EINVAL);
    /* A program built against an older, shorter struct still works. */
    opts.size = offsetof(sockit_loop_options, backend);
    sockit_selector *sel = sockit_selector_new(&opts);
    assert_sock(sel);
    assert_string_equal(sockit_selector_backend(sel), wanted_backend());
    assert_ok(sockit_selector_close(sel));
}

static void test_unknown_backend_is_einval_listing_the_known_ones(void **state)
{
    (void)state;
    sockit_loop_options opts = SOCKIT_LOOP_OPTIONS_INIT;
    opts.backend = "kqueue";
    assert_null(sockit_selector_new(&opts));
    assert_int_equal(sockit_errcode(), -EINVAL);
    const char *msg = sockit_errmsg();
    assert_non_null(strstr(msg, "kqueue"));
    assert_non_null(strstr(msg, "epoll"));
    assert_non_null(strstr(msg, "poll"));
}

static void test_select_with_zero_timeout_returns_at_once(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    sockit_selector_event out[4];
    double t0 = harness_now();
    assert_int_equal(sockit_selector_select(sel, 0, out, 4), 0); /* nothing registered */
    int p[2];
    make_pipe(p);
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    for (int i = 0; i < 100; i++)
        assert_int_equal(sockit_selector_select(sel, 0, out, 4), 0);
    assert_true(harness_now() - t0 < 0.5);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
}

static void test_select_timeout_returns_zero_after_the_timeout(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    sockit_selector_event out[4];
    double t0 = harness_now();
    assert_int_equal(sockit_selector_select(sel, 0.2, out, 4), 0);
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.19);
    assert_true(elapsed < 1.5);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
}

static void test_select_reports_the_ready_subset_of_the_registered_events(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int sv[2];
    make_pair(sv);
    int tag = 7;
    sockit_selector_event out[4];
    assert_ok(sockit_selector_register(sel, sv[0], SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE, &tag));
    assert_ok(sockit_selector_register(sel, sv[1], SOCKIT_EVENT_READ, NULL));
    /* Writable, nothing to read; the peer asked for READ only and has nothing. */
    ssize_t n = sockit_selector_select(sel, 1, out, 4);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].key->fd, sv[0]);
    assert_ptr_equal(out[0].key->data, &tag);
    assert_int_equal(out[0].events, SOCKIT_EVENT_WRITE);

    put(sv[1], "x");
    n = sockit_selector_select(sel, 1, out, 4);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].events, SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE);

    /* Asked for READ only: writability is not reported. */
    assert_ok(sockit_selector_modify(sel, sv[0], SOCKIT_EVENT_READ, &tag));
    n = sockit_selector_select(sel, 1, out, 4);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].events, SOCKIT_EVENT_READ);
    /* Asked for WRITE only: the unread byte is not reported. */
    assert_ok(sockit_selector_modify(sel, sv[0], SOCKIT_EVENT_WRITE, &tag));
    n = sockit_selector_select(sel, 1, out, 4);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].events, SOCKIT_EVENT_WRITE);

    /* Both directions on both ends. */
    put(sv[0], "y");
    assert_ok(sockit_selector_modify(sel, sv[0], SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE, &tag));
    assert_ok(sockit_selector_modify(sel, sv[1], SOCKIT_EVENT_READ, NULL));
    n = sockit_selector_select(sel, 1, out, 4);
    assert_int_equal(n, 2);
    assert_int_equal(result_for(out, n, sv[0])->events, SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE);
    assert_int_equal(result_for(out, n, sv[1])->events, SOCKIT_EVENT_READ);
    assert_ok(sockit_selector_close(sel));
    close_two(sv);
}

static void test_unread_data_is_selected_again_level_triggered(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    put(p[1], "hello");
    sockit_selector_event out[2];
    char buf[8];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sockit_selector_select(sel, 1, out, 2), 1);
        assert_int_equal(out[0].events, SOCKIT_EVENT_READ);
    }
    assert_int_equal(read(p[0], buf, 2), 2);
    assert_int_equal(sockit_selector_select(sel, 1, out, 2), 1); /* 3 bytes left */
    assert_int_equal(read(p[0], buf, sizeof buf), 3);
    assert_int_equal(sockit_selector_select(sel, 0, out, 2), 0);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
}

static void test_more_ready_than_max_are_reported_by_the_next_calls(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    enum { N = 5 };
    int p[N][2];
    for (int i = 0; i < N; i++) {
        make_pipe(p[i]);
        assert_ok(sockit_selector_register(sel, p[i][0], SOCKIT_EVENT_READ, NULL));
        put(p[i][1], "x");
    }
    /* 5 ready, 2 at a time, nothing read: the first two calls report 4 different
     * descriptors, and the third the fifth, before any repeats. */
    sockit_selector_event out[N];
    bool seen[N] = {false};
    for (int call = 0; call < 2; call++) {
        assert_int_equal(sockit_selector_select(sel, 1, out, 2), 2);
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < N; i++)
                if (out[j].key->fd == p[i][0]) {
                    assert_false(seen[i]);
                    seen[i] = true;
                }
    }
    int fifth = -1;
    for (int i = 0; i < N; i++)
        if (!seen[i])
            fifth = p[i][0];
    assert_int_not_equal(fifth, -1);
    ssize_t n = sockit_selector_select(sel, 1, out, 2);
    assert_int_equal(n, 2);
    assert_non_null(result_for(out, n, fifth));
    /* max 1 keeps turning: 5 calls report all 5. */
    bool once[N] = {false};
    for (int call = 0; call < N; call++) {
        assert_int_equal(sockit_selector_select(sel, 1, out, 1), 1);
        for (int i = 0; i < N; i++)
            if (out[0].key->fd == p[i][0])
                once[i] = true;
    }
    for (int i = 0; i < N; i++)
        assert_true(once[i]);
    /* All of them fit: all at once. */
    assert_int_equal(sockit_selector_select(sel, 1, out, N), N);
    assert_ok(sockit_selector_close(sel));
    for (int i = 0; i < N; i++)
        close_two(p[i]);
}

static void test_bytes_read_ahead_by_readline_are_selected_readable_at_once(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    assert_int_equal(sockit_send(pair[0], "one\ntwo\n", 8, 0), 8);
    char line[16];
    assert_int_equal(sockit_readline(pair[1], line, sizeof line), 4);
    assert_memory_equal(line, "one\n", 4);
    assert_int_equal(sockit_pending(pair[1]), 4); /* the kernel's buffer is empty */

    /* Registered with bytes already read ahead: readable without waiting. */
    assert_ok(sockit_selector_register_socket(sel, pair[1], SOCKIT_EVENT_READ, NULL));
    sockit_selector_event out[2];
    double t0 = harness_now();
    ssize_t n = sockit_selector_select(sel, 5, out, 2);
    assert_true(harness_now() - t0 < 1.0);
    assert_int_equal(n, 1);
    assert_ptr_equal(out[0].key->sock, pair[1]);
    assert_int_equal(out[0].events, SOCKIT_EVENT_READ);
    /* Level-triggered for read-ahead too: still there until read. */
    assert_int_equal(sockit_selector_select(sel, 0, out, 2), 1);
    assert_int_equal(sockit_readline(pair[1], line, sizeof line), 4);
    assert_memory_equal(line, "two\n", 4);
    assert_int_equal(sockit_selector_select(sel, 0, out, 2), 0);

    /* Selected readable by the kernel, then a readline that leaves a line behind:
     * the next select reports it though the descriptor has nothing. */
    assert_int_equal(sockit_send(pair[0], "three\nfour\n", 11, 0), 11);
    assert_int_equal(sockit_selector_select(sel, 1, out, 2), 1);
    assert_int_equal(sockit_readline(pair[1], line, sizeof line), 6);
    n = sockit_selector_select(sel, 0, out, 2);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].events, SOCKIT_EVENT_READ);

    /* Watching WRITE only, read-ahead is not reported; modified back to READ, it is. */
    assert_ok(sockit_selector_modify(sel, sockit_fileno(pair[1]), SOCKIT_EVENT_WRITE, NULL));
    n = sockit_selector_select(sel, 0, out, 2);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].events, SOCKIT_EVENT_WRITE);
    assert_ok(sockit_selector_modify(sel, sockit_fileno(pair[1]),
                                     SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE, NULL));
    n = sockit_selector_select(sel, 0, out, 2);
    assert_int_equal(n, 1); /* once, with both events */
    assert_int_equal(out[0].events, SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE);
    assert_int_equal(sockit_readline(pair[1], line, sizeof line), 5);
    assert_ok(sockit_selector_modify(sel, sockit_fileno(pair[1]), SOCKIT_EVENT_READ, NULL));
    assert_int_equal(sockit_selector_select(sel, 0, out, 2), 0);

    assert_ok(sockit_selector_unregister(sel, sockit_fileno(pair[1])));
    assert_ok(sockit_selector_close(sel));
    sockit_close(pair[0]);
    sockit_close(pair[1]);
}

static void on_signal(int sig) { (void)sig; }

static void test_select_retries_eintr_until_its_timeout(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    harness_signal_no_restart(SIGUSR1, on_signal);
    harness_signal_after(SIGUSR1, 0.1);
    harness_signal_after(SIGUSR1, 0.25);
    sockit_selector_event out[2];
    double t0 = harness_now();
    assert_int_equal(sockit_selector_select(sel, 0.5, out, 2), 0);
    double elapsed = harness_now() - t0;
    assert_true(elapsed >= 0.49);
    assert_true(elapsed < 1.5);
    signal(SIGUSR1, SIG_IGN);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
}

static void test_peer_hangup_is_reported_as_the_registered_events(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    sockit_selector_event out[4];

    /* A pipe's read end, asked for READ: the writer's close is READ. */
    int rp[2];
    make_pipe(rp);
    assert_ok(sockit_selector_register(sel, rp[0], SOCKIT_EVENT_READ, NULL));
    assert_int_equal(sockit_selector_select(sel, 0, out, 4), 0);
    close(rp[1]);
    assert_int_equal(sockit_selector_select(sel, 1, out, 4), 1);
    assert_int_equal(out[0].events, SOCKIT_EVENT_READ);
    assert_ok(sockit_selector_unregister(sel, rp[0]));
    close(rp[0]);

    /* A full pipe's write end, asked for WRITE: the reader's close is WRITE, never a
     * READ it did not ask for. */
    int wp[2];
    make_pipe(wp);
    char junk[4096];
    memset(junk, 'j', sizeof junk);
    while (write(wp[1], junk, sizeof junk) > 0)
        ;
    assert_ok(sockit_selector_register(sel, wp[1], SOCKIT_EVENT_WRITE, NULL));
    assert_int_equal(sockit_selector_select(sel, 0, out, 4), 0);
    close(wp[0]);
    assert_int_equal(sockit_selector_select(sel, 1, out, 4), 1);
    assert_int_equal(out[0].events, SOCKIT_EVENT_WRITE);
    assert_ok(sockit_selector_unregister(sel, wp[1]));
    close(wp[1]);

    /* A socket asked for both, whose peer closed: both. */
    int sv[2];
    make_pair(sv);
    assert_ok(sockit_selector_register(sel, sv[0], SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE, NULL));
    close(sv[1]);
    assert_int_equal(sockit_selector_select(sel, 1, out, 4), 1);
    assert_int_equal(out[0].events, SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE);
    assert_int_equal(read(sv[0], junk, sizeof junk), 0); /* the read meets the end */
    assert_ok(sockit_selector_unregister(sel, sv[0]));
    close(sv[0]);
    assert_ok(sockit_selector_close(sel));
}

static void test_reused_fd_gets_only_its_new_registrations_events(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int old_tag = 1, new_tag = 2;
    int p[2];
    make_pipe(p);
    int fd = p[0];
    assert_ok(sockit_selector_register(sel, fd, SOCKIT_EVENT_READ, &old_tag));
    put(p[1], "old data");
    sockit_selector_event out[4];
    assert_int_equal(sockit_selector_select(sel, 1, out, 4), 1); /* ready when it goes */
    assert_ok(sockit_selector_unregister(sel, fd));
    close_two(p);

    /* The lowest free descriptors: the new socket pair takes fd again. */
    int sv[2];
    make_pair(sv);
    int reused = sv[0] == fd ? sv[0] : sv[1];
    assert_int_equal(reused, fd);
    assert_ok(sockit_selector_register(sel, reused, SOCKIT_EVENT_WRITE, &new_tag));
    ssize_t n = sockit_selector_select(sel, 1, out, 4);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].key->fd, fd);
    assert_ptr_equal(out[0].key->data, &new_tag);
    assert_int_equal(out[0].events, SOCKIT_EVENT_WRITE);
    /* And asked for READ it has nothing to read: the old pipe's data is not its. */
    assert_ok(sockit_selector_modify(sel, reused, SOCKIT_EVENT_READ, &new_tag));
    assert_int_equal(sockit_selector_select(sel, 0, out, 4), 0);
    assert_ok(sockit_selector_close(sel));
    close_two(sv);
}

static void test_regular_file_is_eperm_under_epoll_and_always_ready_under_poll(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    char path[] = "/tmp/test_selector.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int rc = sockit_selector_register(sel, fd, SOCKIT_EVENT_READ, NULL);
    sockit_selector_event out[2];
    if (under_epoll()) {
        assert_code(rc, -EPERM);
        assert_message_names("selector_register", fd);
        assert_non_null(strstr(sockit_errmsg(), "epoll"));
        assert_int_equal(sockit_selector_count(sel), 0);
        assert_null(sockit_selector_get_key(sel, fd));
    } else {
        assert_ok(rc);
        assert_int_equal(sockit_selector_select(sel, 0, out, 2), 1);
        assert_int_equal(out[0].events, SOCKIT_EVENT_READ);
        assert_ok(sockit_selector_unregister(sel, fd));
    }
    assert_ok(sockit_selector_close(sel));
    close(fd);
}

static void test_ten_thousand_registrations_select_only_those_written_to(void **state)
{
    (void)state;
    enum { PAIRS = 5000, REGISTERED = 2 * PAIRS, EVERY = 97 };
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t need = REGISTERED + 64;
    if (rl.rlim_cur < need) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
            skip();
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : rl.rlim_max;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    sockit_selector *sel = new_selector();
    int *fds = malloc(REGISTERED * sizeof *fds);
    bool *written = calloc(REGISTERED, sizeof *written);
    sockit_selector_event *out = malloc(REGISTERED * sizeof *out);
    assert_non_null(fds);
    assert_non_null(written);
    assert_non_null(out);
    for (int i = 0; i < PAIRS; i++)
        make_pair(&fds[2 * i]);
    /* data is the index of the descriptor; its peer is index ^ 1. */
    for (intptr_t i = 0; i < REGISTERED; i++)
        assert_ok(sockit_selector_register(sel, fds[i], SOCKIT_EVENT_READ, (void *)i));
    assert_int_equal(sockit_selector_count(sel), REGISTERED);
    assert_int_equal(sockit_selector_select(sel, 0, out, REGISTERED), 0);

    int want = 0;
    for (int i = 0; i < REGISTERED; i += EVERY) {
        put(fds[i ^ 1], "!");
        written[i] = true;
        want++;
    }
    ssize_t n = sockit_selector_select(sel, 5, out, REGISTERED);
    assert_int_equal(n, want);
    for (ssize_t j = 0; j < n; j++) {
        intptr_t i = (intptr_t)out[j].key->data;
        assert_true(i >= 0 && i < REGISTERED);
        assert_int_equal(out[j].key->fd, fds[i]);
        assert_true(written[i]);
        written[i] = false; /* each once */
        assert_int_equal(out[j].events, SOCKIT_EVENT_READ);
    }
    /* Read, they are quiet again; unregistering all empties the selector. */
    char c;
    for (int i = 0; i < REGISTERED; i += EVERY)
        assert_int_equal(read(fds[i], &c, 1), 1);
    assert_int_equal(sockit_selector_select(sel, 0, out, REGISTERED), 0);
    for (int i = 0; i < REGISTERED; i++)
        assert_ok(sockit_selector_unregister(sel, fds[i]));
    assert_int_equal(sockit_selector_count(sel), 0);
    assert_ok(sockit_selector_close(sel));
    for (int i = 0; i < REGISTERED; i++)
        close(fds[i]);
    free(fds);
    free(written);
    free(out);
}

/* Faults through src/sys.h: the next `count` waits (poll or epoll_wait, whichever
 * the backend uses) or allocations fail with `err`. */
/* alloc: the allocator, else the backend's wait (poll or epoll_wait). */
static void inject(bool alloc, int err, int count)
{
    harness_inject(alloc ? HARNESS_OP(SOCKIT__SYS_ALLOC)
                         : HARNESS_OP(SOCKIT__SYS_POLL) | HARNESS_OP(SOCKIT__SYS_EPOLL_WAIT),
                   err, count, 0);
}

static void test_injected_eintr_is_retried_and_other_wait_errors_surface(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    put(p[1], "x");
    sockit_selector_event out[2];
    /* Three interrupted waits, then the real one reports the pipe. */
    inject(false, EINTR, 3);
    assert_int_equal(sockit_selector_select(sel, 5, out, 2), 1);
    assert_int_equal(harness_injected(), 3);
    /* Interrupted until the deadline: 0 after the timeout, never -EINTR. */
    inject(false, EINTR, INT_MAX);
    double t0 = harness_now();
    assert_int_equal(sockit_selector_select(sel, 0.1, out, 2), 0);
    assert_true(harness_now() - t0 >= 0.09);
    /* Any other failure is the caller's, with the backend named. */
    inject(false, ENOMEM, 1);
    assert_code(sockit_selector_select(sel, 5, out, 2), -ENOMEM);
    assert_non_null(strstr(sockit_errmsg(), "selector_select"));
    assert_non_null(strstr(sockit_errmsg(), wanted_backend()));
    sockit__set_fault_hook(NULL);
    assert_int_equal(sockit_selector_select(sel, 0, out, 2), 1);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
}

static void test_enomem_fails_the_one_call_and_takes_nothing(void **state)
{
    (void)state;
    sockit_selector *sel = new_selector();
    int p[2];
    make_pipe(p);
    /* register: nothing registered, and it can be registered afterwards. */
    inject(true, ENOMEM, 1000);
    assert_code(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL), -ENOMEM);
    assert_message_names("selector_register", p[0]);
    sockit__set_fault_hook(NULL);
    assert_int_equal(sockit_selector_count(sel), 0);
    assert_null(sockit_selector_get_key(sel, p[0]));
    assert_ok(sockit_selector_register(sel, p[0], SOCKIT_EVENT_READ, NULL));
    /* select, when its result space must grow first: -ENOMEM, then it works. */
    put(p[1], "x");
    sockit_selector_event out[2];
    inject(true, ENOMEM, 1000);
    assert_code(sockit_selector_select(sel, 0, out, 2), -ENOMEM);
    assert_non_null(strstr(sockit_errmsg(), "selector_select"));
    sockit__set_fault_hook(NULL);
    assert_int_equal(sockit_selector_select(sel, 0, out, 2), 1);
    assert_ok(sockit_selector_close(sel));
    close_two(p);
    /* And a selector that cannot be made is NULL with the reason. */
    inject(true, ENOMEM, 1000);
    assert_null(sockit_selector_new(NULL));
    assert_int_equal(sockit_errcode(), -ENOMEM);
    sockit__set_fault_hook(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_selector_uses_the_backend_that_was_asked_for),
        harness_test(test_register_modify_unregister_keep_keys_and_count),
        harness_test(test_register_twice_is_eexist_naming_the_fd),
        harness_test(test_unknown_fd_is_enoent_for_modify_unregister_and_get_key),
        harness_test(test_events_zero_or_unknown_bits_are_einval),
        harness_test(test_negative_fd_is_ebadf),
        harness_test(test_null_selector_is_refused_everywhere),
        harness_test(test_options_size_zero_is_the_base_and_an_unknown_tail_is_einval),
        harness_test(test_unknown_backend_is_einval_listing_the_known_ones),
        harness_test(test_select_with_zero_timeout_returns_at_once),
        harness_test(test_select_timeout_returns_zero_after_the_timeout),
        harness_test(test_select_reports_the_ready_subset_of_the_registered_events),
        harness_test(test_unread_data_is_selected_again_level_triggered),
        harness_test(test_more_ready_than_max_are_reported_by_the_next_calls),
        harness_test(test_bytes_read_ahead_by_readline_are_selected_readable_at_once),
        harness_test(test_select_retries_eintr_until_its_timeout),
        harness_test(test_peer_hangup_is_reported_as_the_registered_events),
        harness_test(test_reused_fd_gets_only_its_new_registrations_events),
        harness_test(test_regular_file_is_eperm_under_epoll_and_always_ready_under_poll),
        harness_test(test_ten_thousand_registrations_select_only_those_written_to),
        harness_fault_test(test_injected_eintr_is_retried_and_other_wait_errors_surface),
        harness_fault_test(test_enomem_fails_the_one_call_and_takes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
