/* What a SOCKIT_PROCESSES handler's process has: handle_error runs there, in the
 * child; the program's descriptors are inherited (fork ignores close-on-exec); other
 * clients' connections are not, so a client sees its end of stream as soon as its
 * own child is done. The server runs in this thread and the clients in a process
 * forked before it serves, so no fork happens while other threads run. */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int report_fd = -1;  /* the child writes what it saw here */
static int program_fd = -1; /* a descriptor the program holds when the server forks */

struct child_report {
    pid_t pid;
    int code;
    bool program_fd_open;
};

static int failing_handler(sockit_request *req)
{
    (void)req;
    return -EPROTO;
}

static void reporting_error(sockit_request *req, int code, void *user)
{
    (void)user;
    struct child_report r = {getpid(), code, fcntl(program_fd, F_GETFD) >= 0};
    if (write(report_fd, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(3);
    sockit_server_shutdown(req->server); /* from the child: stops the parent */
}

static int server_port(sockit_server *srv)
{
    sockit_addr a;
    assert_ok(sockit_server_address(srv, &a));
    return sockit_addr_port(&a);
}

static void test_handle_error_runs_in_the_child_which_inherits_the_programs_fds(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    report_fd = fds[1];
    program_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(program_fd >= 0);
    sockit_server_config cfg = {
        .handler = failing_handler, .handle_error = reporting_error, .mode = SOCKIT_PROCESSES};
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    assert_sock(srv);
    int port = server_port(srv);
    pid_t client = fork();
    assert_true(client >= 0);
    if (client == 0) {
        sockit *c = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
        _exit(c != NULL && sockit_close(c) == 0 ? 0 : 1);
    }
    assert_ok(sockit_server_serve_forever(srv));
    struct child_report r;
    assert_int_equal(read(fds[0], &r, sizeof r), (ssize_t)sizeof r);
    assert_int_not_equal(r.pid, getpid());
    assert_true(r.pid > 0);
    assert_int_equal(r.code, -EPROTO);
    assert_true(r.program_fd_open);
    int status;
    assert_int_equal(waitpid(client, &status, 0), client);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_ok(sockit_server_close(srv));
    close(program_fd);
    close(fds[0]);
    close(fds[1]);
}

/* Says "ready", then answers each line until the client's end of stream. */
static int ready_echo_handler(sockit_request *req)
{
    if (sockit_sendall(req->sock, "ready\n", 6, 0, NULL) < 0)
        return -EIO;
    char line[64];
    ssize_t n;
    while ((n = sockit_readline(req->sock, line, sizeof line)) > 0) {
        if (strcmp(line, "bye\n") == 0)
            return 0;
        if (sockit_sendall(req->sock, line, (size_t)n, 0, NULL) < 0)
            return -EIO;
    }
    return (int)n;
}

static sockit_server *stoppable;
static void stop_on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(stoppable);
}

static bool expect_line(sockit *c, const char *want)
{
    char line[64];
    return sockit_readline(c, line, sizeof line) > 0 && strcmp(line, want) == 0;
}

/* Client 1's child is forked, then client 2's while client 1 is still connected. If
 * client 2's child held client 1's connection, client 1 would not see its end of
 * stream until client 2 ended too. Exit status: 0 ok, else the failed step. */
static int two_clients(int port)
{
    sockit *one = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    if (one == NULL || !expect_line(one, "ready\n"))
        return 10;
    sockit *two = sockit_create_connection("127.0.0.1", port, 5.0, NULL);
    if (two == NULL || !expect_line(two, "ready\n"))
        return 11;
    if (sockit_sendall(one, "ping\n", 5, 0, NULL) != 5 || !expect_line(one, "ping\n"))
        return 12;
    if (sockit_sendall(one, "bye\n", 4, 0, NULL) != 4)
        return 13;
    double t0 = harness_now();
    char b;
    if (sockit_recv(one, &b, 1, 0) != 0) /* bounded by the connection's 5 s timeout */
        return 14;
    if (harness_now() - t0 > 1.0)
        return 15;
    sockit_close(one);
    sockit_close(two);
    kill(getppid(), SIGUSR1);
    return 0;
}

static void test_a_forked_handler_does_not_hold_other_clients_connections(void **state)
{
    (void)state;
    sockit_server_config cfg = {
        .handler = ready_echo_handler, .mode = SOCKIT_PROCESSES, .idle_timeout = 5.0};
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &cfg);
    assert_sock(srv);
    stoppable = srv;
    harness_signal_no_restart(SIGUSR1, stop_on_signal);
    int port = server_port(srv);
    pid_t client = fork();
    assert_true(client >= 0);
    if (client == 0)
        _exit(two_clients(port));
    assert_ok(sockit_server_serve_forever(srv));
    int status;
    assert_int_equal(waitpid(client, &status, 0), client);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("client script failed at step %d", WEXITSTATUS(status));
    assert_ok(sockit_server_close(srv));
    signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_handle_error_runs_in_the_child_which_inherits_the_programs_fds),
        harness_test(test_a_forked_handler_does_not_hold_other_clients_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
