/* The -u loop: the same named slots as relay.c (stdin, stdout, one socket), with
 * one datagram in flight each way instead of a byte stream. */
#include "dgram.h"

#include "hexdump.h"
#include "netlog.h"
#include "netloop.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DGRAM_RECV 65536

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
    int64_t active, linger_at, first_by;
    double first_wait;
    unsigned long long hex_in, hex_out;
    long long bytes_in, bytes_out;
    bool failed;
} dgram;

/* The next datagram's length in the stdin buffer, 0 if none is complete yet. */
static size_t next_datagram(const dgram *d)
{
    const char *nl = memchr(d->in, '\n', d->in_len);
    if (nl != NULL)
        return (size_t)(nl - d->in) + 1;
    if (d->in_len == sizeof d->in || (d->stdin_eof && d->in_len > 0))
        return d->in_len;
    return 0;
}

static bool can_send(const dgram *d) { return d->connected || d->have_last; }

/* A Unix datagram sender that never bound has no address to answer (the kernel
 * gives an empty one, or a bare family). */
static bool answerable(const sockit_addr *a)
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
    if (!d->connected && (!d->have_last || !sockit_addr_equal(&from, &d->last))) {
        char name[CLI_PEER_NAME_MAX] = "unix:(unnamed)";
        netlog_connected(answerable(&from) ? cli_addr_text(&from, name, sizeof name) : name, true);
        d->last = from;
        d->have_last = answerable(&from);
    }
    if (d->cfg->hexdump)
        hexdump(stderr, '<', &d->hex_in, d->out, (size_t)n);
    d->out_pos = 0;
    d->out_len = (size_t)n;
    d->bytes_in += n;
    d->active = netloop_now();
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
        d->active = netloop_now();
    }
    /* A datagram that failed is dropped: retrying could loop forever. */
    memmove(d->in, d->in + len, d->in_len - len);
    d->in_len -= len;
}

static void stdio_io(dgram *d, const struct pollfd *pfd)
{
    if (pfd[0].revents != 0) {
        ssize_t n = netloop_read_stdin(d->in + d->in_len, sizeof d->in - d->in_len);
        if (pfd[0].revents & POLLNVAL)
            n = 0;
        if (n > 0)
            d->in_len += (size_t)n;
        else if (n == 0)
            d->stdin_eof = true;
    }
    if (pfd[1].revents != 0) {
        ssize_t n = netloop_write_stdout(d->out + d->out_pos, d->out_len - d->out_pos);
        if (pfd[1].revents & POLLNVAL)
            n = 0;
        if (n > 0)
            d->out_pos += (size_t)n;
        else if (n == 0)
            d->stdout_gone = true;
        if (d->out_pos == d->out_len)
            d->out_pos = d->out_len = 0;
    }
}

static int64_t earliest(int64_t a, int64_t b) { return a < 0 ? b : b < 0 ? a : a < b ? a : b; }

/* Returns the reason the loop ended. */
static const char *run(dgram *d)
{
    for (;;) {
        int64_t now = netloop_now();
        int64_t idle_at =
            d->cfg->idle >= 0 ? d->active + (int64_t)(d->cfg->idle * 1000) : (int64_t)-1;
        if (netloop_interrupted())
            return "signal";
        if (d->failed)
            return "error";
        if (d->stdout_gone)
            return "stdout";
        if (d->first_by >= 0 && now >= d->first_by) {
            d->failed = true;
            cli_fail("no datagram within %g s (-w)", d->first_wait);
            return "timeout";
        }
        if (idle_at >= 0 && now >= idle_at)
            return "idle";
        if (d->linger_at >= 0 && now >= d->linger_at && d->out_len == 0)
            return "linger";
        bool sendable = can_send(d) && next_datagram(d) > 0;
        struct pollfd pfd[3] = {
            {.fd = !d->stdin_eof && d->in_len < sizeof d->in && !sendable ? STDIN_FILENO : -1,
             .events = POLLIN},
            {.fd = d->out_len > 0 ? STDOUT_FILENO : -1, .events = POLLOUT},
            {.fd = sockit_fileno(d->s),
             .events = (short)((d->out_len == 0 ? POLLIN : 0) | (sendable ? POLLOUT : 0))},
        };
        if (pfd[2].events == 0)
            pfd[2].fd = -1;
        /* An expired -q waits for stdout to drain; stdout's POLLOUT wakes us then, and
         * the past deadline must not turn poll into a spin meanwhile. */
        int64_t linger_wake = d->out_len == 0 ? d->linger_at : -1;
        int64_t wake = earliest(earliest(idle_at, linger_wake), d->first_by);
        if (netloop_poll(pfd, 3, netloop_until(wake)) < 0) {
            netlog_warn("poll: %s", strerror(errno));
            d->failed = true;
            return "error";
        }
        stdio_io(d, pfd);
        if ((pfd[2].events & POLLIN) && pfd[2].revents != 0)
            receive(d);
        if ((pfd[2].events & POLLOUT) && (pfd[2].revents & (POLLOUT | POLLERR)))
            send_one(d);
        if (d->stdin_eof && d->in_len == 0 && d->linger_at < 0)
            d->linger_at = netloop_after(d->cfg->linger);
    }
}

int dgram_relay(sockit *s, bool connected, const relay_config *cfg, double first_wait)
{
    dgram *d = calloc(1, sizeof *d);
    if (d == NULL) {
        sockit_close(s);
        return cli_fail("out of memory");
    }
    netloop_init();
    sockit_setblocking(s, false);
    d->s = s;
    d->connected = connected;
    d->cfg = cfg;
    d->active = netloop_now();
    d->linger_at = -1;
    d->first_by = netloop_after(first_wait);
    d->first_wait = first_wait;
    const char *why = run(d);
    sockit_close(s);
    netlog_exit(why, d->bytes_in, d->bytes_out, -1);
    int status = d->failed ? CLI_FAIL : CLI_OK;
    free(d);
    return status;
}
