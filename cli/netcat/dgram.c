/* The -u relay on the loop: stdin, stdout and one socket, with one datagram in
 * flight each way instead of a byte stream. Every callback ends in update(), which
 * decides what to watch next from the buffers' state. */
#include "dgram.h"

#include "hexdump.h"
#include "netio.h"
#include "netlog.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct dgram {
    sockit *s;
    bool connected;
    const relay_config *cfg;
    char in[DGRAM_MAX]; /* stdin, cut into datagrams */
    size_t in_len;
    bool stdin_eof;
    char out[DGRAM_RECV]; /* one received datagram on its way to stdout */
    size_t out_pos, out_len;
    bool stdout_gone;
    sockit_addr last; /* listen: the last sender, where stdin goes */
    bool have_last;
    double active, linger_at, first_by; /* loop times; < 0 for none */
    double first_wait;
    const char *why; /* why the loop was stopped */
    sockit_loop *loop;
    netio *in_io, *out_io;
    sockit_io *io;
    sockit_timer *timer; /* the earliest of -w, -i and -q */
    sockit_signal *sigint, *sigterm;
    unsigned long long hex_in, hex_out;
    long long bytes_in, bytes_out;
    bool failed;
} dgram;

size_t dgram_next(const char *buf, size_t len, size_t cap, bool eof)
{
    const char *nl = memchr(buf, '\n', len);
    if (nl != NULL)
        return (size_t)(nl - buf) + 1;
    if (len == cap || (eof && len > 0))
        return len;
    return 0;
}

/* The next datagram's length in the stdin buffer, 0 if none is complete yet. */
static size_t next_datagram(const dgram *d)
{
    return dgram_next(d->in, d->in_len, sizeof d->in, d->stdin_eof);
}

static bool can_send(const dgram *d) { return d->connected || d->have_last; }

/* A Unix datagram sender that never bound has no address to answer (the kernel
 * gives an empty one, or a bare family). */
bool dgram_answerable(const sockit_addr *a)
{
    int family = sockit_addr_family(a);
    return family == AF_INET || family == AF_INET6 ||
           (family == AF_UNIX && a->len > sizeof(sa_family_t));
}

static void receive(dgram *d)
{
    sockit_addr from;
    ssize_t n = sockit_recvfrom(d->s, d->out, sizeof d->out, 0, &from);
    if (n == SOCKIT_EWOULDBLOCK)
        return;
    if (n == SOCKIT_ETRUNCATED) {
        netlog_warn("%s (dropped)", sockit_errmsg());
        return;
    }
    if (n < 0) {
        netlog_warn("%s", sockit_errmsg());
        /* A connected socket hears ICMP errors (port unreachable): the peer is not
         * there. An unconnected one keeps serving other senders. */
        d->failed = d->connected;
        return;
    }
    /* listen -u --allow/--deny: a refused sender's datagram is dropped unseen, and
     * it does not become the one stdin answers. */
    if (!d->connected && d->cfg->gate != NULL && !gate_admit_datagram(d->cfg->gate, &from))
        return;
    if (!d->connected && (!d->have_last || !sockit_addr_equal(&from, &d->last))) {
        char name[CLI_PEER_NAME_MAX] = "unix:(unnamed)";
        netlog_connected(dgram_answerable(&from) ? cli_addr_text(&from, name, sizeof name) : name,
                         true, NULL);
        d->last = from;
        d->have_last = dgram_answerable(&from);
    }
    if (d->cfg->hexdump)
        hexdump(stderr, '<', &d->hex_in, d->out, (size_t)n);
    d->out_pos = 0;
    d->out_len = (size_t)n;
    d->bytes_in += n;
    d->active = sockit_loop_now(d->loop);
    d->first_by = -1;
}

static void send_one(dgram *d)
{
    size_t len = next_datagram(d);
    ssize_t n = d->connected ? sockit_send(d->s, d->in, len, 0)
                             : sockit_sendto_addr(d->s, d->in, len, 0, &d->last);
    if (n == SOCKIT_EWOULDBLOCK)
        return;
    if (n < 0) {
        netlog_warn("%s", sockit_errmsg());
        d->failed = d->connected;
    } else {
        if (d->cfg->hexdump)
            hexdump(stderr, '>', &d->hex_out, d->in, len);
        d->bytes_out += n;
        d->active = sockit_loop_now(d->loop);
    }
    /* A datagram that failed is dropped: retrying could loop forever. */
    memmove(d->in, d->in + len, d->in_len - len);
    d->in_len -= len;
}

static double earliest(double a, double b) { return a < 0 ? b : b < 0 ? a : a < b ? a : b; }

/* After every event: the end conditions, then what to watch and when to wake. */
static void update(dgram *d)
{
    double now = sockit_loop_now(d->loop);
    double idle_at = d->cfg->idle >= 0 ? d->active + d->cfg->idle : -1;
    const char *why = d->why;
    if (why != NULL) {
    } else if (d->failed) {
        why = "error";
    } else if (d->stdout_gone) {
        why = "stdout";
    } else if (d->first_by >= 0 && now >= d->first_by - 1e-6) {
        d->failed = true;
        cli_fail("no datagram within %g s (-w)", d->first_wait);
        why = "timeout";
    } else if (idle_at >= 0 && now >= idle_at - 1e-6) {
        why = "idle";
    } else if (d->linger_at >= 0 && now >= d->linger_at - 1e-6 && d->out_len == 0) {
        why = "linger";
    }
    if (why != NULL) {
        d->why = why;
        sockit_loop_stop(d->loop);
        return;
    }
    bool sendable = can_send(d) && next_datagram(d) > 0;
    netio_want(d->in_io, !d->stdin_eof && d->in_len < sizeof d->in && !sendable);
    netio_want(d->out_io, d->out_len > 0);
    sockit_io_start(d->io, (d->out_len == 0 ? SOCKIT_EVENT_READ : 0) |
                               (sendable ? SOCKIT_EVENT_WRITE : 0));
    /* An expired -q waits for stdout to drain, which wakes us then; the past
     * deadline must not turn the timer into a spin meanwhile. */
    double linger_wake = d->out_len == 0 ? d->linger_at : -1;
    double wake = earliest(earliest(idle_at, linger_wake), d->first_by);
    if (wake < 0)
        sockit_timer_stop(d->timer);
    else
        sockit_timer_start(d->timer, wake > now ? wake - now : 0, 0);
}

static void on_stdin(void *user)
{
    dgram *d = user;
    ssize_t n = netio_read_stdin(d->in + d->in_len, sizeof d->in - d->in_len);
    if (n > 0)
        d->in_len += (size_t)n;
    else if (n == 0)
        d->stdin_eof = true;
    if (d->stdin_eof && d->in_len == 0 && d->linger_at < 0 && d->cfg->linger >= 0)
        d->linger_at = sockit_loop_now(d->loop) + d->cfg->linger;
    update(d);
}

static void on_stdout(void *user)
{
    dgram *d = user;
    ssize_t n = netio_write_stdout(d->out + d->out_pos, d->out_len - d->out_pos);
    if (n > 0)
        d->out_pos += (size_t)n;
    else if (n == 0)
        d->stdout_gone = true;
    if (d->out_pos == d->out_len)
        d->out_pos = d->out_len = 0;
    update(d);
}

static void on_socket(sockit_io *io, int events, void *user)
{
    (void)io;
    dgram *d = user;
    if (events & SOCKIT_EVENT_READ)
        receive(d);
    if ((events & SOCKIT_EVENT_WRITE) && can_send(d) && next_datagram(d) > 0)
        send_one(d);
    if (d->stdin_eof && d->in_len == 0 && d->linger_at < 0 && d->cfg->linger >= 0)
        d->linger_at = sockit_loop_now(d->loop) + d->cfg->linger;
    update(d);
}

static void on_timer(sockit_timer *t, void *user)
{
    (void)t;
    update(user);
}

static void on_signal(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    (void)signum;
    (void)count;
    dgram *d = user;
    d->why = "signal";
    sockit_loop_stop(d->loop);
}

/* Sets up the loop and its watchers; returns false (said) on failure. */
static bool open_loop(dgram *d)
{
    d->loop = sockit_loop_new(NULL);
    if (d->loop == NULL)
        return false;
    d->in_io = netio_new(d->loop, STDIN_FILENO, SOCKIT_EVENT_READ, on_stdin, d);
    d->out_io = netio_new(d->loop, STDOUT_FILENO, SOCKIT_EVENT_WRITE, on_stdout, d);
    d->io = sockit_io_new_socket(d->loop, d->s, on_socket, d);
    d->timer = sockit_timer_new(d->loop, on_timer, d);
    d->sigint = sockit_signal_new(d->loop, on_signal, d);
    d->sigterm = sockit_signal_new(d->loop, on_signal, d);
    return d->in_io != NULL && d->out_io != NULL && d->io != NULL && d->timer != NULL &&
           d->sigint != NULL && d->sigterm != NULL && sockit_signal_start(d->sigint, SIGINT) == 0 &&
           sockit_signal_start(d->sigterm, SIGTERM) == 0;
}

static void close_loop(dgram *d)
{
    netio_close(d->in_io);
    netio_close(d->out_io);
    sockit_io_close(d->io);
    sockit_timer_close(d->timer);
    sockit_signal_close(d->sigint);
    sockit_signal_close(d->sigterm);
    sockit_loop_close(d->loop);
}

int dgram_relay(sockit *s, bool connected, const relay_config *cfg, double first_wait)
{
    dgram *d = calloc(1, sizeof *d);
    if (d == NULL) {
        sockit_close(s);
        return cli_fail("out of memory");
    }
    netio_init();
    sockit_setblocking(s, false);
    d->s = s;
    d->connected = connected;
    d->cfg = cfg;
    d->linger_at = -1;
    d->first_wait = first_wait;
    if (open_loop(d)) {
        double now = sockit_loop_now(d->loop);
        d->active = now;
        d->first_by = first_wait >= 0 ? now + first_wait : -1;
        update(d);
        if (sockit_loop_run(d->loop) < 0) {
            netlog_warn("%s", sockit_errmsg());
            d->failed = true;
        }
    } else {
        cli_fail_lib();
        d->failed = true;
    }
    const char *why = d->why != NULL ? d->why : "error";
    close_loop(d);
    sockit_close(s);
    netlog_exit(why, d->bytes_in, d->bytes_out, -1);
    int status = d->failed ? CLI_FAIL : CLI_OK;
    free(d);
    return status;
}
