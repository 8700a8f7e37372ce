/* The commands of --exec and --sh-exec (cli/child.c): the descriptor given is the
 * child's stdin and stdout and nothing else of ours reaches it, its signals are a
 * fresh job's, a command that cannot run is said by the parent (no silent 127, no
 * zombie), statuses read as a shell's $?, waits are bounded, and a stop reaches the
 * whole pipeline through its process group. Real children, over socketpairs. */
#include "harness.h"

#include "../cli/child.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs cmd on one end of a socketpair, sends input then ends it, reads everything
 * the child writes into out (NUL-terminated) and returns its status. */
static int run(const char *cmd, bool shell, const char *input, char *out, size_t size)
{
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    pid_t pid = 0;
    int rc = child_start(cmd, shell, sockit_fileno(pair[1]), &pid);
    sockit_close(pair[1]);
    assert_int_equal(rc, 0);
    assert_true(pid > 0);
    if (input != NULL)
        assert_ok(sockit_sendall(pair[0], input, strlen(input), 0, NULL));
    sockit_shutdown(pair[0], SHUT_WR);
    assert_ok(sockit_settimeout(pair[0], 10));
    size_t got = 0;
    for (;;) {
        ssize_t n = sockit_recv(pair[0], out + got, size - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    out[got] = '\0';
    sockit_close(pair[0]);
    return child_wait(pid, 10);
}

/* What child_start or child_check says on stderr, caught in a file. */
static char said[1024];

static int saying(int (*fn)(const char *, bool, int, pid_t *), const char *cmd, bool shell, int fd,
                  pid_t *pid)
{
    char path[] = "/tmp/test_cli_child.XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    dup2(tmp, STDERR_FILENO);
    int rc = fn(cmd, shell, fd, pid);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(tmp, said, sizeof said - 1, 0);
    said[n > 0 ? n : 0] = '\0';
    close(tmp);
    return rc;
}

/* Processes of group pgid that are not zombies, from /proc. */
static int live_in_group(pid_t pgid)
{
    int n = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[300], buf[512];
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* pid (comm) state ppid pgrp ...: comm may hold anything but ends at the
         * last ')'. */
        const char *close_paren = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (close_paren != NULL &&
            sscanf(close_paren + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
            state != 'Z')
            n++;
    }
    closedir(d);
    return n;
}

static int check_fn(const char *cmd, bool shell, int fd, pid_t *pid)
{
    (void)fd;
    (void)pid;
    return child_check(cmd, shell);
}

static void test_the_descriptor_is_stdin_and_stdout(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(run("cat", false, "ping\n", out, sizeof out), 0);
    assert_string_equal(out, "ping\n");
}

static void test_sh_exec_runs_a_pipeline(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(run("tr a-z A-Z | tr -d X", true, "hello xylophone\n", out, sizeof out), 0);
    assert_string_equal(out, "HELLO YLOPHONE\n");
}

static void test_exec_splits_on_blanks_and_nothing_else(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(run("  printf \t[%s]   'a b'  ", false, NULL, out, sizeof out), 0);
    /* No quoting: the quotes are the words' own characters. */
    assert_string_equal(out, "['a][b']");
}

static void test_status_is_a_shells(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(run("exit 3", true, NULL, out, sizeof out), 3);
    assert_int_equal(run("kill -TERM $$", true, NULL, out, sizeof out), 128 + SIGTERM);
    assert_int_equal(run("false", false, NULL, out, sizeof out), 1);
}

static void test_signals_are_a_fresh_jobs(void **state)
{
    (void)state;
    /* What sockit's own state would hand down: SIGPIPE and SIGINT ignored, SIGTERM
     * blocked. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe, old_int;
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigaction(SIGINT, &ign, &old_int);
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old_mask);
    char out[4096];
    int status = run("cat /proc/self/status", false, NULL, out, sizeof out);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigaction(SIGINT, &old_int, NULL);
    assert_int_equal(status, 0);
    const char *blk = strstr(out, "SigBlk:"), *ignored = strstr(out, "SigIgn:");
    assert_non_null(blk);
    assert_non_null(ignored);
    unsigned long long blk_mask = strtoull(blk + 7, NULL, 16);
    unsigned long long ign_mask = strtoull(ignored + 7, NULL, 16);
    assert_int_equal(blk_mask, 0);
    unsigned long long fresh = (1ULL << (SIGPIPE - 1)) | (1ULL << (SIGINT - 1)) |
                               (1ULL << (SIGTERM - 1)) | (1ULL << (SIGQUIT - 1));
    assert_int_equal(ign_mask & fresh, 0);
}

static void test_no_other_descriptor_reaches_the_child(void **state)
{
    (void)state;
    /* Ours are close-on-exec: a listener and another connection. */
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *other[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, other));
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* One that someone left inheritable is closed in the child too. */
    int leaked = open("/dev/null", O_RDONLY);
    assert_true(leaked > STDERR_FILENO);
#else
    int leaked = -1;
#endif
    char out[256];
    int status = run("ls /proc/self/fd", false, NULL, out, sizeof out);
    if (leaked >= 0)
        close(leaked);
    sockit_close(other[0]);
    sockit_close(other[1]);
    sockit_close(l);
    assert_int_equal(status, 0);
    /* 3 is ls's own reading of the directory. */
    assert_string_equal(out, "0\n1\n2\n3\n");
}

static void test_a_descriptor_below_3_is_moved_not_lost(void **state)
{
    (void)state;
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    int saved = dup(STDIN_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(sockit_fileno(pair[1]), STDIN_FILENO), STDIN_FILENO);
    sockit_close(pair[1]);
    pid_t pid;
    int rc = child_start("cat", false, STDIN_FILENO, &pid);
    dup2(saved, STDIN_FILENO);
    close(saved);
    assert_int_equal(rc, 0);
    assert_ok(sockit_sendall(pair[0], "zero\n", 5, 0, NULL));
    sockit_shutdown(pair[0], SHUT_WR);
    char out[16] = {0};
    assert_ok(sockit_settimeout(pair[0], 10));
    assert_int_equal(sockit_recv_exact(pair[0], out, 5, NULL), 5);
    assert_string_equal(out, "zero\n");
    sockit_close(pair[0]);
    assert_int_equal(child_wait(pid, 10), 0);
}

static void test_a_nonblocking_descriptor_is_made_blocking(void **state)
{
    (void)state;
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    int fd = sockit_fileno(pair[1]);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    pid_t pid;
    assert_int_equal(child_start("cat", false, fd, &pid), 0);
    sockit_close(pair[1]);
    /* A cat on a non-blocking stdin would read EAGAIN now and quit. */
    usleep(200 * 1000);
    assert_ok(sockit_sendall(pair[0], "late\n", 5, 0, NULL));
    sockit_shutdown(pair[0], SHUT_WR);
    char out[16] = {0};
    assert_ok(sockit_settimeout(pair[0], 10));
    assert_int_equal(sockit_recv_exact(pair[0], out, 5, NULL), 5);
    assert_string_equal(out, "late\n");
    sockit_close(pair[0]);
    assert_int_equal(child_wait(pid, 10), 0);
}

static void test_an_exec_failure_is_said_by_the_parent(void **state)
{
    (void)state;
    /* Found and executable, yet execve fails: its interpreter does not exist. */
    char dir[] = "/tmp/test_cli_child_dir.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char script[sizeof dir + 16];
    snprintf(script, sizeof script, "%s/bad", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs("#!/nonexistent/interpreter\n", f);
    fclose(f);
    assert_int_equal(chmod(script, 0755), 0);
    assert_int_equal(child_check(script, false), 0);
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    pid_t pid = 0;
    assert_int_equal(saying(child_start, script, false, sockit_fileno(pair[1]), &pid), -1);
    char want[sizeof script + 64];
    snprintf(want, sizeof want, "sockit: --exec '%s': No such file or directory\n", script);
    assert_string_equal(said, want);
    /* No child is left behind to reap. */
    int ws;
    assert_int_equal(waitpid(-1, &ws, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(
        saying(child_start, "/nonexistent/prog -x", false, sockit_fileno(pair[1]), &pid), -1);
    assert_string_equal(said, "sockit: --exec '/nonexistent/prog -x': No such file or directory\n");
    assert_int_equal(saying(child_start, " \t", true, sockit_fileno(pair[1]), &pid), -1);
    /* The tab is named escaped: the error stays one line. */
    assert_string_equal(said, "sockit: --sh-exec ' \\t': no command to run\n");
    sockit_close(pair[0]);
    sockit_close(pair[1]);
    unlink(script);
    rmdir(dir);
}

static void test_check_finds_programs_as_execvp_does(void **state)
{
    (void)state;
    assert_int_equal(child_check("cat", false), 0);
    assert_int_equal(child_check("  /bin/cat -u", false), 0);
    assert_int_equal(child_check("anything | at all", true), 0);
    assert_int_equal(saying(check_fn, "nosuchprog-sockit arg", false, -1, NULL), -1);
    assert_string_equal(said,
                        "sockit: --exec 'nosuchprog-sockit arg': No such file or directory\n");
    /* Not executable (root too needs an x bit), and a directory. */
    char dir[] = "/tmp/test_cli_child_dir.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char plain[sizeof dir + 16], want[sizeof plain + 64];
    snprintf(plain, sizeof plain, "%s/plain", dir);
    FILE *f = fopen(plain, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(chmod(plain, 0644), 0);
    assert_int_equal(saying(check_fn, plain, false, -1, NULL), -1);
    snprintf(want, sizeof want, "sockit: --exec '%s': Permission denied\n", plain);
    assert_string_equal(said, want);
    assert_int_equal(saying(check_fn, dir, false, -1, NULL), -1);
    snprintf(want, sizeof want, "sockit: --exec '%s': Permission denied\n", dir);
    assert_string_equal(said, want);
    unlink(plain);
    rmdir(dir);
    assert_int_equal(saying(check_fn, "", false, -1, NULL), -1);
    assert_string_equal(said, "sockit: --exec '': no command to run\n");
    assert_int_equal(saying(check_fn, "", true, -1, NULL), -1);
    assert_string_equal(said, "sockit: --sh-exec '': no command to run\n");
}

static void test_wait_is_bounded_and_kill_reaches_the_group(void **state)
{
    (void)state;
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    pid_t pid;
    /* A pipeline: sh, and two sleeps that SIGTERM to sh alone would leave behind. */
    assert_int_equal(child_start("sleep 30 | sleep 30", true, sockit_fileno(pair[1]), &pid), 0);
    sockit_close(pair[1]);
    double t0 = harness_now();
    assert_int_equal(child_wait(pid, 0.2), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(harness_now() - t0 >= 0.19);
    assert_int_equal(child_wait(pid, 0), -1);
    assert_int_equal(getpgid(pid), pid);
    assert_int_equal(child_kill(pid, SIGTERM), 0);
    assert_int_equal(child_wait(pid, 10), 128 + SIGTERM);
    /* The sleeps went with it (they were reparented, so look a while; whoever
     * adopted them may leave them zombies, which are gone all the same). */
    int left = 0;
    for (int i = 0; i < 100 && (left = live_in_group(pid)) > 0; i++)
        usleep(20 * 1000);
    assert_int_equal(left, 0);
    assert_int_equal(child_kill(0, SIGTERM), -EINVAL);
    sockit_close(pair[0]);
}

static void test_wait_and_reap_refuse_what_is_not_a_child(void **state)
{
    (void)state;
    pid_t pid = 0;
    assert_int_equal(child_reap(&pid), -1);
    assert_int_equal(child_wait(1, 0.1), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(child_wait(1, -1), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_reap_takes_what_ended(void **state)
{
    (void)state;
    sockit *pair[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, pair));
    pid_t pid, got = 0;
    assert_int_equal(child_start("exit 7", true, sockit_fileno(pair[1]), &pid), 0);
    sockit_close(pair[1]);
    /* Its end closes the socketpair: then it has exited, and reap sees it soon. */
    char c;
    assert_ok(sockit_settimeout(pair[0], 10));
    assert_int_equal(sockit_recv(pair[0], &c, 1, 0), 0);
    int status = -1;
    for (int i = 0; i < 500 && (status = child_reap(&got)) < 0; i++)
        usleep(10 * 1000);
    assert_int_equal(status, 7);
    assert_int_equal(got, pid);
    assert_int_equal(child_reap(&got), -1);
    sockit_close(pair[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_the_descriptor_is_stdin_and_stdout),
        harness_test(test_sh_exec_runs_a_pipeline),
        harness_test(test_exec_splits_on_blanks_and_nothing_else),
        harness_test(test_status_is_a_shells),
        harness_test(test_signals_are_a_fresh_jobs),
        harness_test(test_no_other_descriptor_reaches_the_child),
        harness_test(test_a_descriptor_below_3_is_moved_not_lost),
        harness_test(test_a_nonblocking_descriptor_is_made_blocking),
        harness_test(test_an_exec_failure_is_said_by_the_parent),
        harness_test(test_check_finds_programs_as_execvp_does),
        harness_test(test_wait_is_bounded_and_kill_reaches_the_group),
        harness_test(test_wait_and_reap_refuse_what_is_not_a_child),
        harness_test(test_reap_takes_what_ended),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
