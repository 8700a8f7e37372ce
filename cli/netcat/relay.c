/* The stream relay. One loop serves both `listen`/`connect` (one connection, no
 * listener) and `listen -k` (a listener and up to max_clients connections).
 *
 * Each pass: expire timers (-i, -q), build the poll set from the buffers' state,
 * wait, then move bytes: stdin -> net-out buffer -> every connection, every
 * connection -> stdout buffer -> stdout. The net-out buffer is shared: each
 * connection has its own position in it, and it is compacted past the slowest. */
#include "relay.h"

#include "hexdump.h"
#include "netlog.h"
#include "netloop.h"

#include <linux/sockios.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define RELAY_BUF       65536
#define EMFILE_BACKOFF  100 /* ms without accepting after EMFILE/ENFILE */
#define ACK_RECHECK     10  /* ms between looks at a send queue that is draining */
#define SLOT_STDIN      0
#define SLOT_STDOUT     1
#define SLOT_LISTEN     2
#define SLOT_FIRST_PEER 3

typedef struct peer {
    sockit *s;
    char name[CLI_PEER_NAME_MAX]; /* for messages */
    size_t sent;                  /* bytes of the net-out buffer this connection has taken */
    bool in_eof;                  /* the peer shut its side */
    bool shut;                    /* our write side is shut down */
    int64_t active;               /* when bytes last moved (for -i) */
    int64_t linger_at;            /* when -q expires, -1 before stdin ended */
    int64_t ack_at; /* alone, done but for the peer's acknowledgement: look again then */
    short events;   /* what this pass polls for */
} peer;

typedef struct relay {
    const relay_config *cfg;
    sockit *listener;     /* -k only */
    int64_t accept_after; /* EMFILE back-off */
    int64_t first_by;     /* -k -w: a client must have come by then; -1 for none */
    bool accepted;        /* -k: some client came */
    bool short_of_fds;    /* the last accept hit EMFILE/ENFILE */
    peer *peers;
    size_t npeers;
    char netout[RELAY_BUF]; /* stdin -> network */
    size_t netout_len;
    bool stdin_eof, stdin_tty;
    long long stdin_read; /* bytes read from stdin */
    char out[RELAY_BUF];  /* network -> stdout */
    size_t out_pos, out_len;
    bool stdout_gone;
    unsigned long long hex_in, hex_out;
    long long bytes_in, bytes_out;
    const char *last_close; /* why the last connection ended */
    bool failed;            /* a connection ended in an error */
    long long undelivered;  /* alone: input that never reached the peer; -1 none */
} relay;

/* Bytes written to p that its peer has not acknowledged yet. */
static int unacknowledged(const peer *p)
{
    /* For TCP, SIOCOUTQ is what was sent and not yet acknowledged; a Unix stream
     * socket answers with what its peer has not read. Where it cannot be asked,
     * what was written counts as delivered. */
    int queued = 0;
    if (ioctl(sockit_fileno(p->s), SIOCOUTQ, &queued) < 0 || queued < 0)
        queued = 0;
    return queued;
}

/* Alone (not -k), the input was delivered when all of it was read and written and
 * the peer's TCP acknowledged every byte (an empty send queue) before the
 * connection ended, whichever of FIN or RST came first. Returns the bytes that
 * were not, and says so; 0 when all were (a terminal's unread input is nobody's
 * loss). */
static long long check_delivery(relay *r, const peer *p, const char *reason)
{
    int queued = unacknowledged(p);
    long long lost = r->stdin_read - (r->bytes_out - queued);
    bool unread = !r->stdin_eof && !r->stdin_tty;
    if (lost <= 0 && !unread)
        return 0;
    if (lost < 0)
        lost = 0;
    const char *how = strcmp(reason, "peer") == 0    ? "the peer closed the connection"
                      : strcmp(reason, "reset") == 0 ? "the peer reset the connection"
                                                     : "the connection failed";
    cli_fail("%lld bytes of input not delivered to %s: %s first%s", lost, p->name, how,
             unread ? " (and stdin was not read to its end)" : "");
    return lost;
}

static void drop_peer(relay *r, size_t i, const char *reason)
{
    peer *p = &r->peers[i];
    netlog_closed(p->name, reason);
    bool peer_ended =
        strcmp(reason, "peer") == 0 || strcmp(reason, "reset") == 0 || strcmp(reason, "error") == 0;
    if (r->listener == NULL && peer_ended && r->undelivered < 0) {
        long long lost = check_delivery(r, p, reason);
        if (lost > 0 || (!r->stdin_eof && !r->stdin_tty)) {
            r->undelivered = lost;
            r->failed = true;
        }
    }
    sockit_close(p->s);
    r->last_close = reason;
    r->peers[i] = r->peers[--r->npeers];
}

static void add_peer(relay *r, sockit *s, const sockit_addr *addr)
{
    sockit_setblocking(s, false);
    peer *p = &r->peers[r->npeers++];
    *p = (peer){
        .s = s, .sent = r->netout_len, .active = netloop_now(), .linger_at = -1, .ack_at = -1};
    cli_peer_name(s, addr, p->name, sizeof p->name);
}

/* The library's send/recv messages do not name the peer: suffix it. */
static const char *peer_message(const peer *p)
{
    static char msg[1024 + CLI_PEER_NAME_MAX];
    snprintf(msg, sizeof msg, "%s (%s)", sockit_errmsg(), p->name);
    return msg;
}

/* A failed send or recv: a reset is the peer's doing, anything else is reported. */
static void peer_failed(relay *r, size_t i, ssize_t code)
{
    if ((code == -ECONNRESET || code == -EPIPE) && r->peers[i].in_eof) {
        drop_peer(r, i, "peer"); /* it closed, then refused what we still sent */
        return;
    }
    if (code == -ECONNRESET || code == -EPIPE) {
        /* Alone, lost input is the story if there is any (drop_peer tells it), else
         * the reset is. */
        const char *msg = peer_message(&r->peers[i]);
        drop_peer(r, i, "reset");
        if (r->listener == NULL && r->undelivered < 0) {
            netlog_warn("%s", msg);
            r->failed = true;
        }
        return;
    }
    netlog_warn("%s", peer_message(&r->peers[i]));
    /* With -k one client's failure is not the session's: -k ends with 0 on a signal. */
    if (r->listener == NULL)
        r->failed = true;
    drop_peer(r, i, "error");
}

static void timers(relay *r, int64_t now)
{
    for (size_t i = r->npeers; i-- > 0;) {
        peer *p = &r->peers[i];
        if (r->cfg->idle >= 0 && now - p->active >= (int64_t)(r->cfg->idle * 1000)) {
            drop_peer(r, i, "idle");
        } else if (p->linger_at >= 0 && now >= p->linger_at) {
            drop_peer(r, i, "linger");
        }
    }
}

static int64_t next_timer(const relay *r)
{
    int64_t at = -1;
    for (size_t i = 0; i < r->npeers; i++) {
        const peer *p = &r->peers[i];
        int64_t t = r->cfg->idle >= 0 ? p->active + (int64_t)(r->cfg->idle * 1000) : -1;
        if (p->linger_at >= 0 && (t < 0 || p->linger_at < t))
            t = p->linger_at;
        if (p->ack_at >= 0 && (t < 0 || p->ack_at < t))
            t = p->ack_at;
        if (t >= 0 && (at < 0 || t < at))
            at = t;
    }
    if (r->listener != NULL && r->accept_after > netloop_now() && (at < 0 || r->accept_after < at))
        at = r->accept_after;
    if (!r->accepted && r->first_by >= 0 && (at < 0 || r->first_by < at))
        at = r->first_by;
    return at;
}

/* Fills the poll set; returns its size. Slots without interest get fd -1, so a
 * hung-up descriptor nobody reads cannot make poll return at once forever. */
static nfds_t poll_set(relay *r, struct pollfd *pfd)
{
    pfd[SLOT_STDIN] = (struct pollfd){.fd = -1, .events = POLLIN};
    if (!r->stdin_eof && r->npeers > 0 && r->netout_len < RELAY_BUF)
        pfd[SLOT_STDIN].fd = STDIN_FILENO;
    pfd[SLOT_STDOUT] = (struct pollfd){.fd = -1, .events = POLLOUT};
    if (!r->stdout_gone && r->out_pos < r->out_len)
        pfd[SLOT_STDOUT].fd = STDOUT_FILENO;
    pfd[SLOT_LISTEN] = (struct pollfd){.fd = -1, .events = POLLIN};
    if (r->listener != NULL && (long)r->npeers < r->cfg->max_clients &&
        netloop_now() >= r->accept_after)
        pfd[SLOT_LISTEN].fd = sockit_fileno(r->listener);
    for (size_t i = 0; i < r->npeers; i++) {
        peer *p = &r->peers[i];
        p->events = 0;
        if (!p->in_eof && !r->stdout_gone && r->out_len < RELAY_BUF)
            p->events |= POLLIN;
        if (!p->shut && p->sent < r->netout_len)
            p->events |= POLLOUT;
        pfd[SLOT_FIRST_PEER + i] =
            (struct pollfd){.fd = p->events ? sockit_fileno(p->s) : -1, .events = p->events};
    }
    return SLOT_FIRST_PEER + r->npeers;
}

static void accept_one(relay *r)
{
    sockit_addr addr;
    sockit *c = sockit_accept(r->listener, &addr);
    if (c == NULL) {
        int code = sockit_errcode();
        if (code == -EMFILE || code == -ENFILE) {
            /* Once per shortage, not once per retry. */
            if (!r->short_of_fds)
                netlog_warn("%s (retrying every %d ms)", sockit_errmsg(), EMFILE_BACKOFF);
            r->short_of_fds = true;
            r->accept_after = netloop_now() + EMFILE_BACKOFF;
        }
        /* EAGAIN, ECONNABORTED and the like: the client is gone, nothing to do. */
        return;
    }
    r->short_of_fds = false;
    r->accepted = true;
    add_peer(r, c, &addr);
    netlog_connected(r->peers[r->npeers - 1].name, true);
}

static void stdio_io(relay *r, const struct pollfd *pfd)
{
    if (pfd[SLOT_STDIN].revents != 0) {
        ssize_t n = netloop_read_stdin(r->netout + r->netout_len, RELAY_BUF - r->netout_len);
        if (pfd[SLOT_STDIN].revents & POLLNVAL)
            n = 0;
        if (n > 0) {
            r->netout_len += (size_t)n;
            r->stdin_read += n;
        } else if (n == 0) {
            r->stdin_eof = true;
        }
    }
    if (pfd[SLOT_STDOUT].revents != 0) {
        ssize_t n = netloop_write_stdout(r->out + r->out_pos, r->out_len - r->out_pos);
        if (pfd[SLOT_STDOUT].revents & POLLNVAL)
            n = 0;
        if (n > 0)
            r->out_pos += (size_t)n;
        else if (n == 0)
            r->stdout_gone = true;
        if (r->out_pos == r->out_len)
            r->out_pos = r->out_len = 0;
    }
}

/* Moves bytes for connection i; returns false if it was dropped. */
static bool peer_io(relay *r, size_t i, short revents)
{
    peer *p = &r->peers[i];
    if ((p->events & POLLIN) && (revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = sockit_recv(p->s, r->out + r->out_len, RELAY_BUF - r->out_len, 0);
        if (n > 0) {
            if (r->cfg->hexdump)
                hexdump(stderr, '<', &r->hex_in, r->out + r->out_len, (size_t)n);
            r->out_len += (size_t)n;
            r->bytes_in += n;
            p->active = netloop_now();
        } else if (n == 0) {
            p->in_eof = true;
        } else if (n != SOCKIT_EWOULDBLOCK) {
            peer_failed(r, i, n);
            return false;
        }
    }
    if ((p->events & POLLOUT) && (revents & (POLLOUT | POLLHUP | POLLERR))) {
        ssize_t n = sockit_send(p->s, r->netout + p->sent, r->netout_len - p->sent, 0);
        if (n > 0) {
            if (r->cfg->hexdump)
                hexdump(stderr, '>', &r->hex_out, r->netout + p->sent, (size_t)n);
            p->sent += (size_t)n;
            r->bytes_out += n;
            p->active = netloop_now();
        } else if (n < 0 && n != SOCKIT_EWOULDBLOCK) {
            peer_failed(r, i, n);
            return false;
        }
    }
    return true;
}

/* After the I/O: half-close, -q, and whether connection i is done. */
static void peer_state(relay *r, size_t i)
{
    peer *p = &r->peers[i];
    bool drained = r->stdin_eof && p->sent == r->netout_len;
    if (drained && r->cfg->half_close && !p->shut) {
        p->shut = true;
        /* ENOTCONN: the peer is already gone; the next recv says how. */
        sockit_shutdown(p->s, SHUT_WR);
    }
    if (drained && r->cfg->linger >= 0 && p->linger_at < 0)
        p->linger_at = netloop_after(r->cfg->linger);
    /* With -k a connection ends when its peer does; alone, both directions must end,
     * unless stdin is a terminal nobody will type into for a closed peer. */
    if (p->in_eof && (r->listener != NULL || drained || r->stdin_tty)) {
        /* The peer half-closed long ago, and what was just written may still be on
         * its way: the relay is done only once the peer's TCP has it all. No event
         * says so, hence a short timer. */
        if (r->listener == NULL && drained && unacknowledged(p) > 0) {
            /* A peer that vanished is given up by TCP in the end: that ends the wait. */
            int err = 0;
            if (sockit_getsockopt_int(p->s, SOL_SOCKET, SO_ERROR, &err) == 0 && err != 0) {
                drop_peer(r, i, "error");
                return;
            }
            p->ack_at = netloop_now() + ACK_RECHECK;
            return;
        }
        drop_peer(r, i, "peer");
    }
}

static void compact(relay *r)
{
    if (r->out_pos > 0 && r->out_pos >= RELAY_BUF / 2) {
        memmove(r->out, r->out + r->out_pos, r->out_len - r->out_pos);
        r->out_len -= r->out_pos;
        r->out_pos = 0;
    }
    if (r->npeers == 0) {
        r->netout_len = 0; /* nobody left to send it to */
        return;
    }
    size_t low = r->netout_len;
    for (size_t i = 0; i < r->npeers; i++)
        if (r->peers[i].sent < low)
            low = r->peers[i].sent;
    if (low == 0)
        return;
    memmove(r->netout, r->netout + low, r->netout_len - low);
    r->netout_len -= low;
    for (size_t i = 0; i < r->npeers; i++)
        r->peers[i].sent -= low;
}

/* The loop. Returns the reason it ended ("done", "signal", "stdout"). */
static const char *run(relay *r)
{
    struct pollfd *pfd = calloc(SLOT_FIRST_PEER + (size_t)r->cfg->max_clients, sizeof *pfd);
    if (pfd == NULL)
        return "error";
    const char *why = "done";
    for (;;) {
        timers(r, netloop_now());
        if (netloop_interrupted()) {
            why = "signal";
            break;
        }
        if (r->stdout_gone) {
            why = "stdout";
            break;
        }
        if (!r->accepted && r->first_by >= 0 && netloop_now() >= r->first_by) {
            r->failed = true;
            cli_fail("no client within %g s (-w)", r->cfg->wait);
            why = "timeout";
            break;
        }
        if (r->listener == NULL && r->npeers == 0 && r->out_pos == r->out_len)
            break;
        nfds_t n = poll_set(r, pfd);
        if (netloop_poll(pfd, n, netloop_until(next_timer(r))) < 0) {
            r->failed = true;
            netlog_warn("poll: %s", strerror(errno));
            why = "error";
            break;
        }
        stdio_io(r, pfd);
        /* Peers move in the array when one is dropped: walk backwards, so a moved
         * peer (from the end) has been seen already. */
        for (size_t i = r->npeers; i-- > 0;)
            if (peer_io(r, i, pfd[SLOT_FIRST_PEER + i].revents))
                peer_state(r, i);
        if (pfd[SLOT_LISTEN].revents != 0)
            accept_one(r);
        compact(r);
    }
    free(pfd);
    while (r->npeers > 0)
        drop_peer(r, r->npeers - 1, why);
    return why;
}

static relay *relay_new(const relay_config *cfg, size_t max)
{
    relay *r = calloc(1, sizeof *r);
    if (r != NULL)
        r->peers = calloc(max, sizeof *r->peers);
    if (r == NULL || r->peers == NULL) {
        free(r);
        cli_fail("out of memory");
        return NULL;
    }
    r->cfg = cfg;
    r->stdin_tty = isatty(STDIN_FILENO);
    r->first_by = -1;
    r->undelivered = -1;
    return r;
}

static int finish(relay *r, const char *why)
{
    if (strcmp(why, "done") == 0 && r->last_close != NULL && strcmp(r->last_close, "peer") != 0)
        why = r->last_close; /* idle, linger, reset */
    if (r->undelivered >= 0)
        why = "undelivered";
    netlog_exit(why, r->bytes_in, r->bytes_out, r->undelivered);
    /* -k runs until told to stop; a single connection cut short by a signal did not
     * finish its transfer. */
    bool cut = strcmp(why, "signal") == 0 && r->listener == NULL;
    int status = r->failed || cut || strcmp(why, "error") == 0 ? CLI_FAIL : CLI_OK;
    free(r->peers);
    free(r);
    return status;
}

int relay_stream(sockit *conn, const sockit_addr *peer_addr, const relay_config *cfg)
{
    relay_config one = *cfg;
    one.max_clients = 1;
    relay *r = relay_new(&one, 1);
    if (r == NULL) {
        sockit_close(conn);
        return CLI_FAIL;
    }
    netloop_init();
    add_peer(r, conn, peer_addr);
    const char *why = run(r);
    return finish(r, why);
}

int relay_serve(sockit *listener, const relay_config *cfg)
{
    relay *r = relay_new(cfg, (size_t)cfg->max_clients);
    if (r == NULL)
        return CLI_FAIL;
    netloop_init();
    sockit_setblocking(listener, false);
    r->listener = listener;
    r->first_by = netloop_after(cfg->wait);
    const char *why = run(r);
    return finish(r, why);
}
