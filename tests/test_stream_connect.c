/* The asynchronous connect and name resolution on the loop (sockit.h section 10):
 * sockit_stream_connect, sockit_connector_cancel, sockit_loop_getaddrinfo and
 * sockit_resolve_cancel. What is checked is what the header promises: done runs exactly
 * once, from the loop (never from inside the call that started it or from inside a
 * cancel), with a stream that carries the callbacks and user pointer given, or with NULL
 * and the code (the first attempt's reason, SOCKIT_ETIMEOUT, a SOCKIT_EAI_* code,
 * -ECANCELED) and a message naming the addresses; Happy Eyeballs falls over to the other
 * family and staggers attempts by 250 ms; one deadline covers resolution and every
 * attempt; arguments that can never work fail at once; a pending connect or lookup keeps
 * sockit_loop_run going; a lookup given up lets the loop close while the resolver still
 * sleeps. Runs once per backend (CTest entries test_stream_connect_epoll and
 * test_stream_connect_poll set SOCKIT_LOOP_BACKEND).
 *
 * Names go through the resolver test hook (internal.h): a hook that sleeps, fails or
 * answers scripted loopback addresses. Numeric hosts pass through it to the system's
 * getaddrinfo. Peers are plain sockits in the loop's thread, read without waiting
 * (MSG_DONTWAIT) between iterations or with a 2 s timeout once the bytes must be there;
 * every wait is bounded, and every test waits for its sleeping lookups to return before
 * it ends. Only loopback addresses are used. */
#include "harness.h"
#include "internal.h"
#include "loop_harness.h"

#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The pending connect's type (sockit.h: the struct behind sockit_stream_connect's
 * result and done's first argument). */
typedef sockit_connector pending_connect;

/* ---- addresses and peers -------------------------------------------------------- */

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

static sockit_addr ip_addr(const char *host, int port)
{
    sockit_addr a;
    assert_ok(sockit_addr_ip(&a, host, port));
    return a;
}

static int local_port(const sockit *s)
{
    sockit_addr a;
    assert_ok(sockit_getsockname(s, &a));
    return sockit_addr_port(&a);
}

/* A socket bound to host:port but not listening: connecting to it is refused, and
 * holding it keeps the port from being taken by a parallel test. NULL if the port is
 * taken. */
static sockit *refusing(int family, int port)
{
    sockit *s = sockit_socket(family, SOCK_STREAM);
    assert_sock(s);
    sockit_addr a = ip_addr(family == AF_INET6 ? "::1" : "127.0.0.1", port);
    if (sockit_bind_addr(s, &a) < 0) {
        sockit_close(s);
        return NULL;
    }
    return s;
}

/* A listener on host:port (port 0: a free one), or NULL if the port is taken. */
static sockit *listening(int family, int port)
{
    sockit *s = refusing(family, port);
    if (s != NULL)
        assert_ok(sockit_listen(s, 16));
    return s;
}

/* A listener that drops every SYN: backlog 0 with one connection already queued and
 * never accepted. Linux drops SYNs to a listener whose accept queue is full, so a
 * connect to it hangs until the client's own retries give up. */
typedef struct blackhole {
    sockit *listener;
    sockit *filler;
    int port;
} blackhole;

static void blackhole_open(blackhole *b)
{
    b->listener = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(b->listener);
    sockit_addr a = ip_addr("127.0.0.1", 0);
    assert_ok(sockit_bind_addr(b->listener, &a));
    assert_ok(sockit_listen(b->listener, 0));
    b->port = local_port(b->listener);
    b->filler = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(b->filler);
    a = ip_addr("127.0.0.1", b->port);
    assert_ok(sockit_connect_addr(b->filler, &a));
    /* The listener is readable once the filler sits in its accept queue. */
    struct pollfd p = {.fd = sockit_fileno(b->listener), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);
}

static void blackhole_close(blackhole *b)
{
    sockit_close(b->filler);
    sockit_close(b->listener);
}

/* Accepts the connection a done reported (it is in the listener's queue by then). */
static sockit *accept_peer(sockit *listener, sockit_addr *from)
{
    assert_ok(sockit_settimeout(listener, 2.0));
    sockit *p = sockit_accept(listener, from);
    assert_sock(p);
    assert_ok(sockit_settimeout(p, 2.0));
    return p;
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text, part);
}

/* ---- the resolver hook ----------------------------------------------------------
 * Numeric hosts (and lookups with AI_NUMERICHOST) go to the system's getaddrinfo; the
 * names below are scripted:
 *   slow.test      sleeps (up to hook.slow_secs, or until released), then EAI_NONAME
 *   slow-ok.test   sleeps likewise, then answers 127.0.0.1 with the port asked for
 *   nosuch.test    EAI_NONAME at once
 *   hN.test        sleeps 5 ms, then answers 127.0.0.(N+1) with the port asked for
 *   anything set with script_name(): its numeric entries, each with its own port
 * Every list comes from the system's getaddrinfo, so the system's freeaddrinfo frees
 * it (sockit__set_getaddrinfo with no free function). */

enum { MAX_SCRIPT = 4 };
typedef struct script_entry {
    const char *host; /* numeric */
    int port;         /* 0: the port asked for */
} script_entry;

static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hook_cv = PTHREAD_COND_INITIALIZER;
static struct {
    double slow_secs;
    bool release;           /* slow lookups return at once */
    int slow_started;       /* slow lookups that entered the hook */
    int in_flight;          /* slow lookups sleeping now */
    int name_calls;         /* calls for names (not numeric) */
    int numeric_off_thread; /* numeric lookups made outside the test's (the loop's) thread */
    pthread_t loop_thread;
    char script_host[64];
    script_entry script[MAX_SCRIPT];
    size_t script_len;
} hook;

/* Builds a list of numeric hosts (each with its port, or the asked service), in
 * order, keeping those of the family and type asked for. */
static int answer(const script_entry *e, size_t n, const char *service,
                  const struct addrinfo *hints, struct addrinfo **res)
{
    struct addrinfo *head = NULL, **tail = &head;
    for (size_t i = 0; i < n; i++) {
        struct addrinfo h = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_family = hints->ai_family,
                             .ai_socktype = hints->ai_socktype,
                             .ai_protocol = hints->ai_protocol};
        char port[16];
        const char *serv = service;
        if (e[i].port != 0) {
            snprintf(port, sizeof port, "%d", e[i].port);
            serv = port;
        } else if (serv == NULL) {
            serv = "0";
        }
        struct addrinfo *one = NULL;
        if (getaddrinfo(e[i].host, serv, &h, &one) != 0)
            continue;
        *tail = one;
        while (*tail != NULL)
            tail = &(*tail)->ai_next;
    }
    if (head == NULL)
        return EAI_NONAME;
    *res = head;
    return 0;
}

static void slow_wait(void)
{
    pthread_mutex_lock(&hook_mu);
    hook.slow_started++;
    hook.in_flight++;
    pthread_cond_broadcast(&hook_cv);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double secs = hook.slow_secs;
    until.tv_sec += (time_t)secs;
    until.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!hook.release)
        if (pthread_cond_timedwait(&hook_cv, &hook_mu, &until) != 0)
            break;
    hook.in_flight--;
    pthread_cond_broadcast(&hook_cv);
    pthread_mutex_unlock(&hook_mu);
}

static bool is_numeric(const char *node)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (node == NULL)
        return true;
    char host[64];
    snprintf(host, sizeof host, "%s", node);
    char *pct = strchr(host, '%');
    if (pct != NULL)
        *pct = '\0';
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int hook_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                            struct addrinfo **res)
{
    if ((hints != NULL && (hints->ai_flags & AI_NUMERICHOST)) || is_numeric(node)) {
        pthread_mutex_lock(&hook_mu);
        if (node != NULL && !pthread_equal(pthread_self(), hook.loop_thread))
            hook.numeric_off_thread++;
        pthread_mutex_unlock(&hook_mu);
        return getaddrinfo(node, service, hints, res);
    }
    static const struct addrinfo no_hints = {0};
    if (hints == NULL)
        hints = &no_hints;
    pthread_mutex_lock(&hook_mu);
    hook.name_calls++;
    bool scripted = hook.script_len > 0 && strcmp(node, hook.script_host) == 0;
    script_entry script[MAX_SCRIPT];
    size_t script_len = hook.script_len;
    memcpy(script, hook.script, sizeof script);
    pthread_mutex_unlock(&hook_mu);

    if (scripted)
        return answer(script, script_len, service, hints, res);
    if (strcmp(node, "slow.test") == 0) {
        slow_wait();
        return EAI_NONAME;
    }
    if (strcmp(node, "slow-ok.test") == 0) {
        slow_wait();
        return answer((script_entry[]){{"127.0.0.1", 0}}, 1, service, hints, res);
    }
    int n;
    char rest[16];
    if (sscanf(node, "h%d.%15s", &n, rest) == 2 && strcmp(rest, "test") == 0 && n >= 0 && n < 250) {
        struct timespec five = {0, 5 * 1000000L};
        nanosleep(&five, NULL);
        char host[32];
        snprintf(host, sizeof host, "127.0.0.%d", n + 1);
        return answer((script_entry[]){{host, 0}}, 1, service, hints, res);
    }
    return EAI_NONAME; /* nosuch.test and anything else */
}

/* Installs the hook with slow lookups sleeping secs. */
static void hook_install(double slow_secs)
{
    pthread_mutex_lock(&hook_mu);
    hook.slow_secs = slow_secs;
    hook.release = false;
    hook.slow_started = 0;
    hook.name_calls = 0;
    hook.numeric_off_thread = 0;
    hook.loop_thread = pthread_self();
    hook.script_len = 0;
    pthread_mutex_unlock(&hook_mu);
    sockit__set_getaddrinfo(hook_getaddrinfo);
}

static void script_name(const char *name, size_t n, const script_entry *entries)
{
    assert_true(n <= MAX_SCRIPT);
    pthread_mutex_lock(&hook_mu);
    snprintf(hook.script_host, sizeof hook.script_host, "%s", name);
    memcpy(hook.script, entries, n * sizeof *entries);
    hook.script_len = n;
    pthread_mutex_unlock(&hook_mu);
}

static int hook_get(const int *field)
{
    pthread_mutex_lock(&hook_mu);
    int v = *field;
    pthread_mutex_unlock(&hook_mu);
    return v;
}

/* Lets sleeping lookups return and waits (at most secs) until none is in the hook.
 * Returns whether they all returned. */
static bool hook_release_and_wait(double secs)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)secs;
    pthread_mutex_lock(&hook_mu);
    hook.release = true;
    pthread_cond_broadcast(&hook_cv);
    while (hook.in_flight > 0)
        if (pthread_cond_timedwait(&hook_cv, &hook_mu, &until) != 0)
            break;
    bool idle = hook.in_flight == 0;
    pthread_mutex_unlock(&hook_mu);
    return idle;
}

/* Waits (at most secs, running the loop) until n slow lookups have entered the hook. */
static void wait_slow_started(sockit_loop *loop, int n, double secs)
{
    RUN_UNTIL(loop, hook_get(&hook.slow_started) >= n, secs);
    assert_true(hook_get(&hook.slow_started) >= n);
}

/* Teardown of hooked tests: no lookup may still be inside the hook when the hook is
 * removed and the next test starts. */
static int hook_teardown(void **state)
{
    bool idle = hook_release_and_wait(5.0);
    sockit__set_getaddrinfo(NULL);
    if (!idle) {
        print_error("a lookup was still inside the resolver hook 5 s after the test\n");
        return -1;
    }
    return harness_fd_teardown(state);
}

#define hooked_test(t) cmocka_unit_test_setup_teardown(t, harness_fd_setup, hook_teardown)

/* ---- what a connect's done and its stream's callbacks saw ----------------------- */

enum { CREC_MAGIC = 0xc0ec };

/* True while the test is inside sockit_stream_connect, sockit_connector_cancel,
 * sockit_loop_getaddrinfo or sockit_resolve_cancel: a done that runs then runs from
 * inside the call. */
static bool in_call;
static int seq; /* orders done calls */

struct crec {
    int magic;
    pending_connect *c; /* what sockit_stream_connect returned */
    int done_calls;
    int inside;         /* done calls made from inside a call of the test */
    int wrong_thread;   /* done calls from another thread than the loop's */
    bool c_matched;     /* done's c was the pointer the call returned */
    sockit_stream *st;  /* done's stream; NULL again once on_close ran */
    sockit_stream *got; /* done's stream, kept */
    int code;
    char errmsg[1024]; /* sockit_errmsg() inside done */
    double started_at, done_at;
    int done_seq;
    void *st_user; /* sockit_stream_user(st) inside done */
    /* the stream's callbacks */
    char data[256];
    size_t len;
    int data_calls, data_before_done, wrong_user, eofs, errors, closes, late;
    /* what done does */
    bool cancel_in_done;
    bool close_in_done;
    struct crec *chain; /* done starts this connect */
    const char *chain_host;
    int chain_port;
    sockit_loop *loop;
};

static pthread_t test_thread;

static void crec_init(struct crec *r, sockit_loop *loop)
{
    memset(r, 0, sizeof *r);
    r->magic = CREC_MAGIC;
    r->loop = loop;
    r->code = 1; /* no done yet */
}

static struct crec *crec_of(void *user, int *wrong)
{
    struct crec *r = user;
    if (r == NULL || r->magic != CREC_MAGIC) {
        (*wrong)++;
        return NULL;
    }
    return r;
}

static int stray_user; /* stream callbacks whose user was not a crec */

static void st_on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    (void)st;
    struct crec *r = crec_of(user, &stray_user);
    if (r == NULL)
        return;
    r->data_calls++;
    r->late += r->closes;
    if (r->done_calls == 0)
        r->data_before_done++;
    if (st != r->got)
        r->wrong_user++;
    size_t keep = len < sizeof r->data - 1 - r->len ? len : sizeof r->data - 1 - r->len;
    memcpy(r->data + r->len, data, keep);
    r->len += keep;
    r->data[r->len] = '\0';
}

static void st_on_eof(sockit_stream *st, void *user)
{
    (void)st;
    struct crec *r = crec_of(user, &stray_user);
    if (r != NULL) {
        r->eofs++;
        r->late += r->closes;
    }
}

static void st_on_error(sockit_stream *st, int code, void *user)
{
    (void)st;
    (void)code;
    struct crec *r = crec_of(user, &stray_user);
    if (r != NULL) {
        r->errors++;
        r->late += r->closes;
    }
}

static void st_on_close(sockit_stream *st, void *user)
{
    struct crec *r = crec_of(user, &stray_user);
    if (r == NULL)
        return;
    if (st != r->got)
        r->wrong_user++;
    r->closes++;
    r->st = NULL;
}

static const sockit_stream_callbacks st_cb = {
    .on_data = st_on_data, .on_eof = st_on_eof, .on_error = st_on_error, .on_close = st_on_close};

static pending_connect *start_connect(sockit_loop *loop, const char *host, int port, double timeout,
                                      const sockit_addr *source, struct crec *r);

static void conn_done(pending_connect *c, sockit_stream *st, int code, void *user)
{
    struct crec *r = user;
    assert_non_null(r);
    assert_int_equal(r->magic, CREC_MAGIC);
    r->done_calls++;
    if (in_call)
        r->inside++;
    if (!pthread_equal(pthread_self(), test_thread))
        r->wrong_thread++;
    r->c_matched = c != NULL && c == r->c;
    r->st = st;
    r->got = st;
    r->code = code;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", sockit_errmsg());
    r->done_at = harness_now();
    r->done_seq = ++seq;
    if (st != NULL) {
        r->st_user = sockit_stream_user(st);
        assert_ptr_equal(sockit_stream_loop(st), r->loop);
    }
    if (r->cancel_in_done) {
        /* From inside done there is nothing to cancel: this must change nothing. */
        sockit_connector_cancel(c);
    }
    if (r->close_in_done && st != NULL)
        sockit_stream_close(st, 0);
    if (r->chain != NULL) {
        bool was = in_call;
        start_connect(r->loop, r->chain_host, r->chain_port, 5.0, NULL, r->chain);
        in_call = was;
        assert_non_null(r->chain->c);
    }
}

static pending_connect *start_connect(sockit_loop *loop, const char *host, int port, double timeout,
                                      const sockit_addr *source, struct crec *r)
{
    r->started_at = harness_now();
    in_call = true;
    pending_connect *c =
        sockit_stream_connect(loop, host, port, timeout, source, &st_cb, conn_done, r);
    in_call = false;
    r->c = c;
    return c;
}

static void cancel_connect(pending_connect *c)
{
    in_call = true;
    sockit_connector_cancel(c);
    in_call = false;
}

/* Asserts the connect r ran done once, from the loop, with a stream: the one whose
 * callbacks and user pointer were given. */
static void assert_connected(const struct crec *r)
{
    if (r->done_calls != 1 || r->code != 0)
        fail_msg("done ran %d times, code %d (%s): %s", r->done_calls, r->code,
                 sockit_errname(r->code), r->errmsg);
    assert_int_equal(r->inside, 0);
    assert_int_equal(r->wrong_thread, 0);
    assert_true(r->c_matched);
    assert_non_null(r->got);
    assert_ptr_equal(r->st_user, r);
}

/* Asserts the connect r ran done once, from the loop, with NULL and code. */
static void assert_failed(const struct crec *r, int code)
{
    if (r->done_calls != 1 || r->code != code)
        fail_msg("done ran %d times, code %d (%s), expected once with %d (%s): %s", r->done_calls,
                 r->code, sockit_errname(r->code), code, sockit_errname(code), r->errmsg);
    assert_int_equal(r->inside, 0);
    assert_int_equal(r->wrong_thread, 0);
    assert_true(r->c_matched);
    assert_null(r->got);
}

/* Starts a connect that must be pending (not NULL). */
static void start_pending(sockit_loop *loop, const char *host, int port, double timeout,
                          const sockit_addr *source, struct crec *r)
{
    pending_connect *c = start_connect(loop, host, port, timeout, source, r);
    if (c == NULL)
        fail_msg("sockit_stream_connect(%s, %d) returned NULL: %s (%s)", host ? host : "NULL", port,
                 sockit_errname(sockit_errcode()), sockit_errmsg());
    /* Never from inside the call. */
    assert_int_equal(r->done_calls, 0);
}

/* Writes a line on the stream, checks the peer gets it, answers, and checks the answer
 * reaches the stream's on_data. */
static void exchange(sockit_loop *loop, struct crec *r, sockit *peer)
{
    assert_ok(sockit_stream_write(r->st, "ping\n", 5));
    char buf[16];
    size_t got = 0;
    double until = harness_now() + 5.0;
    while (got < 5 && harness_now() < until) {
        sockit_loop_run_once(loop, 0.01);
        ssize_t n = sockit_recv(peer, buf + got, 5 - got, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0)
            got += (size_t)n;
    }
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "ping\n", 5);
    assert_int_equal(sockit_sendall(peer, "pong\n", 5, 0, NULL), 5);
    RUN_UNTIL(loop, r->len >= 5, 5.0);
    assert_int_equal(r->len, 5);
    assert_string_equal(r->data, "pong\n");
    assert_int_equal(r->wrong_user, 0);
    assert_int_equal(stray_user, 0);
    assert_int_equal(r->data_before_done, 0);
}

/* Closes the stream of r and waits for its on_close. */
static void close_stream(sockit_loop *loop, struct crec *r)
{
    assert_non_null(r->st);
    sockit_stream_close(r->st, 1.0);
    RUN_UNTIL(loop, r->closes == 1, 5.0);
    assert_int_equal(r->closes, 1);
    assert_int_equal(r->late, 0);
}

/* Connects to where, checks done and the exchange of bytes both ways, and cleans up. */
static void connect_and_exchange(const char *host, int port, sockit *listener,
                                 const sockit_addr *expect_peer)
{
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, host, port, 5.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_connected(&r);
    if (expect_peer != NULL) {
        sockit_addr p;
        assert_ok(sockit_stream_peer(r.st, &p));
        assert_true(sockit_addr_equal(&p, expect_peer));
    }
    sockit *peer = accept_peer(listener, NULL);
    exchange(loop, &r, peer);
    /* Exactly once: nothing more comes later. */
    run_for(loop, 0.05);
    assert_int_equal(r.done_calls, 1);
    close_stream(loop, &r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
}

/* ---- connecting ----------------------------------------------------------------- */

static void test_connect_to_an_ipv4_listener_delivers_a_stream_once_from_the_loop(void **state)
{
    (void)state;
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    int port = local_port(l);
    sockit_addr expect = ip_addr("127.0.0.1", port);
    connect_and_exchange("127.0.0.1", port, l, &expect);
    sockit_close(l);
}

static void test_connect_to_the_ipv6_loopback(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    sockit *l = listening(AF_INET6, 0);
    assert_non_null(l);
    int port = local_port(l);
    sockit_addr expect = ip_addr("::1", port);
    connect_and_exchange("::1", port, l, &expect);
    sockit_close(l);
}

static void test_connect_to_a_unix_path_and_a_missing_one(void **state)
{
    (void)state;
    char dir[] = "/tmp/sockit-sconn-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], target[140];
    snprintf(path, sizeof path, "%s/s", dir);
    snprintf(target, sizeof target, "unix:%s", path);

    /* Nothing there yet: not an argument that can never work, so done says why. */
    sockit_loop *loop = new_loop();
    struct crec miss;
    crec_init(&miss, loop);
    start_pending(loop, target, 0, 5.0, NULL, &miss);
    RUN_UNTIL(loop, miss.done_calls > 0, 5.0);
    assert_failed(&miss, -ENOENT);
    assert_contains(miss.errmsg, path);
    close_loop(loop);

    sockit *l = sockit_socket(AF_UNIX, SOCK_STREAM);
    assert_sock(l);
    sockit_addr a;
    assert_ok(sockit_addr_unix(&a, path));
    assert_ok(sockit_bind_addr(l, &a));
    assert_ok(sockit_listen(l, 4));
    connect_and_exchange(target, 0, l, &a);
    sockit_close(l);
    unlink(path);
    rmdir(dir);
}

static void test_connect_to_an_abstract_unix_name(void **state)
{
    (void)state;
    char name[64], target[80];
    snprintf(name, sizeof name, "@sockit-sconn-%d", (int)getpid());
    snprintf(target, sizeof target, "unix:%s", name);
    sockit *l = sockit_socket(AF_UNIX, SOCK_STREAM);
    assert_sock(l);
    sockit_addr a;
    assert_ok(sockit_addr_unix(&a, name));
    assert_ok(sockit_bind_addr(l, &a));
    assert_ok(sockit_listen(l, 4));
    connect_and_exchange(target, 0, l, &a);
    sockit_close(l);
}

/* A name through the system resolver (localhost is in /etc/hosts), and a NULL host,
 * which means loopback. */
static void test_connect_by_name_and_with_a_null_host(void **state)
{
    (void)state;
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    int port = local_port(l);
    sockit_addr expect = ip_addr("127.0.0.1", port);
    connect_and_exchange("localhost", port, l, &expect);
    /* NULL: loopback. ::1 may come first and be refused; 127.0.0.1 answers. */
    connect_and_exchange(NULL, port, l, &expect);
    sockit_close(l);
}

/* "timeout 0: one try that a loopback connect can win". */
static void test_timeout_zero_connects_to_a_numeric_loopback_listener(void **state)
{
    (void)state;
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "127.0.0.1", local_port(l), 0.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_connected(&r);
    close_stream(loop, &r);
    close_loop(loop);
    sockit_close(l);
}

/* The stream starts reading when done returns: bytes the peer sent before done ran
 * reach on_data after done, never before. */
static void test_bytes_sent_before_done_arrive_after_it(void **state)
{
    (void)state;
    char name[64], target[80];
    snprintf(name, sizeof name, "@sockit-sconn-early-%d", (int)getpid());
    snprintf(target, sizeof target, "unix:%s", name);
    sockit *l = sockit_socket(AF_UNIX, SOCK_STREAM);
    assert_sock(l);
    sockit_addr a;
    assert_ok(sockit_addr_unix(&a, name));
    assert_ok(sockit_bind_addr(l, &a));
    assert_ok(sockit_listen(l, 4));
    assert_ok(sockit_settimeout(l, 0));

    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, target, 0, 5.0, NULL, &r);
    /* Accept as soon as the kernel has the connection, and send at once; the loop may
     * or may not have run done by then. */
    sockit *peer = sockit_accept(l, NULL);
    double until = harness_now() + 5.0;
    while (peer == NULL && harness_now() < until) {
        sockit_loop_run_once(loop, 0.001);
        peer = sockit_accept(l, NULL);
    }
    assert_sock(peer);
    assert_ok(sockit_settimeout(peer, 2.0));
    assert_int_equal(sockit_sendall(peer, "early\n", 6, 0, NULL), 6);
    RUN_UNTIL(loop, r.len >= 6, 5.0);
    assert_connected(&r);
    assert_string_equal(r.data, "early\n");
    assert_int_equal(r.data_before_done, 0);
    assert_int_equal(r.wrong_user, 0);
    close_stream(loop, &r);
    assert_ok(sockit_close(peer));
    close_loop(loop);
    sockit_close(l);
}

/* ---- failing -------------------------------------------------------------------- */

static void test_refused_is_econnrefused_naming_the_address(void **state)
{
    (void)state;
    sockit *r4 = refusing(AF_INET, 0);
    assert_non_null(r4);
    int port = local_port(r4);
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "127.0.0.1", port, 5.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_failed(&r, -ECONNREFUSED);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_contains(r.errmsg, want);
    assert_contains(r.errmsg, "Connection refused");
    run_for(loop, 0.05);
    assert_int_equal(r.done_calls, 1);

    /* A port whose listener just closed. */
    sockit *gone = listening(AF_INET, 0);
    assert_non_null(gone);
    int gone_port = local_port(gone);
    assert_ok(sockit_close(gone));
    struct crec r2;
    crec_init(&r2, loop);
    start_pending(loop, "127.0.0.1", gone_port, 5.0, NULL, &r2);
    RUN_UNTIL(loop, r2.done_calls > 0, 5.0);
    assert_failed(&r2, -ECONNREFUSED);
    snprintf(want, sizeof want, "127.0.0.1:%d", gone_port);
    assert_contains(r2.errmsg, want);
    close_loop(loop);
    sockit_close(r4);
}

/* A v4 socket listening (or refusing) and a v6 one refusing (or listening) on one port.
 * Returns the port. */
static int dual_port(sockit **v4, bool v4_listens, sockit **v6, bool v6_listens)
{
    *v4 = *v6 = NULL;
    int port = 0;
    for (int i = 0; i < 50 && *v6 == NULL; i++) {
        sockit_close(*v4);
        *v4 = v4_listens ? listening(AF_INET, 0) : refusing(AF_INET, 0);
        assert_non_null(*v4);
        port = local_port(*v4);
        *v6 = v6_listens ? listening(AF_INET6, port) : refusing(AF_INET6, port);
    }
    assert_non_null(*v6);
    return port;
}

static void test_refused_on_both_families_names_every_address(void **state)
{
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    sockit *v4, *v6;
    int port = dual_port(&v4, false, &v6, false);
    hook_install(1.0);
    script_name("localhost", 2, (script_entry[]){{"::1", 0}, {"127.0.0.1", 0}});
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "localhost", port, 5.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_failed(&r, -ECONNREFUSED);
    char want6[64], want4[64];
    snprintf(want6, sizeof want6, "[::1]:%d", port);
    snprintf(want4, sizeof want4, "127.0.0.1:%d", port);
    assert_contains(r.errmsg, want6);
    assert_contains(r.errmsg, want4);
    assert_contains(r.errmsg, "localhost");
    assert_contains(r.errmsg, "Connection refused");
    close_loop(loop);
    sockit_close(v6);
    sockit_close(v4);
}

/* "localhost" resolving to ::1 and 127.0.0.1 where only one family listens: Happy
 * Eyeballs starts the other family's attempt as soon as the first one fails. */
static void falls_over(const char *name, bool v4_listens)
{
    if (!have_ipv6_loopback())
        skip();
    sockit *v4, *v6;
    int port = dual_port(&v4, v4_listens, &v6, !v4_listens);
    hook_install(1.0);
    /* The family that does not listen comes first. */
    if (v4_listens)
        script_name(name, 2, (script_entry[]){{"::1", 0}, {"127.0.0.1", 0}});
    else
        script_name(name, 2, (script_entry[]){{"127.0.0.1", 0}, {"::1", 0}});
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, name, port, 5.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_connected(&r);
    /* At once, not after the 250 ms stagger. */
    double took = r.done_at - r.started_at;
    if (took >= 0.2)
        fail_msg("the fall-over took %.3f s: the next attempt must start as soon as one fails",
                 took);
    sockit_addr p;
    assert_ok(sockit_stream_peer(r.st, &p));
    sockit_addr expect = ip_addr(v4_listens ? "127.0.0.1" : "::1", port);
    assert_true(sockit_addr_equal(&p, &expect));
    sockit *peer = accept_peer(v4_listens ? v4 : v6, NULL);
    exchange(loop, &r, peer);
    close_stream(loop, &r);
    sockit_close(peer);
    close_loop(loop);
    sockit_close(v6);
    sockit_close(v4);
}

static void test_happy_eyeballs_falls_over_from_ipv6_to_ipv4(void **state)
{
    (void)state;
    falls_over("localhost", true);
}

static void test_happy_eyeballs_falls_over_from_ipv4_to_ipv6(void **state)
{
    (void)state;
    falls_over("v4first.test", false);
}

/* An attempt that hangs does not hold up the next address: it starts 250 ms later. */
static void test_happy_eyeballs_starts_the_next_attempt_after_250_ms(void **state)
{
    (void)state;
    blackhole b;
    blackhole_open(&b);
    sockit *live = listening(AF_INET, 0);
    assert_non_null(live);
    int live_port = local_port(live);
    hook_install(1.0);
    script_name("eyeballs.test", 2,
                (script_entry[]){{"127.0.0.1", b.port}, {"127.0.0.1", live_port}});
    int fds_before = harness_count_fds();
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "eyeballs.test", 80, 10.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_connected(&r);
    double took = r.done_at - r.started_at;
    if (took < 0.2 || took >= 2.0)
        fail_msg("connected after %.3f s: the second attempt starts 250 ms after the first", took);
    sockit_addr p;
    assert_ok(sockit_stream_peer(r.st, &p));
    assert_int_equal(sockit_addr_port(&p), live_port);
    close_stream(loop, &r);
    close_loop(loop);
    /* The losing attempt was closed. */
    assert_int_equal(harness_count_fds(), fds_before);
    sockit_close(live);
    blackhole_close(&b);
}

/* One deadline covers resolution: a lookup that sleeps past it ends in SOCKIT_ETIMEOUT
 * on time, and the loop can be closed while the lookup still sleeps. */
static void test_the_deadline_covers_name_resolution(void **state)
{
    (void)state;
    hook_install(3.0);
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "slow.test", 80, 0.2, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_failed(&r, SOCKIT_ETIMEOUT);
    double took = r.done_at - r.started_at;
    if (took < 0.19 || took >= 1.0)
        fail_msg("SOCKIT_ETIMEOUT after %.3f s for a 0.2 s timeout", took);
    assert_contains(r.errmsg, "slow.test");
    /* The lookup still sleeps in the resolver; the loop closes all the same. */
    assert_int_equal(hook_get(&hook.in_flight), 1);
    close_loop(loop);
    assert_int_equal(hook_get(&hook.in_flight), 1);
    assert_true(hook_release_and_wait(5.0));
}

/* One deadline covers every attempt too. */
static void test_the_deadline_covers_the_attempts(void **state)
{
    (void)state;
    blackhole b1, b2;
    blackhole_open(&b1);
    blackhole_open(&b2);
    hook_install(1.0);
    script_name("blackholes.test", 2,
                (script_entry[]){{"127.0.0.1", b1.port}, {"127.0.0.1", b2.port}});
    int fds_before = harness_count_fds();
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "blackholes.test", 80, 0.4, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_failed(&r, SOCKIT_ETIMEOUT);
    double took = r.done_at - r.started_at;
    if (took < 0.39 || took >= 1.0)
        fail_msg("SOCKIT_ETIMEOUT after %.3f s for a 0.4 s timeout", took);
    char want1[64], want2[64];
    snprintf(want1, sizeof want1, "127.0.0.1:%d", b1.port);
    snprintf(want2, sizeof want2, "127.0.0.1:%d", b2.port);
    assert_contains(r.errmsg, want1);
    assert_contains(r.errmsg, want2);
    close_loop(loop);
    assert_int_equal(harness_count_fds(), fds_before);
    blackhole_close(&b2);
    blackhole_close(&b1);
}

/* As sockit_create_connection: a timeout of 0 cannot resolve a name. */
static void test_timeout_zero_with_a_name_is_etimeout(void **state)
{
    (void)state;
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    hook_install(1.0);
    script_name("quick.test", 1, (script_entry[]){{"127.0.0.1", 0}});
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "quick.test", local_port(l), 0.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_failed(&r, SOCKIT_ETIMEOUT);
    close_loop(loop);
    sockit_close(l);
}

static void test_a_name_that_does_not_resolve_is_eai_noname(void **state)
{
    (void)state;
    hook_install(1.0);
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "nosuch.test", 80, 5.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_failed(&r, SOCKIT_EAI_NONAME);
    assert_contains(r.errmsg, "nosuch.test");
    assert_true(hook_get(&hook.name_calls) >= 1);
    close_loop(loop);
}

/* Arguments that can never work: NULL at once with the code, and done never runs.
 * Every case is tried and the failures are reported together. */
struct bad_case {
    bool no_loop;
    const char *host;
    int port;
    double timeout;
    const sockit_addr *source;
    int code;
    const char *what;
};

static void test_bad_arguments_fail_at_once(void **state)
{
    (void)state;
    sockit_addr src6 = ip_addr("::1", 0), src4 = ip_addr("127.0.0.1", 0);
    const struct bad_case cases[] = {
        {false, "127.0.0.1", 0, 1.0, NULL, SOCKIT_EBADPORT, "port 0"},
        {false, "127.0.0.1", 65536, 1.0, NULL, SOCKIT_EBADPORT, "port 65536"},
        {false, "127.0.0.1", -1, 1.0, NULL, SOCKIT_EBADPORT, "port -1"},
        {false, "127.0.0.1", 80, NAN, NULL, -EINVAL, "NaN timeout"},
        {true, "127.0.0.1", 80, 1.0, NULL, -EINVAL, "no loop"},
        {false, "127.0.0.1", 80, 1.0, &src6, SOCKIT_EBADADDR, "IPv4 host, IPv6 source"},
        {false, "::1", 80, 1.0, &src4, SOCKIT_EBADADDR, "IPv6 host, IPv4 source"},
        {false, "unix:/tmp/sockit-sconn-none.sock", 0, 1.0, &src4, SOCKIT_EBADADDR,
         "Unix host, IPv4 source"},
        {false, "unix:/tmp/sockit-sconn-none.sock", 80, 1.0, NULL, SOCKIT_EBADPORT,
         "Unix host, port 80"},
        {false, "unix:@sockit-sconn-none", -1, 1.0, NULL, SOCKIT_EBADPORT, "Unix host, port -1"},
    };
    char report[2048] = "";
    size_t used = 0;
    sockit_loop *loop = new_loop();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *k = &cases[i];
        struct crec r;
        crec_init(&r, loop);
        pending_connect *c =
            start_connect(k->no_loop ? NULL : loop, k->host, k->port, k->timeout, k->source, &r);
        int code = sockit_errcode();
        char line[256];
        line[0] = '\0';
        if (c != NULL) {
            /* Pending instead: see what done says (cancel it if it says nothing). */
            RUN_UNTIL(loop, r.done_calls > 0, 2.0);
            if (r.done_calls == 0)
                cancel_connect(c);
            RUN_UNTIL(loop, r.done_calls > 0, 2.0);
            snprintf(line, sizeof line,
                     "  %s: a pending connect instead of NULL with %s (its done: %d %s)\n", k->what,
                     sockit_errname(k->code), r.code, sockit_errname(r.code));
        } else if (code != k->code) {
            snprintf(line, sizeof line, "  %s: NULL with %d %s, expected %s\n", k->what, code,
                     sockit_errname(code), sockit_errname(k->code));
        } else {
            run_for(loop, 0.01);
            if (r.done_calls != 0)
                snprintf(line, sizeof line, "  %s: NULL, but done ran anyway\n", k->what);
        }
        if (line[0] != '\0' && used + strlen(line) < sizeof report) {
            memcpy(report + used, line, strlen(line) + 1);
            used += strlen(line);
        }
    }
    run_for(loop, 0.05);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    assert_ok(sockit_loop_close(loop));
    if (used > 0)
        fail_msg("arguments that can never work:\n%s", report);
}

/* ---- source addresses ----------------------------------------------------------- */

static void test_a_source_address_is_bound_and_limits_the_family(void **state)
{
    (void)state;
    /* 127.0.0.2 is loopback too: the peer sees the connection come from there. */
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    int port = local_port(l);
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    sockit_addr src = ip_addr("127.0.0.2", 0);
    start_pending(loop, "127.0.0.1", port, 5.0, &src, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_connected(&r);
    sockit_addr from;
    sockit *peer = accept_peer(l, &from);
    assert_int_equal(sockit_addr_family(&from), AF_INET);
    assert_int_equal(ntohl(from.u.in4.sin_addr.s_addr), 0x7f000002u);
    exchange(loop, &r, peer);
    close_stream(loop, &r);
    sockit_close(peer);
    close_loop(loop);
    sockit_close(l);

    /* Both families listen, IPv6 first; the wildcard IPv4 source keeps to IPv4. */
    if (!have_ipv6_loopback())
        return;
    sockit *v4, *v6;
    port = dual_port(&v4, true, &v6, true);
    hook_install(1.0);
    script_name("localhost", 2, (script_entry[]){{"::1", 0}, {"127.0.0.1", 0}});
    loop = new_loop();
    struct crec r2;
    crec_init(&r2, loop);
    sockit_addr any4 = ip_addr("0.0.0.0", 0);
    start_pending(loop, "localhost", port, 5.0, &any4, &r2);
    RUN_UNTIL(loop, r2.done_calls > 0, 5.0);
    assert_connected(&r2);
    sockit_addr p;
    assert_ok(sockit_stream_peer(r2.st, &p));
    sockit_addr expect = ip_addr("127.0.0.1", port);
    assert_true(sockit_addr_equal(&p, &expect));
    close_stream(loop, &r2);
    close_loop(loop);
    sockit_close(v6);
    sockit_close(v4);
}

/* ---- cancelling ----------------------------------------------------------------- */

static void test_cancel_while_the_name_is_being_resolved(void **state)
{
    (void)state;
    hook_install(3.0);
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "slow.test", 80, 5.0, NULL, &r);
    wait_slow_started(loop, 1, 2.0);
    run_for(loop, 0.02);
    assert_int_equal(r.done_calls, 0);
    double t0 = harness_now();
    cancel_connect(r.c);
    /* Not from inside cancel. */
    assert_int_equal(r.done_calls, 0);
    RUN_UNTIL(loop, r.done_calls > 0, 2.0);
    assert_failed(&r, -ECANCELED);
    /* Without waiting for the resolver. */
    assert_true(r.done_at - t0 < 0.5);
    run_for(loop, 0.05);
    assert_int_equal(r.done_calls, 1);
    assert_int_equal(hook_get(&hook.in_flight), 1);
    close_loop(loop);
    assert_true(hook_release_and_wait(5.0));
}

/* Runs one refused connect to its end on loop, so that whatever the loop opens for
 * itself on first use is open before a test counts descriptors. */
static void warm_up(sockit_loop *loop)
{
    sockit *r4 = refusing(AF_INET, 0);
    assert_non_null(r4);
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "127.0.0.1", local_port(r4), 5.0, NULL, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_failed(&r, -ECONNREFUSED);
    run_for(loop, 0.02);
    sockit_close(r4);
}

static void test_cancel_while_an_attempt_is_in_flight_closes_it(void **state)
{
    (void)state;
    blackhole b;
    blackhole_open(&b);
    int fds_before = harness_count_fds();
    sockit_loop *loop = new_loop();
    warm_up(loop);
    int fds_loop = harness_count_fds();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "127.0.0.1", b.port, 5.0, NULL, &r);
    run_for(loop, 0.1);
    assert_int_equal(r.done_calls, 0);
    /* The attempt's socket is open while it hangs. */
    assert_true(harness_count_fds() > fds_loop);
    cancel_connect(r.c);
    assert_int_equal(r.done_calls, 0);
    RUN_UNTIL(loop, r.done_calls > 0, 2.0);
    assert_failed(&r, -ECANCELED);
    assert_int_equal(harness_count_fds(), fds_loop);
    close_loop(loop);
    assert_int_equal(harness_count_fds(), fds_before);
    blackhole_close(&b);
}

/* Cancelled before the loop ran at all, with a listener that would have taken it: no
 * stream, and the socket that may have connected in the kernel is closed. */
static void test_cancel_before_the_loop_runs_delivers_no_stream(void **state)
{
    (void)state;
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    sockit_loop *loop = new_loop();
    warm_up(loop);
    int fds_loop = harness_count_fds();
    struct crec r;
    crec_init(&r, loop);
    start_pending(loop, "127.0.0.1", local_port(l), 5.0, NULL, &r);
    cancel_connect(r.c);
    assert_int_equal(r.done_calls, 0);
    RUN_UNTIL(loop, r.done_calls > 0, 2.0);
    assert_failed(&r, -ECANCELED);
    run_for(loop, 0.05);
    assert_int_equal(r.done_calls, 1);
    assert_int_equal(r.data_calls + r.closes, 0);
    assert_int_equal(harness_count_fds(), fds_loop);
    close_loop(loop);
    sockit_close(l);
}

static void test_cancel_inside_done_and_cancel_of_null_change_nothing(void **state)
{
    (void)state;
    sockit_connector_cancel(NULL);
    sockit_resolve_cancel(NULL);
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    sockit *r4 = refusing(AF_INET, 0);
    assert_non_null(r4);
    sockit_loop *loop = new_loop();
    /* A connect that succeeds: cancel inside its done keeps the stream. */
    struct crec ok;
    crec_init(&ok, loop);
    ok.cancel_in_done = true;
    start_pending(loop, "127.0.0.1", local_port(l), 5.0, NULL, &ok);
    /* And one that fails: its done still runs once, with its own code. */
    struct crec bad;
    crec_init(&bad, loop);
    bad.cancel_in_done = true;
    start_pending(loop, "127.0.0.1", local_port(r4), 5.0, NULL, &bad);
    RUN_UNTIL(loop, ok.done_calls > 0 && bad.done_calls > 0, 5.0);
    run_for(loop, 0.05);
    assert_connected(&ok);
    assert_failed(&bad, -ECONNREFUSED);
    sockit *peer = accept_peer(l, NULL);
    exchange(loop, &ok, peer);
    close_stream(loop, &ok);
    sockit_close(peer);
    close_loop(loop);
    sockit_close(r4);
    sockit_close(l);
}

/* ---- the loop ------------------------------------------------------------------- */

struct guard {
    sockit_loop *loop;
    bool fired;
};

static void guard_cb(sockit_timer *t, void *user)
{
    (void)t;
    struct guard *g = user;
    g->fired = true;
    sockit_loop_stop(g->loop);
}

/* A timer that does not keep the loop alive and stops it after secs: sockit_loop_run
 * is bounded in a test even when what should end it never comes. */
static sockit_timer *guard_start(struct guard *g, sockit_loop *loop, double secs)
{
    g->loop = loop;
    g->fired = false;
    sockit_timer *t = sockit_timer_new(loop, guard_cb, g);
    assert_sock(t);
    sockit_timer_keepalive(t, false);
    assert_ok(sockit_timer_start(t, secs, 0));
    return t;
}

/* A pending connect keeps sockit_loop_run going: it returns only after done ran (done
 * closes the stream, so nothing is left then). */
static void test_a_pending_connect_keeps_loop_run_going(void **state)
{
    (void)state;
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    int port = local_port(l);
    hook_install(0.3);
    sockit_loop *loop = new_loop();

    /* A name whose lookup takes 0.3 s. */
    struct crec r;
    crec_init(&r, loop);
    r.close_in_done = true;
    start_pending(loop, "slow-ok.test", port, 5.0, NULL, &r);
    struct guard g;
    sockit_timer *t = guard_start(&g, loop, 5.0);
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    double took = harness_now() - t0;
    assert_false(g.fired);
    assert_connected(&r);
    assert_true(took >= 0.25);
    assert_int_equal(r.closes, 1);

    /* A numeric address that refuses. */
    sockit *r4 = refusing(AF_INET, 0);
    assert_non_null(r4);
    struct crec r2;
    crec_init(&r2, loop);
    start_pending(loop, "127.0.0.1", local_port(r4), 5.0, NULL, &r2);
    assert_ok(sockit_loop_run(loop));
    assert_false(g.fired);
    assert_failed(&r2, -ECONNREFUSED);

    sockit_timer_close(t);
    close_loop(loop);
    sockit_close(r4);
    sockit_close(l);
}

/* ---- from inside done ----------------------------------------------------------- */

static void test_connect_from_inside_done_of_another(void **state)
{
    (void)state;
    sockit *la = listening(AF_INET, 0), *lb = listening(AF_INET, 0);
    assert_non_null(la);
    assert_non_null(lb);
    sockit *r4 = refusing(AF_INET, 0);
    assert_non_null(r4);
    sockit_loop *loop = new_loop();

    /* A's done connects to B. */
    struct crec a, b;
    crec_init(&a, loop);
    crec_init(&b, loop);
    a.chain = &b;
    a.chain_host = "127.0.0.1";
    a.chain_port = local_port(lb);
    start_pending(loop, "127.0.0.1", local_port(la), 5.0, NULL, &a);
    RUN_UNTIL(loop, b.done_calls > 0, 5.0);
    assert_connected(&a);
    assert_connected(&b);
    assert_true(b.done_seq > a.done_seq);
    sockit *pa = accept_peer(la, NULL), *pb = accept_peer(lb, NULL);
    exchange(loop, &b, pb);
    exchange(loop, &a, pa);
    close_stream(loop, &a);
    close_stream(loop, &b);
    sockit_close(pa);
    sockit_close(pb);

    /* A refused connect's done tries elsewhere. */
    struct crec c, d;
    crec_init(&c, loop);
    crec_init(&d, loop);
    c.chain = &d;
    c.chain_host = "127.0.0.1";
    c.chain_port = local_port(la);
    start_pending(loop, "127.0.0.1", local_port(r4), 5.0, NULL, &c);
    RUN_UNTIL(loop, d.done_calls > 0, 5.0);
    assert_failed(&c, -ECONNREFUSED);
    assert_connected(&d);
    sockit *pd = accept_peer(la, NULL);
    exchange(loop, &d, pd);
    close_stream(loop, &d);
    sockit_close(pd);

    close_loop(loop);
    sockit_close(r4);
    sockit_close(lb);
    sockit_close(la);
}

static void test_closing_the_stream_inside_done(void **state)
{
    (void)state;
    sockit *l = listening(AF_INET, 0);
    assert_non_null(l);
    sockit_loop *loop = new_loop();
    struct crec r;
    crec_init(&r, loop);
    r.close_in_done = true;
    start_pending(loop, "127.0.0.1", local_port(l), 5.0, NULL, &r);
    RUN_UNTIL(loop, r.closes > 0, 5.0);
    assert_connected(&r);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.data_calls + r.errors + r.late, 0);
    run_for(loop, 0.05);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.done_calls, 1);
    /* The peer sees the end of the stream. */
    sockit *peer = accept_peer(l, NULL);
    char ch;
    assert_int_equal(sockit_recv(peer, &ch, 1, 0), 0);
    sockit_close(peer);
    close_loop(loop);
    sockit_close(l);
}

/* ---- sockit_loop_getaddrinfo ---------------------------------------------------- */

enum { RREC_MAX = 8 };

struct rrec {
    sockit_resolve *r; /* what sockit_loop_getaddrinfo returned */
    int done_calls;
    int inside;
    int wrong_thread;
    bool r_matched;
    int code;
    size_t n;
    sockit_addrinfo ai[RREC_MAX];
    double started_at, done_at;
    bool cancel_in_done;
};

static void res_done(sockit_resolve *res, int code, const sockit_addrinfo *ai, size_t n, void *user)
{
    struct rrec *r = user;
    r->done_calls++;
    if (in_call)
        r->inside++;
    if (!pthread_equal(pthread_self(), test_thread))
        r->wrong_thread++;
    r->r_matched = res != NULL && res == r->r;
    r->code = code;
    r->n = n;
    for (size_t i = 0; i < n && i < RREC_MAX; i++)
        r->ai[i] = ai[i]; /* valid during the call only */
    r->done_at = harness_now();
    if (r->cancel_in_done)
        sockit_resolve_cancel(res);
}

static sockit_resolve *start_lookup(sockit_loop *loop, const char *host, const char *port,
                                    int family, double timeout, struct rrec *r)
{
    memset(r, 0, sizeof *r);
    r->code = 1;
    r->started_at = harness_now();
    in_call = true;
    sockit_resolve *res =
        sockit_loop_getaddrinfo(loop, host, port, family, SOCK_STREAM, 0, timeout, res_done, r);
    in_call = false;
    r->r = res;
    return res;
}

static void start_lookup_pending(sockit_loop *loop, const char *host, const char *port, int family,
                                 double timeout, struct rrec *r)
{
    if (start_lookup(loop, host, port, family, timeout, r) == NULL)
        fail_msg("sockit_loop_getaddrinfo(%s, %s) returned NULL: %s (%s)", host, port,
                 sockit_errname(sockit_errcode()), sockit_errmsg());
    assert_int_equal(r->done_calls, 0);
}

static void assert_resolved(const struct rrec *r)
{
    if (r->done_calls != 1 || r->code != 0)
        fail_msg("done ran %d times with code %d (%s)", r->done_calls, r->code,
                 sockit_errname(r->code));
    assert_int_equal(r->inside, 0);
    assert_int_equal(r->wrong_thread, 0);
    assert_true(r->r_matched);
    assert_true(r->n >= 1);
}

static void assert_lookup_failed(const struct rrec *r, int code)
{
    if (r->done_calls != 1 || r->code != code)
        fail_msg("done ran %d times with code %d (%s), expected once with %d (%s)", r->done_calls,
                 r->code, sockit_errname(r->code), code, sockit_errname(code));
    assert_int_equal(r->inside, 0);
    assert_int_equal(r->wrong_thread, 0);
    assert_true(r->r_matched);
    assert_int_equal(r->n, 0);
}

static void assert_ai(const sockit_addrinfo *ai, int family, const char *text)
{
    assert_int_equal(ai->family, family);
    assert_int_equal(ai->type, SOCK_STREAM);
    assert_int_equal(sockit_addr_family(&ai->addr), family);
    char buf[SOCKIT_ADDRSTRLEN];
    assert_ok(sockit_addr_format(&ai->addr, buf, sizeof buf));
    assert_string_equal(buf, text);
}

/* A numeric host costs no thread: its answer comes from the loop (never from inside
 * the call) with the port set, and the resolver, if asked at all, is asked in the
 * loop's thread. */
static void test_getaddrinfo_of_a_numeric_host_answers_from_the_loop(void **state)
{
    (void)state;
    hook_install(1.0);
    sockit_loop *loop = new_loop();
    struct rrec r4, r6;
    start_lookup_pending(loop, "127.0.0.1", "8080", AF_UNSPEC, 5.0, &r4);
    start_lookup_pending(loop, "::1", "443", AF_INET6, 5.0, &r6);
    RUN_UNTIL(loop, r4.done_calls > 0 && r6.done_calls > 0, 5.0);
    assert_resolved(&r4);
    assert_resolved(&r6);
    assert_ai(&r4.ai[0], AF_INET, "127.0.0.1:8080");
    assert_int_equal(r4.ai[0].protocol, IPPROTO_TCP);
    assert_ai(&r6.ai[0], AF_INET6, "[::1]:443");
    assert_int_equal(hook_get(&hook.numeric_off_thread), 0);
    assert_int_equal(hook_get(&hook.name_calls), 0);
    run_for(loop, 0.05);
    assert_int_equal(r4.done_calls, 1);
    assert_int_equal(r6.done_calls, 1);
    close_loop(loop);
}

static void test_getaddrinfo_of_a_name_goes_through_the_resolver(void **state)
{
    (void)state;
    hook_install(1.0);
    script_name("two.test", 2, (script_entry[]){{"127.0.0.3", 0}, {"127.0.0.4", 0}});
    sockit_loop *loop = new_loop();
    struct rrec r;
    start_lookup_pending(loop, "two.test", "4242", AF_INET, 5.0, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_resolved(&r);
    assert_int_equal(r.n, 2);
    assert_ai(&r.ai[0], AF_INET, "127.0.0.3:4242");
    assert_ai(&r.ai[1], AF_INET, "127.0.0.4:4242");
    assert_true(hook_get(&hook.name_calls) >= 1);

    struct rrec none;
    start_lookup_pending(loop, "nosuch.test", "80", AF_UNSPEC, 5.0, &none);
    RUN_UNTIL(loop, none.done_calls > 0, 5.0);
    assert_lookup_failed(&none, SOCKIT_EAI_NONAME);
    close_loop(loop);
}

static void test_getaddrinfo_bad_arguments_fail_at_once(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    struct rrec r;
    static const char *const bad[] = {"65536", "", "-1", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (start_lookup(loop, "127.0.0.1", bad[i], AF_INET, 1.0, &r) != NULL)
            fail_msg("port \"%s\" was accepted", bad[i]);
        assert_code(sockit_errcode(), SOCKIT_EBADPORT);
    }
    /* "abc" is no number and no service: it never resolves. The header's words give
     * SOCKIT_EBADPORT at once (sockit_parse_port's "abc"), or at the least a failure
     * through done. */
    sockit_resolve *res = start_lookup(loop, "127.0.0.1", "abc", AF_INET, 1.0, &r);
    if (res == NULL) {
        assert_code(sockit_errcode(), SOCKIT_EBADPORT);
    } else {
        RUN_UNTIL(loop, r.done_calls > 0, 5.0);
        assert_int_equal(r.done_calls, 1);
        assert_int_equal(r.inside, 0);
        if (r.code != SOCKIT_EBADPORT && r.code != SOCKIT_EAI_SERVICE &&
            r.code != SOCKIT_EAI_NONAME)
            fail_msg("port \"abc\" gave %d (%s)", r.code, sockit_errname(r.code));
    }

    assert_null(start_lookup(NULL, "127.0.0.1", "80", AF_INET, 1.0, &r));
    assert_code(sockit_errcode(), -EINVAL);
    assert_null(start_lookup(loop, "127.0.0.1", "80", AF_INET, NAN, &r));
    assert_code(sockit_errcode(), -EINVAL);
    in_call = true;
    assert_null(
        sockit_loop_getaddrinfo(loop, "127.0.0.1", "80", AF_INET, SOCK_STREAM, 0, 1.0, NULL, NULL));
    in_call = false;
    assert_code(sockit_errcode(), -EINVAL);
    run_for(loop, 0.05);
    assert_int_equal(r.done_calls, 0);
    assert_int_equal(sockit_loop_run_once(loop, 0), 0);
    assert_ok(sockit_loop_close(loop));
}

static void test_getaddrinfo_timeout_and_closing_the_loop_while_the_lookup_sleeps(void **state)
{
    (void)state;
    hook_install(3.0);
    sockit_loop *loop = new_loop();
    struct rrec r;
    start_lookup_pending(loop, "slow.test", "80", AF_UNSPEC, 0.2, &r);
    RUN_UNTIL(loop, r.done_calls > 0, 5.0);
    assert_lookup_failed(&r, SOCKIT_ETIMEOUT);
    double took = r.done_at - r.started_at;
    if (took < 0.19 || took >= 1.0)
        fail_msg("SOCKIT_ETIMEOUT after %.3f s for a 0.2 s timeout", took);
    assert_int_equal(hook_get(&hook.in_flight), 1);
    close_loop(loop);
    assert_int_equal(hook_get(&hook.in_flight), 1);
    assert_true(hook_release_and_wait(5.0));
}

static void test_getaddrinfo_cancel_and_loop_close_while_pending(void **state)
{
    (void)state;
    hook_install(3.0);
    sockit_loop *loop = new_loop();
    struct rrec r;
    start_lookup_pending(loop, "slow.test", "80", AF_UNSPEC, -1, &r);
    wait_slow_started(loop, 1, 2.0);
    /* Pending: the loop will not close. */
    assert_code(sockit_loop_close(loop), -EBUSY);
    double t0 = harness_now();
    in_call = true;
    sockit_resolve_cancel(r.r);
    in_call = false;
    assert_int_equal(r.done_calls, 0);
    RUN_UNTIL(loop, r.done_calls > 0, 2.0);
    assert_lookup_failed(&r, -ECANCELED);
    assert_true(r.done_at - t0 < 0.5);
    run_for(loop, 0.05);
    assert_int_equal(r.done_calls, 1);
    /* Given up and done: the loop closes though the lookup still sleeps. */
    assert_int_equal(hook_get(&hook.in_flight), 1);
    assert_ok(sockit_loop_close(loop));
    assert_true(hook_release_and_wait(5.0));

    /* A cancel from inside done is nothing to do; cancelling a numeric lookup before
     * the loop ran is -ECANCELED too. */
    loop = new_loop();
    struct rrec a, b;
    start_lookup_pending(loop, "127.0.0.1", "80", AF_INET, 5.0, &a);
    a.cancel_in_done = true;
    start_lookup_pending(loop, "127.0.0.1", "81", AF_INET, 5.0, &b);
    in_call = true;
    sockit_resolve_cancel(b.r);
    in_call = false;
    assert_int_equal(b.done_calls, 0);
    RUN_UNTIL(loop, a.done_calls > 0 && b.done_calls > 0, 5.0);
    run_for(loop, 0.05);
    assert_resolved(&a);
    assert_ai(&a.ai[0], AF_INET, "127.0.0.1:80");
    assert_lookup_failed(&b, -ECANCELED);
    close_loop(loop);
}

static void test_a_pending_lookup_keeps_loop_run_going(void **state)
{
    (void)state;
    hook_install(0.3);
    sockit_loop *loop = new_loop();
    struct rrec r;
    start_lookup_pending(loop, "slow-ok.test", "99", AF_INET, 5.0, &r);
    struct guard g;
    sockit_timer *t = guard_start(&g, loop, 5.0);
    double t0 = harness_now();
    assert_ok(sockit_loop_run(loop));
    double took = harness_now() - t0;
    assert_false(g.fired);
    assert_resolved(&r);
    assert_ai(&r.ai[0], AF_INET, "127.0.0.1:99");
    assert_true(took >= 0.25);
    sockit_timer_close(t);
    close_loop(loop);
}

enum { MANY = 50 };

static void test_fifty_concurrent_lookups_each_complete_once(void **state)
{
    (void)state;
    hook_install(1.0);
    sockit_loop *loop = new_loop();
    static struct rrec r[MANY];
    for (int i = 0; i < MANY; i++) {
        char host[32], port[16];
        snprintf(host, sizeof host, "h%d.test", i);
        snprintf(port, sizeof port, "%d", 1000 + i);
        start_lookup_pending(loop, host, port, AF_INET, 5.0, &r[i]);
    }
    int finished = 0;
    double until = harness_now() + 5.0;
    while (finished < MANY && harness_now() < until) {
        sockit_loop_run_once(loop, 0.01);
        finished = 0;
        for (int i = 0; i < MANY; i++)
            finished += r[i].done_calls > 0;
    }
    run_for(loop, 0.05);
    for (int i = 0; i < MANY; i++) {
        if (r[i].done_calls != 1)
            fail_msg("lookup %d: done ran %d times", i, r[i].done_calls);
        assert_resolved(&r[i]);
        char want[32];
        snprintf(want, sizeof want, "127.0.0.%d:%d", i + 1, 1000 + i);
        assert_ai(&r[i].ai[0], AF_INET, want);
    }
    assert_true(hook_get(&hook.name_calls) >= MANY);
    close_loop(loop);
}

int main(void)
{
    test_thread = pthread_self();
    const struct CMUnitTest tests[] = {
        harness_test(test_connect_to_an_ipv4_listener_delivers_a_stream_once_from_the_loop),
        harness_test(test_connect_to_the_ipv6_loopback),
        harness_test(test_connect_to_a_unix_path_and_a_missing_one),
        harness_test(test_connect_to_an_abstract_unix_name),
        harness_test(test_connect_by_name_and_with_a_null_host),
        harness_test(test_timeout_zero_connects_to_a_numeric_loopback_listener),
        harness_test(test_bytes_sent_before_done_arrive_after_it),
        harness_test(test_refused_is_econnrefused_naming_the_address),
        hooked_test(test_refused_on_both_families_names_every_address),
        hooked_test(test_happy_eyeballs_falls_over_from_ipv6_to_ipv4),
        hooked_test(test_happy_eyeballs_falls_over_from_ipv4_to_ipv6),
        hooked_test(test_happy_eyeballs_starts_the_next_attempt_after_250_ms),
        hooked_test(test_the_deadline_covers_name_resolution),
        hooked_test(test_the_deadline_covers_the_attempts),
        hooked_test(test_timeout_zero_with_a_name_is_etimeout),
        hooked_test(test_a_name_that_does_not_resolve_is_eai_noname),
        harness_test(test_bad_arguments_fail_at_once),
        hooked_test(test_a_source_address_is_bound_and_limits_the_family),
        hooked_test(test_cancel_while_the_name_is_being_resolved),
        harness_test(test_cancel_while_an_attempt_is_in_flight_closes_it),
        harness_test(test_cancel_before_the_loop_runs_delivers_no_stream),
        harness_test(test_cancel_inside_done_and_cancel_of_null_change_nothing),
        hooked_test(test_a_pending_connect_keeps_loop_run_going),
        harness_test(test_connect_from_inside_done_of_another),
        harness_test(test_closing_the_stream_inside_done),
        hooked_test(test_getaddrinfo_of_a_numeric_host_answers_from_the_loop),
        hooked_test(test_getaddrinfo_of_a_name_goes_through_the_resolver),
        harness_test(test_getaddrinfo_bad_arguments_fail_at_once),
        hooked_test(test_getaddrinfo_timeout_and_closing_the_loop_while_the_lookup_sleeps),
        hooked_test(test_getaddrinfo_cancel_and_loop_close_while_pending),
        hooked_test(test_a_pending_lookup_keeps_loop_run_going),
        hooked_test(test_fifty_concurrent_lookups_each_complete_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
