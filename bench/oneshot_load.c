/* A load client for the one-shot flow of the reference TCP programs: connect, send
 * "Hello server!", read the reply until the server closes, close. It keeps
 * CONCURRENCY connections in flight (one thread each) for SECONDS, and stops early
 * after MAX connections in all, so a run is bounded both ways.
 *
 * Usage: oneshot_load [-c CONCURRENCY] [-d SECONDS] [-n MAX] [-r REPLY] HOST PORT
 *   defaults: -c 50 -d 5 -n 1000000 -r "Hello from server!"
 * Prints one line on stdout:
 *   connections=N errors=E seconds=S conn_per_s=R
 * where a connection counts only if its reply was exactly REPLY. The first failure's
 * message goes to stderr. Exit status 0 if at least one connection succeeded. */
/* clock_gettime, getopt and friends are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 1000
/* Each step of a connection (connect, send, each read) gets this long. */
#define STEP_TIMEOUT 5.0

static const char request[] = "Hello server!";

struct load {
    sockit_addr server;
    const char *reply;
    size_t reply_len;
    double deadline;
    long max;
    atomic_long started;
    atomic_long ok;
    atomic_long errors;
    pthread_mutex_t first_lock;
    char first_error[256];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record_error(struct load *l, const char *what)
{
    atomic_fetch_add(&l->errors, 1);
    pthread_mutex_lock(&l->first_lock);
    if (l->first_error[0] == '\0')
        snprintf(l->first_error, sizeof l->first_error, "%s", what);
    pthread_mutex_unlock(&l->first_lock);
}

/* One connection of the flow. Returns true when the reply was exactly l->reply. */
static bool one_shot(struct load *l)
{
    sockit *c = sockit_socket(sockit_addr_family(&l->server), SOCK_STREAM);
    if (c == NULL) {
        record_error(l, sockit_errmsg());
        return false;
    }
    char got[256];
    size_t len = 0;
    bool ok = sockit_settimeout(c, STEP_TIMEOUT) == 0 && sockit_connect_addr(c, &l->server) == 0 &&
              sockit_sendall(c, request, sizeof request - 1, 0, NULL) >= 0;
    /* Read until the server closes: the flow ends with its close, not ours. */
    while (ok) {
        ssize_t n = sockit_recv(c, got + len, sizeof got - len, 0);
        if (n == 0)
            break;
        if (n < 0 || (len += (size_t)n) == sizeof got)
            ok = false;
    }
    if (!ok)
        record_error(l, len == sizeof got ? "reply too long" : sockit_errmsg());
    else if (len != l->reply_len || memcmp(got, l->reply, len) != 0) {
        record_error(l, "unexpected reply");
        ok = false;
    }
    sockit_close(c);
    return ok;
}

static void *worker(void *arg)
{
    struct load *l = arg;
    while (now() < l->deadline && atomic_fetch_add(&l->started, 1) < l->max) {
        if (one_shot(l))
            atomic_fetch_add(&l->ok, 1);
    }
    return NULL;
}

static long number(const char *flag, const char *text, long lo, long hi)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "oneshot_load: %s '%s': not a number in %ld-%ld\n", flag, text, lo, hi);
        exit(2);
    }
    return v;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: oneshot_load [-c CONCURRENCY] [-d SECONDS] [-n MAX] [-r REPLY] HOST PORT\n");
    return 2;
}

int main(int argc, char **argv)
{
    long concurrency = 50, seconds = 5, max = 1000000;
    const char *reply = "Hello from server!";
    int opt;
    while ((opt = getopt(argc, argv, "c:d:n:r:")) != -1) {
        switch (opt) {
        case 'c':
            concurrency = number("-c", optarg, 1, MAX_THREADS);
            break;
        case 'd':
            seconds = number("-d", optarg, 1, 3600);
            break;
        case 'n':
            max = number("-n", optarg, 1, 1000000000L);
            break;
        case 'r':
            reply = optarg;
            break;
        default:
            return usage();
        }
    }
    if (argc - optind != 2)
        return usage();
    const char *host = argv[optind];
    int port = sockit_parse_port(argv[optind + 1]);
    if (port <= 0) {
        fprintf(stderr, "oneshot_load: port '%s': not a port in 1-65535\n", argv[optind + 1]);
        return 2;
    }

    static struct load l;
    /* Resolved once: the benchmark measures the server, not the resolver. */
    sockit_addrinfo ai;
    if (sockit_getaddrinfo(host, argv[optind + 1], AF_UNSPEC, SOCK_STREAM, 0, &ai, 1) < 0) {
        fprintf(stderr, "oneshot_load: %s\n", sockit_errmsg());
        return 1;
    }
    l.server = ai.addr;
    l.reply = reply;
    l.reply_len = strlen(reply);
    if (l.reply_len >= 256) {
        fprintf(stderr, "oneshot_load: -r: the reply must be shorter than 256 bytes\n");
        return 2;
    }
    l.max = max;
    pthread_mutex_init(&l.first_lock, NULL);

    static pthread_t threads[MAX_THREADS];
    double start = now();
    l.deadline = start + (double)seconds;
    long running = 0;
    for (; running < concurrency; running++) {
        if (pthread_create(&threads[running], NULL, worker, &l) != 0) {
            fprintf(stderr, "oneshot_load: could only start %ld threads\n", running);
            break;
        }
    }
    for (long i = 0; i < running; i++)
        pthread_join(threads[i], NULL);
    double elapsed = now() - start;

    long ok = atomic_load(&l.ok), errors = atomic_load(&l.errors);
    if (errors > 0)
        fprintf(stderr, "oneshot_load: %ld errors, the first: %s\n", errors, l.first_error);
    printf("connections=%ld errors=%ld seconds=%.3f conn_per_s=%.1f\n", ok, errors, elapsed,
           (double)ok / elapsed);
    pthread_mutex_destroy(&l.first_lock);
    return ok > 0 ? 0 : 1;
}
