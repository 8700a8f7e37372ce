/* simple_load: a deliberately plain second load generator, so the report can show
 * that `sockit bench` is not what limits a measurement. One blocking thread per
 * connection, raw POSIX sockets, no event loop, no latency histogram.
 *
 * Usage: simple_load [--mode echo|connect] [-c CONNS] [-d SECS] [-m BYTES] HOST PORT
 *   defaults: --mode echo -c 10 -d 10 -m 64
 * echo: each thread connects once, then repeats: send BYTES, receive exactly BYTES,
 *   check they are what was sent (a request number in the first 8 bytes, so a stale
 *   echo is caught too). A failed connection is counted, closed and reopened.
 * connect: each thread repeats the reference one-shot flow: connect, send
 *   "Hello server!" (BYTES of pattern when -m is given), read until the server
 *   closes, check the reply is "Hello from server!", close.
 * Every thread connects first (echo), then all start together; a request counts if
 * it completed within the SECS that follow. Each blocking call times out after
 * STEP_TIMEOUT_S (SO_RCVTIMEO / SO_SNDTIMEO), and no call starts after the deadline,
 * so the run ends within SECS + STEP_TIMEOUT_S even against a stuck server.
 * Prints one JSON line on stdout:
 *   {"requests":N,"requests_per_s":X,"errors":E,"duration_s":D}
 * and the first error's message on stderr. Exit 0: no errors and at least one
 * request; 1 otherwise; 2 bad usage. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define USAGE          "usage: simple_load [--mode echo|connect] [-c CONNS] [-d SECS] [-m BYTES] HOST PORT"
#define MAX_CONNS      10000
#define MAX_MSG        (16 * 1024 * 1024)
#define STEP_TIMEOUT_S 2
/* Sends of a big echo are cut in pieces this big, and what has already come back is
 * read between them, so neither side's buffers fill up and block both. */
#define SEND_PIECE (64 * 1024)
/* Buffers live on the heap; a thread needs little stack (ASan builds need more). */
#define THREAD_STACK (256 * 1024)

static const char request_text[] = "Hello server!";
static const char reply_text[] = "Hello from server!";

struct load {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool connect_mode;
    bool custom_msg; /* connect mode: -m was given */
    size_t msg_bytes;
    double deadline;
    pthread_barrier_t start; /* everyone connected; then everyone goes */
    atomic_long requests;
    atomic_long errors;
    pthread_mutex_t first_lock;
    char first_error[256];
};

struct worker {
    struct load *load;
    unsigned id;
    pthread_t thread;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record_error(struct load *l, const char *message)
{
    atomic_fetch_add(&l->errors, 1);
    pthread_mutex_lock(&l->first_lock);
    if (l->first_error[0] == '\0')
        snprintf(l->first_error, sizeof l->first_error, "%s", message);
    pthread_mutex_unlock(&l->first_lock);
}

/* Records why a send, recv or connect (what) failed: n is what it returned, err its
 * errno. A blocking call that timed out reports EAGAIN. */
static void step_failed(struct load *l, const char *what, ssize_t n, int err)
{
    char message[128];
    if (n == 0)
        snprintf(message, sizeof message, "%s: the server closed the connection", what);
    else if (err == EAGAIN || err == EINPROGRESS)
        snprintf(message, sizeof message, "%s: timeout: no progress in %d s", what, STEP_TIMEOUT_S);
    else
        snprintf(message, sizeof message, "%s: %s", what, strerror(err));
    record_error(l, message);
}

/* A connected socket with the step timeouts, or -1 (error recorded). */
static int open_conn(struct load *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        step_failed(l, "socket", -1, errno);
        return -1;
    }
    struct timeval tv = {.tv_sec = STEP_TIMEOUT_S};
    int one = 1;
    /* SO_SNDTIMEO also bounds connect() on Linux. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&l->addr, l->addr_len) < 0) {
        int err = errno;
        close(fd);
        step_failed(l, "connect", -1, err);
        return -1;
    }
    return fd;
}

enum outcome { DONE, FAILED, TIME_UP };

/* One echo request: returns DONE when the same bytes came back. */
static enum outcome echo_once(struct load *l, int fd, const char *out, char *in)
{
    size_t len = l->msg_bytes, sent = 0, got = 0;
    while (sent < len) {
        if (now() >= l->deadline)
            return TIME_UP;
        size_t piece = len - sent < SEND_PIECE ? len - sent : SEND_PIECE;
        ssize_t n = send(fd, out + sent, piece, MSG_NOSIGNAL);
        if (n < 0) {
            step_failed(l, "send", n, errno);
            return FAILED;
        }
        sent += (size_t)n;
        if (sent == len)
            break;
        n = recv(fd, in + got, len - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || errno != EAGAIN) {
            step_failed(l, "recv", n, errno);
            return FAILED;
        }
    }
    while (got < len) {
        if (now() >= l->deadline)
            return TIME_UP;
        ssize_t n = recv(fd, in + got, len - got, 0);
        if (n <= 0) {
            step_failed(l, "recv", n, errno);
            return FAILED;
        }
        got += (size_t)n;
    }
    if (memcmp(out, in, len) != 0) {
        record_error(l, "corrupt: the echo differs from what was sent");
        return FAILED;
    }
    return DONE;
}

/* One pass of the reference one-shot flow on a new connection. */
static enum outcome connect_once(struct load *l, const char *msg, size_t len)
{
    int fd = open_conn(l);
    if (fd < 0)
        return FAILED;
    enum outcome result = FAILED;
    char reply[sizeof reply_text + 64];
    size_t got = 0;
    ssize_t n;
    for (size_t sent = 0; sent < len; sent += (size_t)n) {
        if ((n = send(fd, msg + sent, len - sent, MSG_NOSIGNAL)) < 0) {
            step_failed(l, "send", n, errno);
            goto done;
        }
    }
    /* The flow ends with the server's close, not ours. */
    for (;;) {
        if (now() >= l->deadline) {
            result = TIME_UP;
            goto done;
        }
        n = recv(fd, reply + got, sizeof reply - got, 0);
        if (n == 0)
            break;
        if (n < 0) {
            step_failed(l, "recv", n, errno);
            goto done;
        }
        if ((got += (size_t)n) == sizeof reply)
            break;
    }
    if (got != sizeof reply_text - 1 || memcmp(reply, reply_text, got) != 0)
        record_error(l, got == 0 ? "closed: the server closed without a reply"
                                 : "corrupt: the reply is not \"Hello from server!\"");
    else
        result = DONE;
done:
    close(fd);
    return result;
}

/* A payload no two threads share; xorshift, so it is not all one byte. */
static void fill_pattern(char *buf, size_t len, unsigned id)
{
    uint32_t x = 2463534242u ^ (id * 2654435761u);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (char)x;
    }
}

static void count_if_in_time(struct load *l)
{
    if (now() <= l->deadline)
        atomic_fetch_add(&l->requests, 1);
}

static void *run_echo(struct worker *w)
{
    struct load *l = w->load;
    char *out = malloc(l->msg_bytes), *in = malloc(l->msg_bytes);
    if (out == NULL || in == NULL) {
        record_error(l, "out of memory");
        pthread_barrier_wait(&l->start);
        pthread_barrier_wait(&l->start);
        free(out);
        free(in);
        return NULL;
    }
    fill_pattern(out, l->msg_bytes, w->id);
    int fd = open_conn(l);
    pthread_barrier_wait(&l->start);
    pthread_barrier_wait(&l->start);
    for (uint64_t seq = 0; now() < l->deadline; seq++) {
        if (fd < 0 && (fd = open_conn(l)) < 0) {
            /* A refusing server is counted, not hammered. */
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
            continue;
        }
        memcpy(out, &seq, l->msg_bytes < sizeof seq ? l->msg_bytes : sizeof seq);
        enum outcome r = echo_once(l, fd, out, in);
        if (r == DONE)
            count_if_in_time(l);
        else if (r == FAILED) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    free(out);
    free(in);
    return NULL;
}

static void *run_connect(struct worker *w)
{
    struct load *l = w->load;
    char *msg = malloc(l->custom_msg ? l->msg_bytes : sizeof request_text);
    size_t len = l->custom_msg ? l->msg_bytes : sizeof request_text - 1;
    if (msg != NULL && l->custom_msg)
        fill_pattern(msg, len, w->id);
    else if (msg != NULL)
        memcpy(msg, request_text, sizeof request_text);
    pthread_barrier_wait(&l->start);
    pthread_barrier_wait(&l->start);
    while (msg != NULL && now() < l->deadline) {
        enum outcome r = connect_once(l, msg, len);
        if (r == DONE)
            count_if_in_time(l);
        else if (r == FAILED)
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    if (msg == NULL)
        record_error(l, "out of memory");
    free(msg);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    return w->load->connect_mode ? run_connect(w) : run_echo(w);
}

static void usage_error(const char *what, const char *why)
{
    fprintf(stderr, "simple_load: %s: %s\n%s\n", what, why, USAGE);
    exit(2);
}

static double number(const char *flag, const char *text, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !(v >= lo && v <= hi)) {
        fprintf(stderr, "simple_load: %s '%s': not a number in %g-%g\n%s\n", flag, text, lo, hi,
                USAGE);
        exit(2);
    }
    return v;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static struct load l;
    long conns = 10;
    double seconds = 10;
    static const struct option longopts[] = {{"mode", required_argument, NULL, 'M'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    l.msg_bytes = 64;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:d:m:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'M':
            if (strcmp(optarg, "echo") != 0 && strcmp(optarg, "connect") != 0) {
                fprintf(stderr, "simple_load: --mode '%s': not echo or connect\n%s\n", optarg,
                        USAGE);
                return 2;
            }
            l.connect_mode = strcmp(optarg, "connect") == 0;
            break;
        case 'c':
            conns = (long)number("-c", optarg, 1, MAX_CONNS);
            break;
        case 'd':
            seconds = number("-d", optarg, 0.1, 3600);
            break;
        case 'm':
            l.msg_bytes = (size_t)number("-m", optarg, 1, MAX_MSG);
            l.custom_msg = true;
            break;
        case 'h':
            printf("%s\n", USAGE);
            return 0;
        default:
            /* getopt has said which option was wrong. */
            fprintf(stderr, "%s\n", USAGE);
            return 2;
        }
    }
    if (argc - optind != 2)
        usage_error("arguments", "expected HOST PORT");
    const char *host = argv[optind], *port = argv[optind + 1];

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "simple_load: %s port %s: %s\n", host, port, gai_strerror(rc));
        return 1;
    }
    memcpy(&l.addr, ai->ai_addr, ai->ai_addrlen);
    l.addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    raise_fd_limit();
    pthread_mutex_init(&l.first_lock, NULL);
    pthread_barrier_init(&l.start, NULL, (unsigned)conns + 1);

    struct worker *workers = calloc((size_t)conns, sizeof *workers);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    for (long i = 0; workers != NULL && i < conns; i++) {
        workers[i] = (struct worker){.load = &l, .id = (unsigned)i};
        if ((rc = pthread_create(&workers[i].thread, &attr, worker_main, &workers[i])) != 0) {
            /* The ones started wait at the barrier forever: exit ends them. */
            fprintf(stderr, "simple_load: thread %ld of %ld: %s\n", i + 1, conns, strerror(rc));
            return 1;
        }
    }
    if (workers == NULL) {
        fprintf(stderr, "simple_load: out of memory\n");
        return 1;
    }
    pthread_attr_destroy(&attr);

    pthread_barrier_wait(&l.start); /* every echo connection is open (or failed) */
    double start = now();
    l.deadline = start + seconds;
    pthread_barrier_wait(&l.start); /* the barrier orders the deadline before the reads */
    for (long i = 0; i < conns; i++)
        pthread_join(workers[i].thread, NULL);

    long requests = atomic_load(&l.requests), errors = atomic_load(&l.errors);
    if (errors > 0)
        fprintf(stderr, "simple_load: %ld errors, the first: %s\n", errors, l.first_error);
    printf("{\"requests\":%ld,\"requests_per_s\":%.1f,\"errors\":%ld,\"duration_s\":%.3f}\n",
           requests, (double)requests / seconds, errors, seconds);
    free(workers);
    pthread_barrier_destroy(&l.start);
    pthread_mutex_destroy(&l.first_lock);
    return errors == 0 && requests > 0 ? 0 : 1;
}
