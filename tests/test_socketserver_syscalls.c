/* The system calls a SOCKIT_SEQUENTIAL server makes per request, counted by strace:
 * a one-shot TCP connection costs accept4, recvfrom, sendto and close, as a plain
 * blocking accept loop does, and a datagram recvfrom and sendto; no poll, and no
 * eventfd write or read, while requests are waiting.
 *
 * This binary is also the traced server (--serve): it serves K requests that the
 * test queued before telling it to start, so it never waits between them. The test
 * runs it for K = N and K = 2N and divides the difference by N, which leaves out
 * everything a run does once (start-up, the last empty accept and poll, close).
 * Memory calls (mmap, brk, ...) are not counted: how an allocator grows is not the
 * server's doing. strace is installed by scripts/deps.sh; without it this fails. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define REPLY "Hello from server!"

/* ---- the traced server ------------------------------------------------------------ */

/* The reference server's flow: one recv, one reply, and the server closes. */
static int oneshot(sockit_request *req)
{
    char buf[1024];
    ssize_t n = sockit_recv(req->sock, buf, sizeof buf, 0);
    if (n < 0)
        return (int)n;
    n = sockit_sendall(req->sock, REPLY, strlen(REPLY), 0, NULL);
    return n < 0 ? (int)n : 0;
}

static int udp_echo(sockit_request *req)
{
    ssize_t n = sockit_sendto_addr(req->sock, req->data, req->len, 0, &req->peer);
    return n < 0 ? (int)n : 0;
}

/* Exit status: 0 served K requests; 2 setup failed; 3 a request was not served. */
static int serve(const char *kind, int k)
{
    bool udp = strcmp(kind, "udp") == 0;
    sockit_server_config cfg = {.handler = udp ? udp_echo : oneshot, .mode = SOCKIT_SEQUENTIAL};
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, udp ? SOCK_DGRAM : SOCK_STREAM, &cfg);
    sockit_addr a;
    if (srv == NULL || sockit_server_address(srv, &a) < 0)
        return 2;
    printf("%d\n", sockit_addr_port(&a));
    fflush(stdout);
    char go;
    if (read(0, &go, 1) != 1)
        return 2;
    for (int i = 0; i < k; i++)
        if (sockit_server_handle_request(srv, 10.0) != 1)
            return 3;
    sockit_server_close(srv);
    return 0;
}

/* ---- the test -------------------------------------------------------------------------- */

static char self[4096];

typedef struct count {
    int total;
    char names[32][24];
    int calls[32];
    int nnames;
} count;

static void tally(count *c, const char *name)
{
    c->total++;
    for (int i = 0; i < c->nnames; i++)
        if (strcmp(c->names[i], name) == 0) {
            c->calls[i]++;
            return;
        }
    if (c->nnames < 32) {
        snprintf(c->names[c->nnames], sizeof c->names[0], "%.23s", name);
        c->calls[c->nnames++] = 1;
    }
}

static int calls_of(const count *c, const char *name)
{
    for (int i = 0; i < c->nnames; i++)
        if (strcmp(c->names[i], name) == 0)
            return c->calls[i];
    return 0;
}

/* Reads one line from fd within seconds. */
static bool read_line(int fd, char *buf, size_t size, double seconds)
{
    size_t got = 0;
    double end = harness_now() + seconds;
    while (got + 1 < size && harness_now() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, buf + got, 1);
        if (n <= 0)
            return false;
        if (buf[got++] == '\n')
            break;
    }
    buf[got] = '\0';
    return got > 0 && buf[got - 1] == '\n';
}

/* Runs the server under strace for k requests of kind, sends them, checks every
 * answer, and counts the server's system calls. */
static void run_traced(const char *kind, int k, count *out)
{
    bool udp = strcmp(kind, "udp") == 0;
    char trace[] = "/tmp/sockit-syscalls-XXXXXX";
    int tfd = mkstemp(trace);
    assert_true(tfd >= 0);
    close(tfd);
    int to_child[2], from_child[2];
    assert_int_equal(pipe2(to_child, O_CLOEXEC), 0);
    assert_int_equal(pipe2(from_child, O_CLOEXEC), 0);
    char karg[16];
    snprintf(karg, sizeof karg, "%d", k);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        /* LeakSanitizer cannot run under ptrace; the other tests look for leaks. */
        const char *asan = getenv("ASAN_OPTIONS");
        char opts[512];
        snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", asan ? asan : "", asan ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
        execlp("strace", "strace", "-qq", "-o", trace, "-e", "trace=!%memory", "--", self,
               "--serve", kind, karg, (char *)NULL);
        fprintf(stderr, "strace: %s (scripts/deps.sh installs it)\n", strerror(errno));
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    char line[64];
    bool started = read_line(from_child[0], line, sizeof line, 20.0);
    int port = started ? atoi(line) : 0;

    sockit **cs = calloc((size_t)k, sizeof *cs);
    assert_non_null(cs);
    int nc = udp ? 1 : k;
    for (int i = 0; started && i < nc; i++) {
        cs[i] = sockit_socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM);
        assert_sock(cs[i]);
        assert_ok(sockit_settimeout(cs[i], 10.0));
        assert_ok(sockit_connect(cs[i], "127.0.0.1", port));
    }
    /* Every request is queued before the server starts, so it never waits. */
    for (int i = 0; started && i < k; i++)
        assert_ok(sockit_send(cs[udp ? 0 : i], "Hello server!", 13, 0));
    if (started)
        assert_int_equal(write(to_child[1], "g", 1), 1);
    char ans[64];
    for (int i = 0; started && i < k; i++) {
        ssize_t n = sockit_recv(cs[udp ? 0 : i], ans, sizeof ans - 1, 0);
        assert_ok(n);
        ans[n] = '\0';
        assert_string_equal(ans, udp ? "Hello server!" : REPLY);
    }
    for (int i = 0; i < nc; i++)
        sockit_close(cs[i]);
    free(cs);
    close(to_child[1]);
    close(from_child[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!started || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        unlink(trace);
        fail_msg("traced server: started %d, exit status %d (127: strace missing)", started,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }

    FILE *f = fopen(trace, "r");
    assert_non_null(f);
    memset(out, 0, sizeof *out);
    char text[4096];
    while (fgets(text, sizeof text, f) != NULL) {
        /* "name(args) = result"; signal and exit notes start with --- and +++. */
        char *paren = strchr(text, '(');
        if (text[0] == '-' || text[0] == '+' || paren == NULL)
            continue;
        *paren = '\0';
        tally(out, text);
    }
    fclose(f);
    unlink(trace);
}

/* Asserts that k more requests cost exactly per calls each, and names the calls
 * that differ when they do not. */
static void check_per_request(const char *kind, int n, int per)
{
    count one, two;
    run_traced(kind, n, &one);
    run_traced(kind, 2 * n, &two);
    int extra = two.total - one.total;
    if (extra != per * n) {
        for (int i = 0; i < two.nnames; i++) {
            int d = two.calls[i] - calls_of(&one, two.names[i]);
            if (d != 0)
                print_message("%s: %+d for %d more requests\n", two.names[i], d, n);
        }
        fail_msg("%s: %d system calls for %d more requests, want %d each (%.2f)", kind, extra, n,
                 per, (double)extra / n);
    }
}

static void test_sequential_one_shot_connection_costs_accept_recv_send_close(void **state)
{
    (void)state;
    check_per_request("tcp", 100, 4);
}

static void test_sequential_datagram_costs_recvfrom_and_sendto(void **state)
{
    (void)state;
    check_per_request("udp", 50, 2);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--serve") == 0)
        return serve(argv[2], atoi(argv[3]));
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 2;
    self[n] = '\0';
    const struct CMUnitTest tests[] = {
        harness_test(test_sequential_one_shot_connection_costs_accept_recv_send_close),
        harness_test(test_sequential_datagram_costs_recvfrom_and_sendto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
