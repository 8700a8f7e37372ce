/* Out of descriptors (EMFILE): a server must neither spin on its readable listener
 * (Python's socketserver burns a whole core) nor give up; once descriptors are back
 * it serves again. The server runs in a child process with a low RLIMIT_NOFILE, so
 * this process keeps its limits; this process starts no thread, so the child may. */
#include "socketserver_harness.h"

#include <fcntl.h>
#include <sys/resource.h>

/* ---- the child: a server that can be made to run out of descriptors ------------- */

enum { FD_LIMIT = 64 };

static sockit_server *child_server;
static int child_report_fd = -1; /* to the parent: 'H' hogged, 'F' freed */
static int devnull_fd = -1;
static int hog_fds[FD_LIMIT];
static int hogs;
static atomic_int emfile_reported;

/* SIGUSR2: takes every free descriptor. dup, close and write are
 * async-signal-safe. */
static void hog_all(int sig)
{
    (void)sig;
    int saved = errno;
    while (hogs < FD_LIMIT) {
        int fd = dup(devnull_fd);
        if (fd < 0)
            break;
        hog_fds[hogs++] = fd;
    }
    ssize_t rc = write(child_report_fd, "H", 1);
    (void)rc;
    errno = saved;
}

/* SIGUSR1: gives them back. */
static void free_all(int sig)
{
    (void)sig;
    int saved = errno;
    while (hogs > 0)
        close(hog_fds[--hogs]);
    ssize_t rc = write(child_report_fd, "F", 1);
    (void)rc;
    errno = saved;
}

static void stop_serving(int sig)
{
    (void)sig;
    sockit_server_shutdown(child_server);
}

static void note_error(sockit_request *req, int code, void *user)
{
    (void)user;
    if (req == NULL && (code == -EMFILE || code == -ENFILE))
        atomic_store(&emfile_reported, 1);
}

/* Exit status: 0 served and stopped cleanly; 2 setup failed; 3 serve_forever
 * failed; 4 EMFILE was never reported to handle_error. */
_Noreturn static void child_main(sockit_server_mode mode, int report_fd)
{
    child_report_fd = report_fd;
    devnull_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct rlimit rl;
    if (devnull_fd < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(2);
    rl.rlim_cur = FD_LIMIT;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(2);
    harness_signal_no_restart(SIGUSR2, hog_all);
    harness_signal_no_restart(SIGUSR1, free_all);
    harness_signal_no_restart(SIGTERM, stop_serving);
    sockit_server_config cfg = srv_echo_config(mode);
    cfg.handle_error = note_error;
    child_server = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    sockit_addr a;
    if (child_server == NULL || sockit_server_address(child_server, &a) < 0)
        _exit(2);
    int port = sockit_addr_port(&a);
    if (write(report_fd, &port, sizeof port) != (ssize_t)sizeof port)
        _exit(2);
    int rc = sockit_server_serve_forever(child_server);
    sockit_server_close(child_server);
    _exit(rc != 0 ? 3 : atomic_load(&emfile_reported) ? 0 : 4);
}

/* ---- the parent ---------------------------------------------------------------------- */

static pid_t child = -1;
static int from_child = -1;
static sockit *storm[400];
static int nstorm;

/* Kills and reaps the child and closes what the test opened, on every path, then
 * checks for leaked descriptors. */
static int emfile_teardown(void **state)
{
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    if (from_child >= 0)
        close(from_child);
    from_child = -1;
    for (int i = 0; i < nstorm; i++)
        sockit_close(storm[i]);
    nstorm = 0;
    return harness_fd_teardown(state);
}

/* Reads exactly len bytes from the child within seconds. */
static bool read_child(void *buf, size_t len, double seconds)
{
    double end = harness_now() + seconds;
    size_t got = 0;
    while (got < len && harness_now() < end) {
        struct pollfd pfd = {.fd = from_child, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = read(from_child, (char *)buf + got, len - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return got == len;
}

/* utime + stime of a process, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    /* The command name may hold spaces; the fields after it do not. Skip state
     * through cmajflt (fields 3-13) to reach utime and stime (14, 15). */
    const char *p = strrchr(text, ')');
    assert_non_null(p);
    long utime, stime;
    assert_int_equal(
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime), 2);
    return utime + stime;
}

static void expect_echo_at(int port, const char *line, double seconds)
{
    sockit *c = sockit_create_connection("127.0.0.1", port, seconds, NULL);
    assert_sock(c);
    assert_ok(sockit_sendall(c, line, strlen(line), 0, NULL));
    assert_ok(sockit_shutdown(c, SHUT_WR));
    char got[128];
    assert_ok(sockit_readline(c, got, sizeof got));
    assert_string_equal(got, line);
    /* End of stream: the handler is done and its descriptor closed, so the server
     * holds no descriptor that could free up while it is starved of them. */
    assert_int_equal(sockit_recv(c, got, sizeof got, 0), 0);
    sockit_close(c);
}

static void check_emfile(sockit_server_mode mode)
{
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    fflush(NULL);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(pipefd[0]);
        child_main(mode, pipefd[1]);
    }
    close(pipefd[1]);
    from_child = pipefd[0];
    int port;
    assert_true(read_child(&port, sizeof port, 10.0));
    expect_echo_at(port, "before\n", 5.0);

    char mark;
    assert_int_equal(kill(child, SIGUSR2), 0);
    assert_true(read_child(&mark, 1, 5.0));
    assert_int_equal(mark, 'H');

    /* Clients keep coming for a second: the listener stays readable throughout. */
    long ticks0 = cpu_ticks(child);
    double t0 = harness_now();
    while (harness_now() - t0 < 1.0 && nstorm < 400) {
        sockit *c = sockit_socket(AF_INET, SOCK_STREAM);
        assert_sock(c);
        storm[nstorm++] = c;
        assert_ok(sockit_settimeout(c, 1.0));
        assert_ok(sockit_connect(c, "127.0.0.1", port));
        srv_sleep(0.005);
    }
    double elapsed = harness_now() - t0;
    long ticks = cpu_ticks(child) - ticks0;
    double share = (double)ticks / (double)sysconf(_SC_CLK_TCK) / elapsed;
    print_message("server CPU while out of descriptors: %.0f%% of a core\n", share * 100);
    assert_true(share < 0.3);

    /* Shed connections read end of stream (or a reset) rather than hang. */
    int shed = 0;
    for (int i = 0; i < nstorm; i++) {
        char b;
        assert_ok(sockit_settimeout(storm[i], 0.0));
        ssize_t n = sockit_recv(storm[i], &b, 1, 0);
        shed += n == 0 || n == -ECONNRESET;
    }
    assert_true(shed >= 1);
    for (int i = 0; i < nstorm; i++)
        sockit_close(storm[i]);
    nstorm = 0;

    assert_int_equal(kill(child, SIGUSR1), 0);
    assert_true(read_child(&mark, 1, 5.0));
    assert_int_equal(mark, 'F');
    t0 = harness_now();
    expect_echo_at(port, "after\n", 5.0);
    assert_true(harness_now() - t0 < 3.0);

    assert_int_equal(kill(child, SIGTERM), 0);
    int status = -1;
    for (int i = 0; i < 500 && waitpid(child, &status, WNOHANG) == 0; i++)
        srv_sleep(0.01);
    assert_true(WIFEXITED(status));
    child = -1;
    assert_int_equal(WEXITSTATUS(status), 0);
    close(from_child);
    from_child = -1;
}

/* 100 clients queue up while the server has no descriptor to spare: each must be
 * told (end of stream or a reset) within a second, not one per back-off. */
static void check_every_pending_client_is_told(sockit_server_mode mode)
{
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    fflush(NULL);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(pipefd[0]);
        child_main(mode, pipefd[1]);
    }
    close(pipefd[1]);
    from_child = pipefd[0];
    int port;
    assert_true(read_child(&port, sizeof port, 10.0));
    expect_echo_at(port, "before\n", 5.0);
    char mark;
    assert_int_equal(kill(child, SIGUSR2), 0);
    assert_true(read_child(&mark, 1, 5.0));
    assert_int_equal(mark, 'H');
    /* A first client starts the streak of errors (and any back-off) before the
     * crowd comes. */
    sockit *first = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    assert_sock(first);
    storm[nstorm++] = first;
    srv_sleep(0.3);

    enum { PENDING = 100 };
    for (int i = 0; i < PENDING; i++) {
        sockit *c = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
        assert_sock(c);
        storm[nstorm++] = c;
    }
    double t0 = harness_now();
    int told = 0;
    bool seen[PENDING + 1] = {false};
    while (told < nstorm && harness_now() - t0 < 1.0) {
        struct pollfd pfd[PENDING + 1];
        for (int i = 0; i < nstorm; i++)
            pfd[i] =
                (struct pollfd){.fd = seen[i] ? -1 : sockit_fileno(storm[i]), .events = POLLIN};
        if (poll(pfd, (nfds_t)nstorm, 50) <= 0)
            continue;
        for (int i = 0; i < nstorm; i++) {
            if (seen[i] || pfd[i].revents == 0)
                continue;
            char b;
            ssize_t n = sockit_recv(storm[i], &b, 1, 0);
            if (n == 0 || n == -ECONNRESET) {
                seen[i] = true;
                told++;
            }
        }
    }
    double took = harness_now() - t0;
    print_message("%d of %d pending clients told in %.3f s\n", told, nstorm, took);
    assert_int_equal(told, nstorm);
    for (int i = 0; i < nstorm; i++)
        sockit_close(storm[i]);
    nstorm = 0;

    assert_int_equal(kill(child, SIGUSR1), 0);
    assert_true(read_child(&mark, 1, 5.0));
    expect_echo_at(port, "after\n", 5.0);
    assert_int_equal(kill(child, SIGTERM), 0);
    int status = -1;
    for (int i = 0; i < 500 && waitpid(child, &status, WNOHANG) == 0; i++)
        srv_sleep(0.01);
    assert_true(WIFEXITED(status));
    child = -1;
    assert_int_equal(WEXITSTATUS(status), 0);
    close(from_child);
    from_child = -1;
}

static void test_out_of_descriptors_sequential_server_tells_every_pending_client(void **state)
{
    (void)state;
    check_every_pending_client_is_told(SOCKIT_SEQUENTIAL);
}

static void test_out_of_descriptors_threads_server_tells_every_pending_client(void **state)
{
    (void)state;
    check_every_pending_client_is_told(SOCKIT_THREADS);
}

static void test_out_of_descriptors_pool_server_tells_every_pending_client(void **state)
{
    (void)state;
    check_every_pending_client_is_told(SOCKIT_POOL);
}

static void test_out_of_descriptors_sequential_server_does_not_spin_and_recovers(void **state)
{
    (void)state;
    check_emfile(SOCKIT_SEQUENTIAL);
}

static void test_out_of_descriptors_threads_server_does_not_spin_and_recovers(void **state)
{
    (void)state;
    check_emfile(SOCKIT_THREADS);
}

static void test_out_of_descriptors_pool_server_does_not_spin_and_recovers(void **state)
{
    (void)state;
    check_emfile(SOCKIT_POOL);
}

#define emfile_test(t) cmocka_unit_test_setup_teardown(t, harness_fd_setup, emfile_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        emfile_test(test_out_of_descriptors_sequential_server_does_not_spin_and_recovers),
        emfile_test(test_out_of_descriptors_threads_server_does_not_spin_and_recovers),
        emfile_test(test_out_of_descriptors_pool_server_does_not_spin_and_recovers),
        emfile_test(test_out_of_descriptors_sequential_server_tells_every_pending_client),
        emfile_test(test_out_of_descriptors_threads_server_tells_every_pending_client),
        emfile_test(test_out_of_descriptors_pool_server_tells_every_pending_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
