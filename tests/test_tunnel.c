/* Connections through a proxy (sockit.h sections 6 and 10): sockit_create_connection_via
 * and sockit_stream_connect_via, against real proxies and a scripted one.
 *
 * The real ones are the Debian packages microsocks and dante-server (SOCKS5) and
 * tinyproxy (HTTP CONNECT), each started by the test on a free loopback port with a
 * config file in a temporary directory, and killed (with its whole process group)
 * when the test ends, however it ends. Behind them an echo target on 127.0.0.1 and
 * ::1 greets every connection with a banner and echoes: an exchange through the
 * tunnel reads the banner, then 64 KiB of every byte value both ways.
 *
 * The scripted proxy (a thread) does what real ones will not: every SOCKS5 reply code,
 * odd address types, the target's first bytes in the reply's own segment, HTTP
 * statuses, garbage, oversized headers, hanging up or never answering; and it keeps
 * what it received, so the bytes of the greeting, RFC 1929's sub-negotiation, the
 * SOCKS5 request and the CONNECT request are checked exactly.
 *
 * Runs once per backend (CTest entries test_tunnel_epoll, _poll, _uring). */
#include "harness.h"
#include "internal.h"
#include "loop_harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char BANNER[] = "sockit-echo\n";

/* ---- small things ----------------------------------------------------------------- */

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

static void assert_lacks(const char *text, const char *part)
{
    if (strstr(text, part) != NULL)
        fail_msg("\"%s\" contains \"%s\"", text, part);
}

/* The reason ends the message once: a layer that re-sets a message it got must not
 * have it appended again. */
static void assert_reason_once(const char *msg, int code)
{
    const char *reason = sockit_strerror(code);
    const char *first = strstr(msg, reason);
    if (first == NULL || strstr(first + 1, reason) != NULL)
        fail_msg("\"%s\" does not name \"%s\" exactly once", msg, reason);
}

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A socket bound to the loopback address of family at port (0: a free one),
 * listening unless listening is false (then a connect to it is refused, and holding
 * it keeps the port from a parallel test). -1 if the port is taken. */
static int loopback_socket(int family, int port, bool listening)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons((uint16_t)port);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons((uint16_t)port);
        len = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || (listening && listen(fd, 64) < 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A port nothing is bound to right now (a proxy started on it may still lose a race
 * for it: its start is retried). */
static int free_port(void)
{
    int fd = loopback_socket(AF_INET, 0, false);
    assert_true(fd >= 0);
    int port = port_of(fd);
    close(fd);
    return port;
}

static int send_all(int fd, const void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Bytes of every value, different for each seed. */
static void fill(unsigned char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(i * 7 + seed + i / 251);
}

/* What the test started and has not stopped yet, stopped by the teardown whatever
 * way the test ended (a failed assertion leaves the test function at once). */
enum { MAX_OWNED = 8 };
typedef struct echo_target echo_target;
typedef struct fake_proxy fake_proxy;
typedef struct real_proxy real_proxy;
static struct {
    echo_target *echo[MAX_OWNED];
    fake_proxy *fake[MAX_OWNED];
    real_proxy *real[MAX_OWNED];
} owned;

static void own(void **slots, void *p)
{
    for (int i = 0; i < MAX_OWNED; i++)
        if (slots[i] == NULL) {
            slots[i] = p;
            return;
        }
    fail_msg("more than %d helpers of one kind in one test", MAX_OWNED);
}

static void disown(void **slots, void *p)
{
    for (int i = 0; i < MAX_OWNED; i++)
        if (slots[i] == p)
            slots[i] = NULL;
}

/* ---- the echo target ---------------------------------------------------------------
 * One thread, one poll loop: the listeners (127.0.0.1 and ::1 on one port, where ::1
 * exists), the connections, and a pipe that stops it. Every connection gets BANNER
 * first, then its bytes back. */

enum { ECHO_MAX_CONNS = 32 };
struct echo_target {
    int lfd[2];
    int port;
    int stop[2];
    pthread_t th;
};

static void *echo_main(void *arg)
{
    echo_target *e = arg;
    int conns[ECHO_MAX_CONNS];
    size_t n = 0;
    for (;;) {
        struct pollfd p[3 + ECHO_MAX_CONNS];
        size_t k = 0;
        p[k++] = (struct pollfd){.fd = e->stop[0], .events = POLLIN};
        for (int i = 0; i < 2; i++)
            if (e->lfd[i] >= 0)
                p[k++] = (struct pollfd){.fd = e->lfd[i], .events = POLLIN};
        size_t first = k;
        for (size_t i = 0; i < n; i++)
            p[k++] = (struct pollfd){.fd = conns[i], .events = POLLIN};
        if (poll(p, k, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents != 0)
            break;
        size_t old_n = n;
        for (size_t i = first; i < k; i++) {
            if (p[i].revents == 0)
                continue;
            char buf[16384];
            ssize_t r = recv(p[i].fd, buf, sizeof buf, 0);
            if (r > 0 && send_all(p[i].fd, buf, (size_t)r) == 0)
                continue;
            close(p[i].fd);
            conns[i - first] = -1;
        }
        size_t kept = 0;
        for (size_t i = 0; i < old_n; i++)
            if (conns[i] >= 0)
                conns[kept++] = conns[i];
        n = kept;
        for (size_t i = 1; i < first; i++) {
            if ((p[i].revents & POLLIN) == 0)
                continue;
            int c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0)
                continue;
            if (n == ECHO_MAX_CONNS || send_all(c, BANNER, sizeof BANNER - 1) < 0) {
                close(c);
                continue;
            }
            conns[n++] = c;
        }
    }
    for (size_t i = 0; i < n; i++)
        close(conns[i]);
    return NULL;
}

static echo_target *echo_start(void)
{
    echo_target *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->lfd[0] = e->lfd[1] = -1;
    /* The same port on ::1 too, so "localhost" works whichever address it names. */
    for (int attempt = 0; attempt < 20; attempt++) {
        e->lfd[0] = loopback_socket(AF_INET, 0, true);
        assert_true(e->lfd[0] >= 0);
        e->port = port_of(e->lfd[0]);
        if (!have_ipv6_loopback())
            break;
        e->lfd[1] = loopback_socket(AF_INET6, e->port, true);
        if (e->lfd[1] >= 0)
            break;
        close(e->lfd[0]);
        e->lfd[0] = -1;
    }
    assert_true(e->lfd[0] >= 0);
    assert_int_equal(pipe2(e->stop, O_CLOEXEC), 0);
    assert_int_equal(pthread_create(&e->th, NULL, echo_main, e), 0);
    own((void **)owned.echo, e);
    return e;
}

static void echo_stop(echo_target *e)
{
    disown((void **)owned.echo, e);
    (void)!write(e->stop[1], "x", 1);
    pthread_join(e->th, NULL);
    for (int i = 0; i < 2; i++)
        if (e->lfd[i] >= 0)
            close(e->lfd[i]);
    close(e->stop[0]);
    close(e->stop[1]);
    free(e);
}

/* ---- the real proxies ------------------------------------------------------------- */

typedef enum { MICROSOCKS, DANTE, TINYPROXY } proxy_kind;
struct real_proxy {
    proxy_kind kind;
    pid_t pid;
    int port;
    char dir[64];
    char path[128]; /* scratch for file names in dir */
};

static const char *in_dir(real_proxy *p, const char *name)
{
    snprintf(p->path, sizeof p->path, "%s/%s", p->dir, name);
    return p->path;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Writes p's config (for p->port) into its directory and fills argv, whose strings
 * live in port_text, conf and the arguments. user NULL: no authentication. */
static void proxy_argv(real_proxy *p, const char *user, const char *password, char *port_text,
                       char *conf, size_t conf_size, const char **argv)
{
    snprintf(port_text, 8, "%d", p->port);
    snprintf(conf, conf_size, "%s/proxy.conf", p->dir);
    char text[1024];
    size_t a = 0;
    switch (p->kind) {
    case MICROSOCKS:
        argv[a++] = "/usr/bin/microsocks";
        argv[a++] = "-i";
        argv[a++] = "127.0.0.1";
        argv[a++] = "-p";
        argv[a++] = port_text;
        if (user != NULL) {
            argv[a++] = "-u";
            argv[a++] = user;
            argv[a++] = "-P";
            argv[a++] = password;
        }
        break;
    case DANTE:
        /* "username" checks the system's password database: no such user passes, so
         * dante serves the missing and wrong credentials cases only. */
        snprintf(text, sizeof text,
                 "logoutput: %s/proxy.log\n"
                 "internal: 127.0.0.1 port = %d\n"
                 "external: 127.0.0.1\n"
                 "clientmethod: none\n"
                 "socksmethod: %s\n"
                 "%s"
                 "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
                 "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n",
                 p->dir, p->port, user != NULL ? "username" : "none",
                 geteuid() == 0 ? "user.privileged: root\nuser.unprivileged: root\n" : "");
        write_file(conf, text);
        argv[a++] = "/usr/sbin/danted";
        argv[a++] = "-f";
        argv[a++] = conf;
        argv[a++] = "-N";
        argv[a++] = "1";
        break;
    case TINYPROXY: {
        char auth[600] = "";
        if (user != NULL)
            snprintf(auth, sizeof auth, "BasicAuth %s %s\n", user, password);
        /* No ConnectPort line: CONNECT to every port. */
        snprintf(text, sizeof text,
                 "Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 32\n%s",
                 p->port, auth);
        write_file(conf, text);
        argv[a++] = "/usr/bin/tinyproxy";
        argv[a++] = "-d";
        argv[a++] = "-c";
        argv[a++] = conf;
        break;
    }
    }
    argv[a] = NULL;
}

static bool accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The proxy's output, for the message of a start that failed. */
static void print_log(real_proxy *p)
{
    static const char *const names[] = {"proxy.log", "stderr.log"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(in_dir(p, names[i]), "re");
        if (f == NULL)
            continue;
        char line[512];
        while (fgets(line, sizeof line, f) != NULL)
            print_message("  %s: %s", names[i], line);
        fclose(f);
    }
}

static pid_t spawn(real_proxy *p, const char *const *argv)
{
    int log = open(in_dir(p, "stderr.log"), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    assert_true(log >= 0);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawnattr_init(&attr), 0);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, log, 1);
    posix_spawn_file_actions_adddup2(&fa, log, 2);
    /* Its own process group, so the teardown ends dante's children with it. */
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t defaults, none;
    sigfillset(&defaults);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    /* Whatever it writes to TMPDIR stays in its directory. */
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 2, sizeof *env);
    assert_non_null(env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "TMPDIR=", 7) != 0)
            env[k++] = environ[i];
    char tmpdir[80];
    snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", p->dir);
    env[k++] = tmpdir;
    env[k] = NULL;
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &attr, (char *const *)argv, env);
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(log);
    if (rc != 0)
        fail_msg("cannot start %s: %s (scripts/deps.sh installs it)", argv[0], strerror(rc));
    return pid;
}

/* Ends the process group and waits for its leader. */
static void reap(pid_t pid)
{
    kill(-pid, SIGTERM);
    double until = harness_now() + 3.0;
    while (waitpid(pid, NULL, WNOHANG) == 0) {
        if (harness_now() > until) {
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
            break;
        }
        poll(NULL, 0, 10);
    }
    kill(-pid, SIGKILL); /* a child that outlived its leader */
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        char path[400];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void proxy_stop(real_proxy *p)
{
    disown((void **)owned.real, p);
    if (p->pid > 0)
        reap(p->pid);
    remove_dir(p->dir);
    free(p);
}

/* Starts a proxy of kind on a free loopback port and waits (at most 5 s) until it
 * accepts connections. user NULL: no authentication. */
static real_proxy *proxy_start(proxy_kind kind, const char *user, const char *password)
{
    real_proxy *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->kind = kind;
    snprintf(p->dir, sizeof p->dir, "/tmp/sockit-tunnel-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    own((void **)owned.real, p);
    for (int attempt = 0; attempt < 5; attempt++) {
        p->port = free_port();
        char port_text[8], conf[128];
        const char *argv[12];
        proxy_argv(p, user, password, port_text, conf, sizeof conf, argv);
        p->pid = spawn(p, argv);
        double until = harness_now() + 5.0;
        bool died = false;
        while (harness_now() < until) {
            if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
                died = true; /* most likely the port was taken meanwhile: again */
                break;
            }
            if (accepts(p->port))
                return p;
            poll(NULL, 0, 20);
        }
        if (!died) {
            print_log(p);
            fail_msg("%s did not accept connections on port %d within 5 s", argv[0], p->port);
        }
        kill(-p->pid, SIGKILL);
        p->pid = 0;
    }
    print_log(p);
    fail_msg("the proxy exited at start five times");
    return NULL;
}

static void proxy_url(const real_proxy *p, const char *scheme, const char *credentials, char *buf,
                      size_t size)
{
    snprintf(buf, size, "%s://%s%s127.0.0.1:%d", scheme, credentials != NULL ? credentials : "",
             credentials != NULL ? "@" : "", p->port);
}

/* ---- the scripted proxy ------------------------------------------------------------
 * A thread serving its connections one after the other: the handshake as scripted,
 * then an echo of whatever comes until the client goes. What it received is kept per
 * phase; the test reads it after fake_stop (or fake_received while it runs). */

typedef enum {
    FAKE_SOCKS5,
    FAKE_HTTP,
    FAKE_SILENT, /* reads, never answers */
} fake_mode;

typedef struct fake_script {
    fake_mode mode;
    int family;                  /* AF_INET (0) or AF_INET6 */
    unsigned char version;       /* SOCKS5: first byte of its answers (0: 5) */
    unsigned char method;        /* SOCKS5: the method it picks */
    unsigned char auth_status;   /* SOCKS5: the sub-negotiation's status */
    unsigned char rep;           /* SOCKS5: the request's reply code */
    unsigned char atyp;          /* SOCKS5: the reply's address type (0: 1) */
    bool hang_up_after_greeting; /* SOCKS5: reads the greeting and closes */
    const char *response;        /* HTTP: its answer to the request */
    bool hang_up_after_response; /* HTTP: closes right after it */
    const char *after;           /* the target's first bytes, in the reply's send() */
} fake_script;

struct fake_proxy {
    fake_script script;
    int lfd, port, stop[2];
    pthread_t th;
    pthread_mutex_t mu;
    int received; /* bytes received in all (under mu) */
    unsigned char greeting[260];
    size_t greeting_len;
    unsigned char auth[520];
    size_t auth_len;
    unsigned char request[300];
    size_t request_len;
    char http[16384];
    size_t http_len;
};

static void count(fake_proxy *f, size_t n)
{
    pthread_mutex_lock(&f->mu);
    f->received += (int)n;
    pthread_mutex_unlock(&f->mu);
}

static int fake_received(fake_proxy *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->received;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Reads exactly n bytes into buf; false on end of stream, an error or a stop. */
static bool fake_read(fake_proxy *f, int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = f->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (p[1].revents != 0)
            return false;
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
        count(f, (size_t)r);
    }
    return true;
}

/* Sends back what comes until the client goes (or the test stops the proxy). */
static void fake_echo(fake_proxy *f, int fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = f->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (p[1].revents != 0)
            return;
        char buf[4096];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0 || send_all(fd, buf, (size_t)r) < 0)
            return;
        count(f, (size_t)r);
    }
}

static void fake_socks5(fake_proxy *f, int fd)
{
    const fake_script *s = &f->script;
    if (!fake_read(f, fd, f->greeting, 2) || !fake_read(f, fd, f->greeting + 2, f->greeting[1]))
        return;
    f->greeting_len = 2 + (size_t)f->greeting[1];
    if (s->hang_up_after_greeting)
        return;
    unsigned char version = s->version != 0 ? s->version : 5;
    unsigned char choice[2] = {version, s->method};
    if (send_all(fd, choice, 2) < 0)
        return;
    if (version != 5 || s->method == 0xff) {
        fake_echo(f, fd); /* until the client gives up */
        return;
    }
    if (s->method == 0x02) {
        unsigned char *a = f->auth;
        if (!fake_read(f, fd, a, 2) || !fake_read(f, fd, a + 2, a[1] + 1u) ||
            !fake_read(f, fd, a + 3 + a[1], a[2 + a[1]]))
            return;
        f->auth_len = 3 + (size_t)a[1] + a[2 + a[1]];
        unsigned char status[2] = {1, s->auth_status};
        if (send_all(fd, status, 2) < 0)
            return;
        if (s->auth_status != 0) {
            fake_echo(f, fd);
            return;
        }
    }
    unsigned char *q = f->request;
    if (!fake_read(f, fd, q, 5))
        return;
    size_t rest = q[3] == 1 ? 3 + 2 : q[3] == 4 ? 15 + 2 : q[3] == 3 ? q[4] + 2u : 0;
    if (rest == 0 || !fake_read(f, fd, q + 5, rest))
        return;
    f->request_len = 5 + rest;
    unsigned char reply[400];
    size_t n = 0;
    unsigned char atyp = s->atyp != 0 ? s->atyp : 1;
    reply[n++] = 5;
    reply[n++] = s->rep;
    reply[n++] = 0;
    reply[n++] = atyp;
    if (atyp == 1) {
        static const unsigned char v4[] = {127, 0, 0, 1};
        memcpy(reply + n, v4, 4);
        n += 4;
    } else if (atyp == 4) {
        memset(reply + n, 0, 15);
        reply[n + 15] = 1;
        n += 16;
    } else if (atyp == 3) {
        static const char name[] = "bound.example";
        reply[n++] = (unsigned char)(sizeof name - 1);
        memcpy(reply + n, name, sizeof name - 1);
        n += sizeof name - 1;
    } else {
        memset(reply + n, 0, 4); /* an unknown type: whatever follows */
        n += 4;
    }
    reply[n++] = 0x10;
    reply[n++] = 0x92;
    if (s->after != NULL) {
        memcpy(reply + n, s->after, strlen(s->after));
        n += strlen(s->after);
    }
    if (send_all(fd, reply, n) == 0)
        fake_echo(f, fd);
}

static void fake_http(fake_proxy *f, int fd)
{
    const fake_script *s = &f->script;
    while (f->http_len + 1 < sizeof f->http) {
        if (!fake_read(f, fd, f->http + f->http_len, 1))
            return;
        f->http_len++;
        f->http[f->http_len] = '\0';
        if (f->http_len >= 4 && memcmp(f->http + f->http_len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    size_t rlen = strlen(s->response), alen = s->after != NULL ? strlen(s->after) : 0;
    char *out = malloc(rlen + alen);
    if (out == NULL)
        return;
    memcpy(out, s->response, rlen);
    if (alen > 0)
        memcpy(out + rlen, s->after, alen);
    int rc = send_all(fd, out, rlen + alen);
    free(out);
    if (rc == 0 && !s->hang_up_after_response)
        fake_echo(f, fd);
}

/* Takes what comes and says nothing. */
static void fake_silent(fake_proxy *f, int fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = f->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (p[1].revents != 0)
            return;
        char buf[256];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            return;
        count(f, (size_t)r);
    }
}

static void *fake_main(void *arg)
{
    fake_proxy *f = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = f->lfd, .events = POLLIN},
                              {.fd = f->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[1].revents != 0)
            return NULL;
        int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        switch (f->script.mode) {
        case FAKE_SOCKS5:
            fake_socks5(f, fd);
            break;
        case FAKE_HTTP:
            fake_http(f, fd);
            break;
        case FAKE_SILENT:
            fake_silent(f, fd);
            break;
        }
        close(fd);
    }
}

static fake_proxy *fake_start(const fake_script *script)
{
    fake_proxy *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->script = *script;
    f->lfd = loopback_socket(script->family == AF_INET6 ? AF_INET6 : AF_INET, 0, true);
    assert_true(f->lfd >= 0);
    f->port = port_of(f->lfd);
    assert_int_equal(pipe2(f->stop, O_CLOEXEC), 0);
    pthread_mutex_init(&f->mu, NULL);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
    own((void **)owned.fake, f);
    return f;
}

/* Stops the thread; what it received stays readable until fake_free. */
static void fake_stop(fake_proxy *f)
{
    if (f->lfd < 0)
        return;
    disown((void **)owned.fake, f);
    (void)!write(f->stop[1], "x", 1);
    pthread_join(f->th, NULL);
    close(f->lfd);
    close(f->stop[0]);
    close(f->stop[1]);
    f->lfd = -1;
    pthread_mutex_destroy(&f->mu);
}

static void fake_free(fake_proxy *f)
{
    fake_stop(f);
    free(f);
}

static void fake_url(const fake_proxy *f, const char *scheme, const char *credentials, char *buf,
                     size_t size)
{
    bool v6 = f->script.family == AF_INET6;
    snprintf(buf, size, "%s://%s%s%s:%d", scheme, credentials != NULL ? credentials : "",
             credentials != NULL ? "@" : "", v6 ? "[::1]" : "127.0.0.1", f->port);
}

/* ---- the resolver hook --------------------------------------------------------------
 * "nosuch.test" fails at once, "slow.test" sleeps (until released, at most 5 s) and
 * fails; every other name, and every numeric-only try, goes to the system's
 * getaddrinfo. */

static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hook_cv = PTHREAD_COND_INITIALIZER;
static int hook_in_flight;
static bool hook_release;

static int hook_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                            struct addrinfo **res)
{
    /* The numeric try comes first, in the caller's thread: it must not sleep. */
    if (node == NULL || (hints != NULL && (hints->ai_flags & AI_NUMERICHOST)))
        return getaddrinfo(node, service, hints, res);
    if (strcmp(node, "nosuch.test") == 0)
        return EAI_NONAME;
    if (strcmp(node, "slow.test") == 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock(&hook_mu);
        hook_in_flight++;
        pthread_cond_broadcast(&hook_cv);
        while (!hook_release)
            if (pthread_cond_timedwait(&hook_cv, &hook_mu, &until) != 0)
                break;
        hook_in_flight--;
        pthread_cond_broadcast(&hook_cv);
        pthread_mutex_unlock(&hook_mu);
        return EAI_NONAME;
    }
    return getaddrinfo(node, service, hints, res);
}

static void hook_install(void)
{
    pthread_mutex_lock(&hook_mu);
    hook_release = false;
    pthread_mutex_unlock(&hook_mu);
    sockit__set_getaddrinfo(hook_getaddrinfo);
}

static int hook_sleeping(void)
{
    pthread_mutex_lock(&hook_mu);
    int n = hook_in_flight;
    pthread_mutex_unlock(&hook_mu);
    return n;
}

/* ---- the fixture ------------------------------------------------------------------ */

static int tunnel_teardown(void **state)
{
    for (int i = 0; i < MAX_OWNED; i++) {
        if (owned.fake[i] != NULL)
            fake_stop(owned.fake[i]); /* its memory is left: the test may still point at it */
        if (owned.echo[i] != NULL)
            echo_stop(owned.echo[i]);
        if (owned.real[i] != NULL)
            proxy_stop(owned.real[i]);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&hook_mu);
    hook_release = true;
    pthread_cond_broadcast(&hook_cv);
    while (hook_in_flight > 0)
        if (pthread_cond_timedwait(&hook_cv, &hook_mu, &until) != 0)
            break;
    int sleeping = hook_in_flight;
    pthread_mutex_unlock(&hook_mu);
    sockit__set_getaddrinfo(NULL);
    if (sleeping > 0) {
        print_error("a lookup was still inside the resolver hook 5 s after the test\n");
        return -1;
    }
    return harness_fd_teardown(state);
}

#define tunnel_test(t) cmocka_unit_test_setup_teardown(t, harness_fd_setup, tunnel_teardown)

/* ---- the blocking side -------------------------------------------------------------- */

enum { CHUNK = 4096, CHUNKS = 16 };

/* Reads first (the banner, or the bytes the proxy sent with its reply) as the first
 * recv's whole answer, then 64 KiB of every byte value go out and come back. */
static void blocking_exchange(sockit *s, const char *first)
{
    assert_ok(sockit_settimeout(s, 5));
    size_t flen = strlen(first);
    char got[64] = {0};
    assert_int_equal(sockit_recv(s, got, sizeof got, 0), (ssize_t)flen);
    assert_memory_equal(got, first, flen);
    unsigned char out[CHUNK], in[CHUNK];
    for (unsigned k = 0; k < CHUNKS; k++) {
        fill(out, sizeof out, k);
        assert_int_equal(sockit_sendall(s, out, sizeof out, 0, NULL), (ssize_t)sizeof out);
        assert_int_equal(sockit_recv_exact(s, in, sizeof in, NULL), (ssize_t)sizeof in);
        assert_memory_equal(in, out, sizeof out);
    }
}

/* The blocking call fails with code, its message holding part and not absent. */
static void blocking_fails(const char *proxy, const char *host, int port, double timeout, int code,
                           const char *part, const char *absent)
{
    sockit *s = sockit_create_connection_via(proxy, host, port, timeout, NULL);
    if (s != NULL) {
        sockit_close(s);
        fail_msg("connect through %s to %s:%d worked; expected %s", proxy, host, port,
                 sockit_errname(code));
    }
    assert_code(sockit_errcode(), code);
    assert_reason_once(sockit_errmsg(), code);
    if (part != NULL)
        assert_contains(sockit_errmsg(), part);
    if (absent != NULL)
        assert_lacks(sockit_errmsg(), absent);
}

/* ---- the loop side ------------------------------------------------------------------ */

/* True while the test is inside sockit_stream_connect_via or sockit_connector_cancel. */
static bool in_call;

typedef struct via_run {
    sockit_connector *c;
    int done_calls;
    int code;
    sockit_stream *st;
    bool done_inside_call;
    bool user_pointer_ok;
    bool early_callback; /* a callback of the stream's came before done */
    char msg[1024];
    char first[64];
    size_t first_len;
    int data_calls;
    unsigned char rx[CHUNK * CHUNKS + 64];
    size_t rx_len;
    bool eof, closed;
    int error;
} via_run;

static void run_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    via_run *r = user;
    if (r->done_calls == 0)
        r->early_callback = true;
    if (r->data_calls++ == 0) {
        r->first_len = len < sizeof r->first ? len : sizeof r->first;
        memcpy(r->first, data, r->first_len);
    }
    size_t room = sizeof r->rx - r->rx_len;
    size_t n = len < room ? len : room;
    memcpy(r->rx + r->rx_len, data, n);
    r->rx_len += n;
}

static void run_eof(sockit_stream *st, void *user)
{
    (void)st;
    via_run *r = user;
    if (r->done_calls == 0)
        r->early_callback = true;
    r->eof = true;
}

static void run_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    via_run *r = user;
    if (r->done_calls == 0)
        r->early_callback = true;
    r->error = code;
}

static void run_close(sockit_stream *st, void *user)
{
    (void)st;
    via_run *r = user;
    if (r->done_calls == 0)
        r->early_callback = true;
    r->closed = true;
}

static const sockit_stream_callbacks run_callbacks = {
    .on_data = run_data,
    .on_eof = run_eof,
    .on_error = run_error,
    .on_close = run_close,
};

static void run_done(sockit_connector *c, sockit_stream *st, int code, void *user)
{
    (void)c;
    via_run *r = user;
    r->done_calls++;
    r->code = code;
    r->st = st;
    r->done_inside_call = in_call;
    snprintf(r->msg, sizeof r->msg, "%s", code < 0 ? sockit_errmsg() : "");
    if (st != NULL)
        r->user_pointer_ok = sockit_stream_user(st) == r;
    r->c = NULL; /* freed when done returns */
}

static via_run *via_new(void)
{
    via_run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    return r;
}

static void via_start(via_run *r, sockit_loop *loop, const char *proxy, const char *host, int port,
                      double timeout)
{
    in_call = true;
    r->c = sockit_stream_connect_via(loop, proxy, host, port, timeout, NULL, &run_callbacks,
                                     run_done, r);
    in_call = false;
    assert_sock(r->c);
    assert_int_equal(r->done_calls, 0);
}

/* Runs the loop until done (at most secs); checks done's promises; returns its code. */
static int via_wait(via_run *r, sockit_loop *loop, double secs)
{
    RUN_UNTIL(loop, r->done_calls > 0, secs);
    assert_int_equal(r->done_calls, 1);
    assert_false(r->done_inside_call);
    assert_false(r->early_callback);
    if (r->code == 0) {
        assert_non_null(r->st);
        assert_true(r->user_pointer_ok);
    } else {
        assert_null(r->st);
    }
    return r->code;
}

static int via_connect(via_run *r, sockit_loop *loop, const char *proxy, const char *host, int port,
                       double timeout)
{
    via_start(r, loop, proxy, host, port, timeout);
    return via_wait(r, loop, timeout < 0 ? 10 : timeout + 5);
}

/* The first on_data is first exactly (the stream is raw: no framing holds the bytes
 * back), then 64 KiB go out and come back. */
static void loop_exchange(via_run *r, sockit_loop *loop, const char *first)
{
    size_t flen = strlen(first);
    RUN_UNTIL(loop, r->rx_len >= flen, 5);
    assert_int_equal(r->first_len, flen);
    assert_memory_equal(r->first, first, flen);
    unsigned char *out = malloc(CHUNK * CHUNKS);
    assert_non_null(out);
    for (unsigned k = 0; k < CHUNKS; k++)
        fill(out + k * CHUNK, CHUNK, k);
    assert_ok(sockit_stream_write(r->st, out, CHUNK * CHUNKS));
    RUN_UNTIL(loop, r->rx_len >= flen + CHUNK * CHUNKS || r->closed, 10);
    assert_int_equal(r->rx_len, flen + CHUNK * CHUNKS);
    assert_memory_equal(r->rx + flen, out, CHUNK * CHUNKS);
    free(out);
    assert_int_equal(r->error, 0);
}

static void via_close(via_run *r, sockit_loop *loop)
{
    if (r->st != NULL && !r->closed) {
        sockit_stream_close(r->st, 0);
        RUN_UNTIL(loop, r->closed, 5);
        assert_true(r->closed);
    }
    r->st = NULL;
}

/* The loop's connect fails with code, its message holding part and not absent. */
static void loop_fails(const char *proxy, const char *host, int port, double timeout, int code,
                       const char *part, const char *absent)
{
    sockit_loop *loop = new_loop();
    via_run *r = via_new();
    int rc = via_connect(r, loop, proxy, host, port, timeout);
    if (rc == 0) {
        via_close(r, loop);
        fail_msg("connect on the loop through %s to %s:%d worked; expected %s", proxy, host, port,
                 sockit_errname(code));
    }
    if (rc != code)
        fail_msg("connect on the loop through %s: %s, expected %s (%s)", proxy, sockit_errname(rc),
                 sockit_errname(code), r->msg);
    assert_reason_once(r->msg, code);
    if (part != NULL)
        assert_contains(r->msg, part);
    if (absent != NULL)
        assert_lacks(r->msg, absent);
    free(r);
    close_loop(loop);
}

static void both_fail(const char *proxy, const char *host, int port, double timeout, int code,
                      const char *part, const char *absent)
{
    blocking_fails(proxy, host, port, timeout, code, part, absent);
    loop_fails(proxy, host, port, timeout, code, part, absent);
}

/* Through proxy to host:port: the blocking call and the loop's each open a tunnel
 * whose first bytes are first and which carries 64 KiB both ways. */
static void both_work(const char *proxy, const char *host, int port, const char *first)
{
    sockit *s = sockit_create_connection_via(proxy, host, port, 5, NULL);
    assert_sock(s);
    blocking_exchange(s, first);
    sockit_close(s);

    sockit_loop *loop = new_loop();
    via_run *r = via_new();
    assert_ok(via_connect(r, loop, proxy, host, port, 5));
    loop_exchange(r, loop, first);
    via_close(r, loop);
    free(r);
    close_loop(loop);
}

/* ---- through real proxies ------------------------------------------------------------ */

static void through_real_socks5(proxy_kind kind)
{
    echo_target *e = echo_start();
    real_proxy *p = proxy_start(kind, NULL, NULL);
    char url[128];
    proxy_url(p, "socks5", NULL, url, sizeof url);
    both_work(url, "127.0.0.1", e->port, BANNER);
    both_work(url, "localhost", e->port, BANNER); /* resolved here, an address sent */
    proxy_url(p, "socks5h", NULL, url, sizeof url);
    both_work(url, "localhost", e->port, BANNER); /* the name sent */
    proxy_stop(p);
    echo_stop(e);
}

static void test_socks5_and_socks5h_through_microsocks_carry_bytes_both_ways(void **state)
{
    (void)state;
    through_real_socks5(MICROSOCKS);
}

static void test_socks5_and_socks5h_through_dante_carry_bytes_both_ways(void **state)
{
    (void)state;
    through_real_socks5(DANTE);
}

static void test_http_connect_through_tinyproxy_carries_bytes_both_ways(void **state)
{
    (void)state;
    echo_target *e = echo_start();
    real_proxy *p = proxy_start(TINYPROXY, NULL, NULL);
    char url[128];
    proxy_url(p, "http", NULL, url, sizeof url);
    both_work(url, "127.0.0.1", e->port, BANNER);
    both_work(url, "localhost", e->port, BANNER);
    proxy_stop(p);
    echo_stop(e);
}

static void test_microsocks_takes_the_right_password_and_refuses_others(void **state)
{
    (void)state;
    echo_target *e = echo_start();
    real_proxy *p = proxy_start(MICROSOCKS, "bob", "s3cret");
    char url[128];
    proxy_url(p, "socks5", "bob:s3cret", url, sizeof url);
    both_work(url, "127.0.0.1", e->port, BANNER);
    proxy_url(p, "socks5h", "bob:s3cret", url, sizeof url);
    both_work(url, "localhost", e->port, BANNER);
    /* A wrong password is refused in the sub-negotiation; none offered, in the
     * greeting (0xff). Neither message shows a password. */
    proxy_url(p, "socks5", "bob:wrong-pw", url, sizeof url);
    both_fail(url, "127.0.0.1", e->port, 5, SOCKIT_EPROXYAUTH, "refused user 'bob'", "wrong-pw");
    proxy_url(p, "socks5", NULL, url, sizeof url);
    both_fail(url, "127.0.0.1", e->port, 5, SOCKIT_EPROXYAUTH, "none of our methods", NULL);
    proxy_stop(p);
    echo_stop(e);
}

static void test_dante_with_username_refuses_missing_and_unknown_credentials(void **state)
{
    (void)state;
    echo_target *e = echo_start();
    real_proxy *p = proxy_start(DANTE, "unused", "unused");
    char url[128];
    proxy_url(p, "socks5", NULL, url, sizeof url);
    both_fail(url, "127.0.0.1", e->port, 5, SOCKIT_EPROXYAUTH, "none of our methods", NULL);
    proxy_url(p, "socks5h", "no-such-user:hunter2", url, sizeof url);
    both_fail(url, "localhost", e->port, 5, SOCKIT_EPROXYAUTH, "refused user 'no-such-user'",
              "hunter2");
    proxy_stop(p);
    echo_stop(e);
}

static void test_tinyproxy_takes_the_right_password_and_refuses_others(void **state)
{
    (void)state;
    echo_target *e = echo_start();
    real_proxy *p = proxy_start(TINYPROXY, "bob", "s3cret");
    char url[128];
    proxy_url(p, "http", "bob:s3cret", url, sizeof url);
    both_work(url, "127.0.0.1", e->port, BANNER);
    /* Missing: 407. Wrong: tinyproxy 1.11 answers "401 Unauthorized". */
    proxy_url(p, "http", NULL, url, sizeof url);
    both_fail(url, "127.0.0.1", e->port, 5, SOCKIT_EPROXYAUTH, "407", NULL);
    proxy_url(p, "http", "bob:wrong-pw", url, sizeof url);
    both_fail(url, "127.0.0.1", e->port, 5, SOCKIT_EPROXYAUTH, "401", "wrong-pw");
    proxy_stop(p);
    echo_stop(e);
}

static void test_a_target_nobody_listens_on_is_the_proxys_refusal(void **state)
{
    (void)state;
    int closed = loopback_socket(AF_INET, 0, false);
    assert_true(closed >= 0);
    int port = port_of(closed);
    char url[128];
    /* SOCKS5 reply 5 is the errno a direct connect gives. */
    static const proxy_kind socks[] = {MICROSOCKS, DANTE};
    for (size_t i = 0; i < 2; i++) {
        real_proxy *p = proxy_start(socks[i], NULL, NULL);
        proxy_url(p, "socks5", NULL, url, sizeof url);
        both_fail(url, "127.0.0.1", port, 5, -ECONNREFUSED, "SOCKS5 reply 5", NULL);
        proxy_stop(p);
    }
    /* tinyproxy says "500 Unable to connect", which tells nothing more precise than
     * that the proxy failed. */
    real_proxy *p = proxy_start(TINYPROXY, NULL, NULL);
    proxy_url(p, "http", NULL, url, sizeof url);
    both_fail(url, "127.0.0.1", port, 5, SOCKIT_EPROXY, "500 Unable to connect", NULL);
    proxy_stop(p);
    close(closed);
}

static void test_a_proxy_that_is_not_listening_is_refused_by_its_address(void **state)
{
    (void)state;
    int closed = loopback_socket(AF_INET, 0, false);
    assert_true(closed >= 0);
    char url[128], where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port_of(closed));
    static const char *const schemes[] = {"socks5", "socks5h", "http"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "%s://%s", schemes[i], where);
        both_fail(url, "127.0.0.1", 80, 5, -ECONNREFUSED, where, NULL);
    }
    close(closed);
}

/* ---- the scripted proxy: SOCKS5 --------------------------------------------------------- */

static void test_socks5_reply_codes_map_to_errnos(void **state)
{
    (void)state;
    static const struct {
        unsigned char rep;
        int code;
        const char *text;
    } cases[] = {
        {1, SOCKIT_EPROXY, "general SOCKS server failure"},
        {2, -EACCES, "not allowed by ruleset"},
        {3, -ENETUNREACH, "network unreachable"},
        {4, -EHOSTUNREACH, "host unreachable"},
        {5, -ECONNREFUSED, "connection refused"},
        {6, -ETIMEDOUT, "TTL expired"},
        {7, SOCKIT_EPROXY, "command not supported"},
        {8, SOCKIT_EPROXY, "address type not supported"},
        {9, SOCKIT_EPROXY, "SOCKS5 reply 9"},
        {0xff, SOCKIT_EPROXY, "SOCKS5 reply 255"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .rep = cases[i].rep});
        char url[128];
        fake_url(f, "socks5", NULL, url, sizeof url);
        both_fail(url, "127.0.0.1", 4242, 5, cases[i].code, cases[i].text, NULL);
        assert_contains(sockit_errmsg(), "127.0.0.1:4242 through socks5://127.0.0.1:");
        fake_free(f);
    }
}

static void test_socks5_replies_with_a_name_or_an_ipv6_address_open_the_tunnel(void **state)
{
    (void)state;
    static const unsigned char types[] = {3, 4};
    for (size_t i = 0; i < 2; i++) {
        fake_proxy *f =
            fake_start(&(fake_script){.mode = FAKE_SOCKS5, .atyp = types[i], .after = "HELLO"});
        char url[128];
        fake_url(f, "socks5h", NULL, url, sizeof url);
        both_work(url, "example.test", 443, "HELLO");
        fake_free(f);
    }
    /* An address type RFC 1928 does not have. */
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .atyp = 9});
    char url[128];
    fake_url(f, "socks5h", NULL, url, sizeof url);
    both_fail(url, "example.test", 443, 5, SOCKIT_EPROXY, "unknown address type", NULL);
    fake_free(f);
}

static void test_socks5_target_bytes_in_the_replys_segment_come_first(void **state)
{
    (void)state;
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .after = "HELLO"});
    char url[128];
    fake_url(f, "socks5", NULL, url, sizeof url);
    both_work(url, "127.0.0.1", 4242, "HELLO");
    /* With credentials, the reply after the sub-negotiation likewise. */
    fake_free(f);
    f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .method = 2, .after = "HELLO"});
    fake_url(f, "socks5", "u:p", url, sizeof url);
    both_work(url, "127.0.0.1", 4242, "HELLO");
    fake_free(f);
}

static void test_socks5_protocol_violations_are_eproxy(void **state)
{
    (void)state;
    char url[128];
    /* Not SOCKS5 at all (an HTTP proxy's first byte). */
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .version = 'H'});
    fake_url(f, "socks5", NULL, url, sizeof url);
    both_fail(url, "127.0.0.1", 4242, 5, SOCKIT_EPROXY, "does not speak SOCKS5", NULL);
    fake_free(f);
    /* A method it was not offered: user/password without credentials, or GSSAPI. */
    static const unsigned char methods[] = {0x02, 0x01};
    for (size_t i = 0; i < 2; i++) {
        f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .method = methods[i]});
        fake_url(f, "socks5", NULL, url, sizeof url);
        both_fail(url, "127.0.0.1", 4242, 5, SOCKIT_EPROXY, "did not offer", NULL);
        fake_free(f);
    }
    /* 0xff: none acceptable, which means it wants credentials. */
    f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .method = 0xff});
    fake_url(f, "socks5", NULL, url, sizeof url);
    both_fail(url, "127.0.0.1", 4242, 5, SOCKIT_EPROXYAUTH, "user and password", NULL);
    fake_free(f);
    /* A refused sub-negotiation. */
    f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .method = 2, .auth_status = 1});
    fake_url(f, "socks5", "u:topsecret", url, sizeof url);
    both_fail(url, "127.0.0.1", 4242, 5, SOCKIT_EPROXYAUTH, "refused user 'u'", "topsecret");
    fake_free(f);
}

static void test_socks5_greeting_offers_user_password_only_with_credentials(void **state)
{
    (void)state;
    char url[128];
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SOCKS5});
    fake_url(f, "socks5", NULL, url, sizeof url);
    sockit *s = sockit_create_connection_via(url, "127.0.0.1", 4242, 5, NULL);
    assert_sock(s);
    sockit_close(s);
    fake_stop(f);
    assert_int_equal(f->greeting_len, 3);
    assert_memory_equal(f->greeting, "\x05\x01\x00", 3);
    assert_int_equal(f->auth_len, 0);
    fake_free(f);

    /* %-escaped credentials go decoded into RFC 1929's sub-negotiation. */
    f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .method = 2});
    fake_url(f, "socks5", "us%3Aer:p%40ss", url, sizeof url);
    s = sockit_create_connection_via(url, "127.0.0.1", 4242, 5, NULL);
    assert_sock(s);
    sockit_close(s);
    fake_stop(f);
    assert_int_equal(f->greeting_len, 4);
    assert_memory_equal(f->greeting, "\x05\x02\x00\x02", 4);
    static const unsigned char auth[] = {1, 5, 'u', 's', ':', 'e', 'r', 4, 'p', '@', 's', 's'};
    assert_int_equal(f->auth_len, sizeof auth);
    assert_memory_equal(f->auth, auth, sizeof auth);
    fake_free(f);

    /* The loop sends the same. */
    f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .method = 2});
    fake_url(f, "socks5", "us%3Aer:p%40ss", url, sizeof url);
    sockit_loop *loop = new_loop();
    via_run *r = via_new();
    assert_ok(via_connect(r, loop, url, "127.0.0.1", 4242, 5));
    via_close(r, loop);
    close_loop(loop);
    free(r);
    fake_stop(f);
    assert_int_equal(f->greeting_len, 4);
    assert_memory_equal(f->greeting, "\x05\x02\x00\x02", 4);
    assert_int_equal(f->auth_len, sizeof auth);
    assert_memory_equal(f->auth, auth, sizeof auth);
    fake_free(f);
}

/* The request a connect through a scripted SOCKS5 proxy sent it, blocking or on the
 * loop. */
static void socks5_request(const char *scheme, int family, const char *host, bool on_loop,
                           unsigned char *request, size_t *len)
{
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .family = family});
    char url[128];
    fake_url(f, scheme, NULL, url, sizeof url);
    if (on_loop) {
        sockit_loop *loop = new_loop();
        via_run *r = via_new();
        assert_ok(via_connect(r, loop, url, host, 4242, 5));
        via_close(r, loop);
        close_loop(loop);
        free(r);
    } else {
        sockit *s = sockit_create_connection_via(url, host, 4242, 5, NULL);
        assert_sock(s);
        sockit_close(s);
    }
    fake_stop(f);
    memcpy(request, f->request, f->request_len);
    *len = f->request_len;
    fake_free(f);
}

static void test_socks5_sends_addresses_and_socks5h_sends_names(void **state)
{
    (void)state;
    /* What this host's resolver makes of "localhost" (the first answer is sent). */
    sockit_addrinfo ai;
    assert_true(sockit_getaddrinfo("localhost", "4242", AF_UNSPEC, SOCK_STREAM, 0, &ai, 1) == 1);
    static const unsigned char v4[] = {5, 1, 0, 1, 127, 0, 0, 1, 0x10, 0x92};
    unsigned char v6[4 + 16 + 2] = {5, 1, 0, 4};
    v6[4 + 15] = 1; /* ::1 */
    v6[20] = 0x10;
    v6[21] = 0x92;
    static const unsigned char name[] = {5,   1,   0,   3,   9,   'l', 'o',  'c',
                                         'a', 'l', 'h', 'o', 's', 't', 0x10, 0x92};
    unsigned char req[300];
    size_t len;
    for (int on_loop = 0; on_loop < 2; on_loop++) {
        socks5_request("socks5", AF_INET, "127.0.0.1", on_loop, req, &len);
        assert_int_equal(len, sizeof v4);
        assert_memory_equal(req, v4, sizeof v4);
        socks5_request("socks5", AF_INET, "localhost", on_loop, req, &len);
        if (ai.family == AF_INET) {
            assert_int_equal(len, sizeof v4);
            assert_memory_equal(req, v4, sizeof v4);
        } else {
            assert_int_equal(len, sizeof v6);
            assert_memory_equal(req, v6, sizeof v6);
        }
        socks5_request("socks5", AF_INET, "::1", on_loop, req, &len);
        assert_int_equal(len, sizeof v6);
        assert_memory_equal(req, v6, sizeof v6);
        socks5_request("socks5h", AF_INET, "localhost", on_loop, req, &len);
        assert_int_equal(len, sizeof name);
        assert_memory_equal(req, name, sizeof name);
        if (have_ipv6_loopback()) { /* the proxy itself at [::1] */
            socks5_request("socks5h", AF_INET6, "localhost", on_loop, req, &len);
            assert_int_equal(len, sizeof name);
            assert_memory_equal(req, name, sizeof name);
        }
    }
}

static void test_a_socks5_target_name_that_does_not_resolve_says_so(void **state)
{
    (void)state;
    hook_install();
    /* Resolved before the proxy is reached: the proxy need not exist. */
    blocking_fails("socks5://127.0.0.1:9", "nosuch.test", 80, 5, SOCKIT_EAI_NONAME, "socks5h://",
                   NULL);
    /* On the loop, after the connect to the proxy. */
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SILENT});
    char url[128];
    fake_url(f, "socks5", NULL, url, sizeof url);
    loop_fails(url, "nosuch.test", 80, 5, SOCKIT_EAI_NONAME, "socks5h://", NULL);
    fake_free(f);
}

/* ---- the scripted proxy: HTTP ------------------------------------------------------------ */

static void test_http_target_bytes_after_the_header_come_first(void **state)
{
    (void)state;
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.0 200 Connection established\r\nProxy-Agent: fake\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n", /* any 2xx */
        "HTTP/1.1 200 OK\n\n",             /* bare line feeds */
    };
    for (size_t i = 0; i < sizeof responses / sizeof responses[0]; i++) {
        fake_proxy *f = fake_start(
            &(fake_script){.mode = FAKE_HTTP, .response = responses[i], .after = "HELLO"});
        char url[128];
        fake_url(f, "http", NULL, url, sizeof url);
        both_work(url, "example.test", 443, "HELLO");
        fake_free(f);
    }
}

static void test_http_statuses_map_to_codes(void **state)
{
    (void)state;
    static const struct {
        const char *response;
        int code;
        const char *text;
    } cases[] = {
        {"HTTP/1.1 407 Proxy Authentication Required\r\n"
         "Proxy-Authenticate: Basic realm=\"x\"\r\n\r\n",
         SOCKIT_EPROXYAUTH, "407 Proxy Authentication Required"},
        {"HTTP/1.1 401 Unauthorized\r\n\r\n", SOCKIT_EPROXYAUTH, "401 Unauthorized"},
        {"HTTP/1.1 403 Forbidden\r\n\r\n", -EACCES, "403 Forbidden"},
        {"HTTP/1.1 502 Bad Gateway\r\n\r\n", -ECONNREFUSED, "502 Bad Gateway"},
        {"HTTP/1.1 504 Gateway Timeout\r\n\r\n", -ETIMEDOUT, "504"},
        {"HTTP/1.1 500 Internal Server Error\r\n\r\n", SOCKIT_EPROXY, "500"},
        {"HTTP/1.1 301 Moved\r\nLocation: x\r\n\r\n", SOCKIT_EPROXY, "301"},
        {"SSH-2.0-OpenSSH_9.2\r\n\r\n", SOCKIT_EPROXY, "not an HTTP/1 response"},
        {"HTTP/2 200\r\n\r\n", SOCKIT_EPROXY, "not an HTTP/1 response"},
        {"\x05\x01\r\n\r\n", SOCKIT_EPROXY, "not an HTTP/1 response"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_proxy *f =
            fake_start(&(fake_script){.mode = FAKE_HTTP, .response = cases[i].response});
        char url[128];
        fake_url(f, "http", NULL, url, sizeof url);
        both_fail(url, "example.test", 443, 5, cases[i].code, cases[i].text, NULL);
        assert_contains(sockit_errmsg(), "example.test:443 through http://127.0.0.1:");
        fake_free(f);
    }
}

/* A 200 response whose header is exactly size bytes (padded in header lines of at
 * most line bytes). */
static char *header_of(size_t size, size_t line)
{
    static const char status[] = "HTTP/1.1 200 OK\r\n";
    char *h = malloc(size + 1);
    assert_non_null(h);
    size_t n = sizeof status - 1;
    memcpy(h, status, n);
    while (n < size - 2) {
        size_t left = size - 2 - n;
        size_t len = left < line ? left : line;
        if (left - len > 0 && left - len < 5)
            len = left - 5; /* keep room for one more line's "X:" and "\r\n" */
        assert_true(len >= 5);
        h[n] = 'X';
        h[n + 1] = ':';
        memset(h + n + 2, 'a', len - 4);
        memcpy(h + n + len - 2, "\r\n", 2);
        n += len;
    }
    memcpy(h + n, "\r\n", 2);
    h[size] = '\0';
    assert_int_equal(strlen(h), size);
    return h;
}

static void test_http_header_over_8192_bytes_is_eproxy(void **state)
{
    (void)state;
    char url[128];
    /* Exactly 8192 bytes are accepted, as many lines or one long one. */
    static const size_t lines[] = {100, 8000};
    for (size_t i = 0; i < 2; i++) {
        char *ok = header_of(8192, lines[i]);
        fake_proxy *f =
            fake_start(&(fake_script){.mode = FAKE_HTTP, .response = ok, .after = "HI"});
        fake_url(f, "http", NULL, url, sizeof url);
        both_work(url, "example.test", 443, "HI");
        fake_free(f);
        free(ok);
    }
    /* One more byte is too many, however it comes: many short lines, one long line,
     * a line over the limit on its own. */
    static const size_t over[][2] = {{8193, 100}, {8193, 8000}, {9000, 8998}};
    for (size_t i = 0; i < 3; i++) {
        char *big = header_of(over[i][0], over[i][1]);
        fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_HTTP, .response = big});
        fake_url(f, "http", NULL, url, sizeof url);
        both_fail(url, "example.test", 443, 5, SOCKIT_EPROXY, "over 8192 bytes", NULL);
        fake_free(f);
        free(big);
    }
}

static void test_http_request_carries_the_target_and_decoded_credentials(void **state)
{
    (void)state;
    char url[128];
    for (int on_loop = 0; on_loop < 2; on_loop++) {
        static const struct {
            const char *credentials;
            const char *host;
            const char *expect;
        } cases[] = {
            {NULL, "localhost", "CONNECT localhost:4242 HTTP/1.1\r\nHost: localhost:4242\r\n\r\n"},
            {"a%40b:p%3Ass", "localhost",
             "CONNECT localhost:4242 HTTP/1.1\r\nHost: localhost:4242\r\n"
             "Proxy-Authorization: Basic YUBiOnA6c3M=\r\n\r\n"}, /* base64("a@b:p:ss") */
            {"bob:s3cret", "::1",
             "CONNECT [::1]:4242 HTTP/1.1\r\nHost: [::1]:4242\r\n"
             "Proxy-Authorization: Basic Ym9iOnMzY3JldA==\r\n\r\n"},
            {NULL, "192.0.2.7", "CONNECT 192.0.2.7:4242 HTTP/1.1\r\nHost: 192.0.2.7:4242\r\n\r\n"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            fake_proxy *f = fake_start(
                &(fake_script){.mode = FAKE_HTTP, .response = "HTTP/1.1 200 OK\r\n\r\n"});
            fake_url(f, "http", cases[i].credentials, url, sizeof url);
            if (on_loop) {
                sockit_loop *loop = new_loop();
                via_run *r = via_new();
                assert_ok(via_connect(r, loop, url, cases[i].host, 4242, 5));
                via_close(r, loop);
                close_loop(loop);
                free(r);
            } else {
                sockit *s = sockit_create_connection_via(url, cases[i].host, 4242, 5, NULL);
                assert_sock(s);
                sockit_close(s);
            }
            fake_stop(f);
            assert_string_equal(f->http, cases[i].expect);
            fake_free(f);
        }
    }
}

/* ---- hanging up, never answering ---------------------------------------------------------- */

static void test_a_proxy_closing_mid_handshake_is_eproxy(void **state)
{
    (void)state;
    char url[128];
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SOCKS5, .hang_up_after_greeting = true});
    fake_url(f, "socks5", NULL, url, sizeof url);
    both_fail(url, "127.0.0.1", 4242, 5, SOCKIT_EPROXY, "closed the connection", NULL);
    fake_free(f);
    f = fake_start(&(fake_script){
        .mode = FAKE_HTTP, .response = "HTTP/1.1 200 OK\r\n", .hang_up_after_response = true});
    fake_url(f, "http", NULL, url, sizeof url);
    both_fail(url, "127.0.0.1", 4242, 5, SOCKIT_EPROXY, "closed the connection", NULL);
    fake_free(f);
}

static void test_a_proxy_that_never_answers_times_out(void **state)
{
    (void)state;
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SILENT});
    static const char *const schemes[] = {"socks5", "socks5h", "http"};
    for (size_t i = 0; i < 3; i++) {
        char url[128];
        fake_url(f, schemes[i], NULL, url, sizeof url);
        double t0 = harness_now();
        blocking_fails(url, "127.0.0.1", 4242, 0.3, SOCKIT_ETIMEOUT, "did not finish in time",
                       NULL);
        double spent = harness_now() - t0;
        assert_true(spent >= 0.2 && spent < 3.0);
        t0 = harness_now();
        loop_fails(url, "127.0.0.1", 4242, 0.3, SOCKIT_ETIMEOUT, "did not finish in time", NULL);
        spent = harness_now() - t0;
        assert_true(spent >= 0.2 && spent < 3.0);
    }
    /* No time at all: the proxy is reached (numeric, on loopback) but cannot answer. */
    char url[128];
    fake_url(f, "socks5", NULL, url, sizeof url);
    blocking_fails(url, "127.0.0.1", 4242, 0, SOCKIT_ETIMEOUT, NULL, NULL);
    fake_free(f);
}

/* ---- URLs and targets ------------------------------------------------------------------- */

static void test_bad_proxy_urls_fail_at_once_without_showing_the_password(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int code;
    } cases[] = {
        {"ftp://x", -EINVAL},
        {"socks5://", -EINVAL},
        {"socks5://h:0", SOCKIT_EBADPORT},
        {"socks5://h:65536", SOCKIT_EBADPORT},
        {"socks5://h:abc", SOCKIT_EBADPORT},
        {"socks5://h:", SOCKIT_EBADPORT},
        {"http://[::1", -EINVAL},
        {"http://[::1]x", -EINVAL},
        {"socks5://h/path", -EINVAL},
        {"socks5://h?q", -EINVAL},
        {"socks5://:hunter2@h", -EINVAL},
        {"ftp://u:hunter2@x", -EINVAL},
        {"socks5://u:hunter2@", -EINVAL},
        {"socks5://u:hunter2@h:0", SOCKIT_EBADPORT},
        {"socks5://u:hunter2@h:abc", SOCKIT_EBADPORT},
        {"http://u:hunter2@[::1", -EINVAL},
        {"socks5://u:hunter2%zz@h", -EINVAL},
        {"socks5://u:hunter2@h/x", -EINVAL},
    };
    sockit_loop *loop = new_loop();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sockit *s = sockit_create_connection_via(cases[i].url, "127.0.0.1", 80, 5, NULL);
        if (s != NULL)
            fail_msg("proxy '%s' was taken", cases[i].url);
        assert_code(sockit_errcode(), cases[i].code);
        assert_lacks(sockit_errmsg(), "hunter2");
        via_run *r = via_new();
        in_call = true;
        sockit_connector *c = sockit_stream_connect_via(loop, cases[i].url, "127.0.0.1", 80, 5,
                                                        NULL, &run_callbacks, run_done, r);
        in_call = false;
        assert_null(c);
        assert_code(sockit_errcode(), cases[i].code);
        assert_lacks(sockit_errmsg(), "hunter2");
        free(r);
    }
    run_for(loop, 0.05);
    close_loop(loop);
}

static void test_default_ports_show_in_the_failure_when_nothing_listens(void **state)
{
    (void)state;
    /* 127.0.0.77: a loopback address no test listens on. */
    blocking_fails("socks5://127.0.0.77", "127.0.0.1", 80, 5, -ECONNREFUSED, "127.0.0.77:1080",
                   NULL);
    blocking_fails("socks5h://127.0.0.77", "127.0.0.1", 80, 5, -ECONNREFUSED, "127.0.0.77:1080",
                   NULL);
    blocking_fails("http://127.0.0.77", "127.0.0.1", 80, 5, -ECONNREFUSED, "127.0.0.77:3128", NULL);
    loop_fails("socks5://127.0.0.77", "127.0.0.1", 80, 5, -ECONNREFUSED, "127.0.0.77:1080", NULL);
    loop_fails("http://127.0.0.77", "127.0.0.1", 80, 5, -ECONNREFUSED, "127.0.0.77:3128", NULL);
}

static void test_a_null_or_empty_proxy_connects_directly(void **state)
{
    (void)state;
    echo_target *e = echo_start();
    both_work(NULL, "127.0.0.1", e->port, BANNER);
    both_work("", "localhost", e->port, BANNER);
    echo_stop(e);
}

static void test_targets_that_cannot_work_fail_at_once(void **state)
{
    (void)state;
    static const struct {
        const char *host;
        int port;
        int code;
    } cases[] = {
        {"unix:/x", 0, -EINVAL},
        {"unix:/x", 80, -EINVAL},
        {NULL, 80, -EINVAL},
        {"", 80, -EINVAL},
        {"127.0.0.1", 0, SOCKIT_EBADPORT},
        {"127.0.0.1", 65536, SOCKIT_EBADPORT},
        {"127.0.0.1", -1, SOCKIT_EBADPORT},
    };
    sockit_loop *loop = new_loop();
    static const char *const proxies[] = {"socks5://127.0.0.1:9", "http://127.0.0.1:9"};
    for (size_t p = 0; p < 2; p++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            assert_null(
                sockit_create_connection_via(proxies[p], cases[i].host, cases[i].port, 5, NULL));
            assert_code(sockit_errcode(), cases[i].code);
            via_run *r = via_new();
            assert_null(sockit_stream_connect_via(loop, proxies[p], cases[i].host, cases[i].port, 5,
                                                  NULL, &run_callbacks, run_done, r));
            assert_code(sockit_errcode(), cases[i].code);
            free(r);
        }
    close_loop(loop);

    /* A name SOCKS5 cannot carry (over 255 bytes) fails once the proxy is reached. */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SILENT});
    char url[128];
    fake_url(f, "socks5h", NULL, url, sizeof url);
    both_fail(url, longname, 80, 5, -EINVAL, "over 255 bytes", NULL);
    fake_free(f);
}

/* ---- the connector's life -------------------------------------------------------------------- */

/* A connect through a silent proxy, run until the proxy got the greeting. */
static void start_stuck(via_run *r, sockit_loop *loop, fake_proxy *f, const char *scheme)
{
    char url[128];
    fake_url(f, scheme, NULL, url, sizeof url);
    via_start(r, loop, url, "127.0.0.1", 4242, 10);
    RUN_UNTIL(loop, fake_received(f) > 0, 5);
    assert_true(fake_received(f) > 0);
    assert_int_equal(r->done_calls, 0);
}

static void cancel_now(via_run *r)
{
    in_call = true;
    sockit_connector_cancel(r->c);
    in_call = false;
    assert_int_equal(r->done_calls, 0); /* never from inside the cancel */
}

static void assert_cancelled(via_run *r, sockit_loop *loop)
{
    assert_code(via_wait(r, loop, 5), -ECANCELED);
    run_for(loop, 0.05);
    assert_int_equal(r->data_calls, 0);
    assert_false(r->closed);
    assert_int_equal(r->done_calls, 1);
}

static void test_cancel_during_the_proxy_handshake_ends_it(void **state)
{
    (void)state;
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SILENT});
    static const char *const schemes[] = {"socks5", "http"};
    for (size_t i = 0; i < 2; i++) {
        sockit_loop *loop = new_loop();
        via_run *r = via_new();
        start_stuck(r, loop, f, schemes[i]);
        cancel_now(r);
        assert_cancelled(r, loop);
        free(r);
        close_loop(loop);
    }
    fake_free(f);
}

static void cancel_soon(sockit_loop *loop, void *arg)
{
    (void)loop;
    cancel_now(arg);
}

static void cancel_on_timer(sockit_timer *t, void *arg)
{
    cancel_now(arg);
    sockit_timer_close(t);
}

static void test_cancel_from_a_deferred_call_or_a_timer_during_the_handshake(void **state)
{
    (void)state;
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SILENT});
    for (int how = 0; how < 2; how++) {
        sockit_loop *loop = new_loop();
        via_run *r = via_new();
        start_stuck(r, loop, f, "socks5");
        if (how == 0) {
            assert_ok(sockit_loop_call_soon(loop, cancel_soon, r));
        } else {
            sockit_timer *t = sockit_timer_new(loop, cancel_on_timer, r);
            assert_sock(t);
            assert_ok(sockit_timer_start(t, 0.01, 0));
        }
        assert_cancelled(r, loop);
        free(r);
        close_loop(loop);
    }
    fake_free(f);
}

static void test_cancel_while_the_target_name_resolves(void **state)
{
    (void)state;
    hook_install();
    fake_proxy *f = fake_start(&(fake_script){.mode = FAKE_SILENT});
    char url[128];
    fake_url(f, "socks5", NULL, url, sizeof url);
    sockit_loop *loop = new_loop();
    via_run *r = via_new();
    via_start(r, loop, url, "slow.test", 80, 10);
    RUN_UNTIL(loop, hook_sleeping() > 0, 5);
    assert_int_equal(hook_sleeping(), 1);
    cancel_now(r);
    assert_cancelled(r, loop);
    free(r);
    close_loop(loop); /* the lookup still sleeps: the loop need not wait for it */
    fake_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tunnel_test(test_socks5_and_socks5h_through_microsocks_carry_bytes_both_ways),
        tunnel_test(test_socks5_and_socks5h_through_dante_carry_bytes_both_ways),
        tunnel_test(test_http_connect_through_tinyproxy_carries_bytes_both_ways),
        tunnel_test(test_microsocks_takes_the_right_password_and_refuses_others),
        tunnel_test(test_dante_with_username_refuses_missing_and_unknown_credentials),
        tunnel_test(test_tinyproxy_takes_the_right_password_and_refuses_others),
        tunnel_test(test_a_target_nobody_listens_on_is_the_proxys_refusal),
        tunnel_test(test_a_proxy_that_is_not_listening_is_refused_by_its_address),
        tunnel_test(test_socks5_reply_codes_map_to_errnos),
        tunnel_test(test_socks5_replies_with_a_name_or_an_ipv6_address_open_the_tunnel),
        tunnel_test(test_socks5_target_bytes_in_the_replys_segment_come_first),
        tunnel_test(test_socks5_protocol_violations_are_eproxy),
        tunnel_test(test_socks5_greeting_offers_user_password_only_with_credentials),
        tunnel_test(test_socks5_sends_addresses_and_socks5h_sends_names),
        tunnel_test(test_a_socks5_target_name_that_does_not_resolve_says_so),
        tunnel_test(test_http_target_bytes_after_the_header_come_first),
        tunnel_test(test_http_statuses_map_to_codes),
        tunnel_test(test_http_header_over_8192_bytes_is_eproxy),
        tunnel_test(test_http_request_carries_the_target_and_decoded_credentials),
        tunnel_test(test_a_proxy_closing_mid_handshake_is_eproxy),
        tunnel_test(test_a_proxy_that_never_answers_times_out),
        tunnel_test(test_bad_proxy_urls_fail_at_once_without_showing_the_password),
        tunnel_test(test_default_ports_show_in_the_failure_when_nothing_listens),
        tunnel_test(test_a_null_or_empty_proxy_connects_directly),
        tunnel_test(test_targets_that_cannot_work_fail_at_once),
        tunnel_test(test_cancel_during_the_proxy_handshake_ends_it),
        tunnel_test(test_cancel_from_a_deferred_call_or_a_timer_during_the_handshake),
        tunnel_test(test_cancel_while_the_target_name_resolves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
