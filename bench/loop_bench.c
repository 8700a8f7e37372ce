/* The loop's own costs, measured against raw epoll doing the same work in the same
 * run (a benchmark, never a test):
 *   timers    start+stop pairs per second with 1,000,000 timers active
 *   wakeup    a cross-thread round trip: two loops waking each other (sockit_wakeup)
 *             against two threads ping-ponging eventfds under epoll_wait
 *   selector  register, modify, unregister (per call) and select (per ready event,
 *             reads included) against epoll_ctl and epoll_wait
 * Every pair is interleaved (for each repeat: raw, then sockit) and the median of
 * the repeats reported. Prints a Markdown section, then one JSON line.
 *   loop_bench [--repeats N] [--quick] */
#define _GNU_SOURCE
#include <sockit.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what)
{
    fprintf(stderr, "loop_bench: %s: %s\n", what, sockit_errmsg());
    exit(1);
}

static unsigned rng = 2463534242u;
static unsigned next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* ---- timers ---------------------------------------------------------------------- */

static void never(sockit_timer *t, void *user)
{
    (void)t;
    (void)user;
}

/* Nanoseconds per start+stop pair, with `active` timers in the heap. */
static double timers_ns(int active, int pairs)
{
    sockit_loop *loop = sockit_loop_new(NULL);
    if (loop == NULL)
        die("loop_new");
    sockit_timer **t = malloc((size_t)active * sizeof *t);
    if (t == NULL)
        die("malloc");
    for (int i = 0; i < active; i++) {
        t[i] = sockit_timer_new(loop, never, NULL);
        if (t[i] == NULL || sockit_timer_start(t[i], 100.0 + next_rand() % 100000 / 1000.0, 0) < 0)
            die("timer_start");
    }
    double t0 = now();
    for (int i = 0; i < pairs; i++) {
        sockit_timer *x = t[next_rand() % (unsigned)active];
        sockit_timer_stop(x);
        sockit_timer_start(x, 100.0 + next_rand() % 100000 / 1000.0, 0);
    }
    double ns = (now() - t0) * 1e9 / pairs;
    for (int i = 0; i < active; i++)
        sockit_timer_close(t[i]);
    free(t);
    sockit_loop_close(loop);
    return ns;
}

/* ---- cross-thread wakeup round trip ---------------------------------------------- */

struct side {
    sockit_loop *loop;
    sockit_wakeup *mine, *other;
    int left;
};

static void bounce(sockit_wakeup *w, void *user)
{
    (void)w;
    struct side *s = user;
    sockit_wakeup_send(s->other);
    if (--s->left <= 0)
        sockit_loop_stop(s->loop);
}

static void *run_side(void *arg)
{
    struct side *s = arg;
    sockit_loop_run(s->loop);
    return NULL;
}

static double wakeup_sockit_us(int trips)
{
    struct side a = {0}, b = {0};
    a.loop = sockit_loop_new(NULL);
    b.loop = sockit_loop_new(NULL);
    if (a.loop == NULL || b.loop == NULL)
        die("loop_new");
    a.mine = sockit_wakeup_new(a.loop, bounce, &a);
    b.mine = sockit_wakeup_new(b.loop, bounce, &b);
    sockit_wakeup_keepalive(a.mine, true);
    sockit_wakeup_keepalive(b.mine, true);
    a.other = b.mine;
    b.other = a.mine;
    a.left = trips;
    b.left = trips;
    pthread_t tb;
    pthread_create(&tb, NULL, run_side, &b);
    double t0 = now();
    sockit_wakeup_send(a.mine);
    sockit_loop_run(a.loop);
    double us = (now() - t0) * 1e6 / trips;
    sockit_loop_stop(b.loop);
    pthread_join(tb, NULL);
    sockit_wakeup_close(a.mine);
    sockit_wakeup_close(b.mine);
    sockit_loop_close(a.loop);
    sockit_loop_close(b.loop);
    return us;
}

struct raw_side {
    int ep, mine, other, left;
};

static void *raw_run(void *arg)
{
    struct raw_side *s = arg;
    struct epoll_event ev;
    uint64_t v = 1;
    while (s->left > 0) {
        if (epoll_wait(s->ep, &ev, 1, -1) <= 0)
            continue;
        if (read(s->mine, &v, sizeof v) < 0)
            continue;
        v = 1;
        if (write(s->other, &v, sizeof v) < 0)
            break;
        s->left--;
    }
    return NULL;
}

static double wakeup_raw_us(int trips)
{
    struct raw_side a, b;
    int fa = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), fb = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a = (struct raw_side){epoll_create1(EPOLL_CLOEXEC), fa, fb, trips};
    b = (struct raw_side){epoll_create1(EPOLL_CLOEXEC), fb, fa, trips};
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(a.ep, EPOLL_CTL_ADD, fa, &ev);
    epoll_ctl(b.ep, EPOLL_CTL_ADD, fb, &ev);
    pthread_t tb;
    pthread_create(&tb, NULL, raw_run, &b);
    double t0 = now();
    uint64_t one = 1;
    if (write(fa, &one, sizeof one) < 0)
        die("write");
    raw_run(&a);
    double us = (now() - t0) * 1e6 / trips;
    pthread_join(tb, NULL);
    close(a.ep);
    close(b.ep);
    close(fa);
    close(fb);
    return us;
}

/* ---- selector against epoll ---------------------------------------------------------- */

enum { REGISTER, MODIFY, UNREGISTER, SELECT, SELECT_OPS };
static const char *const select_op_names[SELECT_OPS] = {"register", "modify", "unregister",
                                                        "select (per ready event)"};

/* Nanoseconds per call (per ready event for SELECT) of each operation over npairs
 * socketpairs with `ready` of them readable per round, for raw epoll or the
 * selector. */
static void selector_ns(bool raw, int npairs, int ready, int rounds, double out[SELECT_OPS])
{
    int(*fds)[2] = malloc((size_t)npairs * sizeof *fds);
    if (fds == NULL)
        die("malloc");
    for (int i = 0; i < npairs; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds[i]) < 0)
            die("socketpair");
    int ep = -1;
    sockit_selector *sel = NULL;
    if (raw)
        ep = epoll_create1(EPOLL_CLOEXEC);
    else if ((sel = sockit_selector_new(NULL)) == NULL)
        die("selector_new");

    double t0 = now();
    for (int i = 0; i < npairs; i++) {
        if (raw) {
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, fds[i][0], &ev);
        } else if (sockit_selector_register(sel, fds[i][0], SOCKIT_EVENT_READ, &fds[i]) < 0) {
            die("register");
        }
    }
    out[REGISTER] = (now() - t0) * 1e9 / npairs;

    t0 = now();
    for (int i = 0; i < npairs; i++) {
        int events = SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE;
        if (raw) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)i};
            epoll_ctl(ep, EPOLL_CTL_MOD, fds[i][0], &ev);
            ev.events = EPOLLIN;
            epoll_ctl(ep, EPOLL_CTL_MOD, fds[i][0], &ev);
        } else {
            sockit_selector_modify(sel, fds[i][0], events, &fds[i]);
            sockit_selector_modify(sel, fds[i][0], SOCKIT_EVENT_READ, &fds[i]);
        }
    }
    out[MODIFY] = (now() - t0) * 1e9 / (2.0 * npairs);

    /* Each round: `ready` pairs get a byte; one wait reports them; each is read. The
     * writes are outside the timed part, which is the wait and the reads. */
    struct epoll_event *evs = malloc((size_t)ready * sizeof *evs);
    sockit_selector_event *sevs = malloc((size_t)ready * sizeof *sevs);
    if (evs == NULL || sevs == NULL)
        die("malloc");
    double timed = 0;
    long events = 0;
    char byte = 'x', sink[16];
    for (int r = 0; r < rounds; r++) {
        int base = (int)(next_rand() % (unsigned)(npairs - ready + 1));
        for (int i = 0; i < ready; i++)
            if (write(fds[base + i][1], &byte, 1) != 1)
                die("write");
        double s0 = now();
        int got = 0;
        while (got < ready) {
            if (raw) {
                int n = epoll_wait(ep, evs, ready, -1);
                for (int i = 0; i < n; i++)
                    if (read(fds[evs[i].data.u64][0], sink, sizeof sink) > 0)
                        got++;
            } else {
                ssize_t n = sockit_selector_select(sel, -1, sevs, (size_t)ready);
                for (ssize_t i = 0; i < n; i++)
                    if (read(sevs[i].key->fd, sink, sizeof sink) > 0)
                        got++;
            }
        }
        timed += now() - s0;
        events += got;
    }
    out[SELECT] = timed * 1e9 / (double)events;

    t0 = now();
    for (int i = 0; i < npairs; i++) {
        if (raw)
            epoll_ctl(ep, EPOLL_CTL_DEL, fds[i][0], NULL);
        else
            sockit_selector_unregister(sel, fds[i][0]);
    }
    out[UNREGISTER] = (now() - t0) * 1e9 / npairs;

    free(evs);
    free(sevs);
    if (raw)
        close(ep);
    else
        sockit_selector_close(sel);
    for (int i = 0; i < npairs; i++) {
        close(fds[i][0]);
        close(fds[i][1]);
    }
    free(fds);
}

int main(int argc, char **argv)
{
    int repeats = 5;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            repeats = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            fprintf(stderr, "usage: loop_bench [--repeats N] [--quick]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > 99) {
        fprintf(stderr, "loop_bench: --repeats %d: need 1-99\n", repeats);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const int active = quick ? 100000 : 1000000, pairs = quick ? 200000 : 2000000;
    const int trips = quick ? 20000 : 100000;
    const int npairs = quick ? 1000 : 5000, ready = 100, rounds = quick ? 200 : 2000;

    double *tm = calloc((size_t)repeats, sizeof *tm);
    double *wr = calloc((size_t)repeats, sizeof *wr), *ws = calloc((size_t)repeats, sizeof *ws);
    double(*sr)[SELECT_OPS] = calloc((size_t)repeats, sizeof *sr);
    double(*ss)[SELECT_OPS] = calloc((size_t)repeats, sizeof *ss);
    if (!tm || !wr || !ws || !sr || !ss)
        die("calloc");
    for (int r = 0; r < repeats; r++) {
        tm[r] = timers_ns(active, pairs);
        wr[r] = wakeup_raw_us(trips);
        ws[r] = wakeup_sockit_us(trips);
        selector_ns(true, npairs, ready, rounds, sr[r]);
        selector_ns(false, npairs, ready, rounds, ss[r]);
    }
    double timer_ns = median(tm, repeats);
    double wake_raw = median(wr, repeats), wake_sockit = median(ws, repeats);
    double sel_raw[SELECT_OPS], sel_sockit[SELECT_OPS];
    for (int op = 0; op < SELECT_OPS; op++) {
        double a[99], b[99];
        for (int r = 0; r < repeats; r++) {
            a[r] = sr[r][op];
            b[r] = ss[r][op];
        }
        sel_raw[op] = median(a, repeats);
        sel_sockit[op] = median(b, repeats);
    }

    printf("## The loop (bench/loop_bench.c)\n\n");
    printf("Median of %d interleaved repeats, one core; backend epoll.\n\n", repeats);
    printf("| what | raw epoll | sockit | ratio |\n|---|---:|---:|---:|\n");
    printf("| timer start+stop, %d active | | %.0f ns (%.2f M pairs/s) | |\n", active, timer_ns,
           1e3 / timer_ns);
    printf("| cross-thread wakeup round trip | %.1f us | %.1f us | %.2fx |\n", wake_raw,
           wake_sockit, wake_sockit / wake_raw);
    for (int op = 0; op < SELECT_OPS; op++)
        printf("| selector %s, %d fds%s | %.0f ns | %.0f ns | %.2fx |\n", select_op_names[op],
               npairs, op == SELECT ? ", 100 ready" : "", sel_raw[op], sel_sockit[op],
               sel_sockit[op] / sel_raw[op]);
    printf("\n{\"timer_pair_ns\":%.1f,\"timers_active\":%d,\"wakeup_raw_us\":%.2f,"
           "\"wakeup_sockit_us\":%.2f",
           timer_ns, active, wake_raw, wake_sockit);
    static const char *const keys[SELECT_OPS] = {"register", "modify", "unregister", "select"};
    for (int op = 0; op < SELECT_OPS; op++)
        printf(",\"%s_raw_ns\":%.1f,\"%s_sockit_ns\":%.1f", keys[op], sel_raw[op], keys[op],
               sel_sockit[op]);
    printf(",\"repeats\":%d}\n", repeats);
    free(tm);
    free(wr);
    free(ws);
    free(sr);
    free(ss);
    return 0;
}
