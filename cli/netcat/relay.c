/* The stream relay on the loop. One shape serves both `listen`/`connect` (one
 * connection, no listener) and `listen -k` (an accepter and many connections).
 *
 * Nothing is done per pass over all connections: each connection has its own
 * watcher, asking for READ while it may be read and for WRITE only while it has
 * stdin bytes left to take, and its own timer only with -i, -q or a pending
 * acknowledgement. stdin goes through netout, with stream offsets: `behind` counts
 * the connections that have not taken all of it; with -k stdin is read again when
 * it is 0 (the slowest paces it), alone while netout has room. What connections send goes whole
 * into `out` for stdout; a connection that finds it full is paused (its READ stopped) on the
 * waiting list until stdout takes some. Idle peers cost nothing until they speak. */
#include "relay.h"

#include "accepter.h"
#include "delivery.h"
#include "hexdump.h"
#include "netio.h"
#include "netlog.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RELAY_BUF   65536
#define ACK_RECHECK 0.01 /* s between looks at a send queue that is draining */

typedef struct relay relay;
typedef struct peer peer;

struct peer {
    relay *r;
    sockit *s;
    sockit_io *io;
    sockit_timer *timer; /* -i, -q and the acknowledgement recheck; made when needed */
    peer *prev, *next;   /* every connection */
    peer *wprev, *wnext; /* the waiting list, while paused */
    uint64_t sent;       /* stdin stream offset this connection has taken */
    double active;       /* loop time bytes last moved (for -i) */
    double linger_at;    /* when -q expires, < 0 before stdin ended */
    double ack_at;       /* alone, done but for the acknowledgement: look again then */
    int rd_need;         /* what the next recv waits for: READ, or TLS's want after a */
    int wr_need;         /* would-block (WRITE for a recv, READ for a send); likewise */
    bool owes;           /* has part of the current stdin chunk left (in behind) */
    bool in_eof;         /* the peer shut its side */
    bool shut;           /* our write side is shut down */
    bool paused;         /* not read until stdout has room */
    char name[CLI_PEER_NAME_MAX];
};

struct relay {
    const relay_config *cfg;
    sockit_loop *loop;
    sockit_signal *sigint, *sigterm;
    netio *in, *out_io;
    accepter *acc;       /* -k only */
    sockit_timer *first; /* -k -w: a client must have come by then */
    bool keep;           /* -k */
    peer *peers, *waiting;
    size_t npeers;
    char netout[RELAY_BUF]; /* stdin -> network: stream bytes [base, base + len) */
    uint64_t base;
    size_t len, behind;
    bool stdin_eof, stdin_tty;
    long long stdin_read;
    char out[RELAY_BUF]; /* network -> stdout */
    size_t out_pos, out_len;
    bool stdout_gone;
    unsigned long long hex_in, hex_out;
    long long bytes_in, bytes_out;
    const char *why;        /* why the loop was stopped; NULL while it runs */
    const char *last_close; /* why the last connection ended */
    bool failed;            /* a connection ended in an error */
    long long undelivered;  /* alone: input that never reached the peer; -1 none */
};

static void end(relay *r, const char *why)
{
    if (r->why == NULL)
        r->why = why;
    sockit_loop_stop(r->loop);
}

/* The stdin bytes the single connection has not taken yet (0 with -k). */
static size_t unsent(const relay *r)
{
    const peer *p = r->peers;
    return !r->keep && p != NULL && p->owes ? (size_t)(r->base + r->len - p->sent) : 0;
}

/* With -k stdin is read when every connection has the last chunk; alone, whenever
 * netout has room, so what stdin has is on its way while the socket is busy. */
static void want_stdin(relay *r)
{
    bool room = r->keep ? r->behind == 0 : unsent(r) < RELAY_BUF;
    netio_want(r->in, !r->stdin_eof && r->npeers > 0 && room && r->why == NULL);
}

static void want_stdout(relay *r)
{
    netio_want(r->out_io, !r->stdout_gone && r->out_pos < r->out_len);
}

static bool peer_reading(const peer *p) { return !p->in_eof && !p->paused && !p->r->stdout_gone; }
static bool peer_writing(const peer *p) { return p->owes && !p->shut; }

/* After a would-block: what the socket must become for the call to go on. A plain
 * socket, or a TLS one waiting for the call's own direction, gives dflt. */
static int need_after_block(const sockit *s, int dflt)
{
    int want = sockit_tls_wants(s);
    return want != 0 ? want : dflt;
}

static void peer_watch(peer *p)
{
    int ev = 0;
    if (peer_reading(p))
        ev |= p->rd_need;
    if (peer_writing(p))
        ev |= p->wr_need;
    sockit_io_start(p->io, ev);
}

/* The peer's timer, due at the earliest of -i, -q and the acknowledgement recheck.
 * Activity only moves p->active: an idle timer that fires early starts again for
 * what is left, so moving bytes never touches the timer heap. */
static void peer_schedule(peer *p)
{
    const relay_config *cfg = p->r->cfg;
    double at = -1;
    if (cfg->idle >= 0)
        at = p->active + cfg->idle;
    if (p->linger_at >= 0 && (at < 0 || p->linger_at < at))
        at = p->linger_at;
    if (p->ack_at >= 0 && (at < 0 || p->ack_at < at))
        at = p->ack_at;
    if (at < 0) {
        sockit_timer_stop(p->timer);
        return;
    }
    double left = at - sockit_loop_now(p->r->loop);
    sockit_timer_start(p->timer, left > 0 ? left : 0, 0);
}

static void unpause(peer *p)
{
    relay *r = p->r;
    if (!p->paused)
        return;
    p->paused = false;
    if (p->wprev != NULL)
        p->wprev->wnext = p->wnext;
    else
        r->waiting = p->wnext;
    if (p->wnext != NULL)
        p->wnext->wprev = p->wprev;
}

static void drop_peer(peer *p, const char *reason)
{
    relay *r = p->r;
    netlog_closed(p->name, reason);
    bool peer_ended =
        strcmp(reason, "peer") == 0 || strcmp(reason, "reset") == 0 || strcmp(reason, "error") == 0;
    if (!r->keep && peer_ended && r->undelivered < 0) {
        delivery d = {r->stdin_read, r->bytes_out, r->stdin_eof, r->stdin_tty};
        long long lost = delivery_check(p->s, p->name, reason, &d);
        if (lost > 0 || (!r->stdin_eof && !r->stdin_tty)) {
            r->undelivered = lost;
            r->failed = true;
        }
    }
    unpause(p);
    if (p->owes)
        r->behind--;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        r->peers = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    r->npeers--;
    r->last_close = reason;
    sockit_io_close(p->io);
    sockit_timer_close(p->timer);
    sockit_close(p->s);
    free(p);
    if (r->acc != NULL)
        accepter_release(r->acc);
    if (!r->keep && r->npeers == 0 && r->out_pos == r->out_len)
        end(r, "done");
    want_stdin(r);
}

/* The library's send/recv messages do not name the peer: suffix it. */
static const char *peer_message(const peer *p)
{
    static char msg[1024 + CLI_PEER_NAME_MAX];
    snprintf(msg, sizeof msg, "%s (%s)", sockit_errmsg(), p->name);
    return msg;
}

/* A failed send or recv: a reset is the peer's doing, anything else is reported. */
static void peer_failed(peer *p, ssize_t code)
{
    relay *r = p->r;
    if ((code == -ECONNRESET || code == -EPIPE) && p->in_eof) {
        drop_peer(p, "peer"); /* it closed, then refused what we still sent */
        return;
    }
    if (code == -ECONNRESET || code == -EPIPE) {
        /* Alone, lost input is the story if there is any (drop_peer tells it), else
         * the reset is. */
        const char *msg = peer_message(p);
        drop_peer(p, "reset");
        if (!r->keep && r->undelivered < 0) {
            netlog_warn("%s", msg);
            r->failed = true;
        }
        return;
    }
    netlog_warn("%s", peer_message(p));
    /* With -k one client's failure is not the session's: -k ends with 0 on a signal. */
    if (!r->keep)
        r->failed = true;
    drop_peer(p, "error");
}

/* After any change: half-close, -q, and whether p is done. Returns false if p was
 * dropped. */
static bool peer_state(peer *p)
{
    relay *r = p->r;
    bool drained = r->stdin_eof && !p->owes;
    if (drained && r->cfg->half_close && !p->shut) {
        p->shut = true;
        /* ENOTCONN: the peer is already gone; the next recv says how. */
        sockit_shutdown(p->s, SHUT_WR);
    }
    if (drained && r->cfg->linger >= 0 && p->linger_at < 0) {
        p->linger_at = sockit_loop_now(r->loop) + r->cfg->linger;
        peer_schedule(p);
    }
    /* With -k a connection ends when its peer does; alone, both directions must end,
     * unless stdin is a terminal nobody will type into for a closed peer. */
    if (p->in_eof && (r->keep || drained || r->stdin_tty)) {
        /* The peer half-closed long ago, and what was just written may still be on
         * its way: the relay is done only once the peer's TCP has it all. No event
         * says so, hence a short timer. */
        if (!r->keep && drained && delivery_unacknowledged(p->s) > 0) {
            /* A peer that vanished is given up by TCP in the end: that ends the wait. */
            int err = 0;
            if (sockit_getsockopt_int(p->s, SOL_SOCKET, SO_ERROR, &err) == 0 && err != 0) {
                drop_peer(p, "error");
                return false;
            }
            p->ack_at = sockit_loop_now(r->loop) + ACK_RECHECK;
            peer_schedule(p);
            peer_watch(p);
            return true;
        }
        drop_peer(p, "peer");
        return false;
    }
    peer_watch(p);
    return true;
}

/* Sends what p has left of the stdin chunk, as much as the socket takes. */
static bool peer_write(peer *p)
{
    relay *r = p->r;
    while (p->owes) {
        size_t off = (size_t)(p->sent - r->base);
        /* A TLS send that would block has part of a record out: the retry comes from
         * this same offset, with at least as many bytes (netout only grows past it). */
        ssize_t n = sockit_send(p->s, r->netout + off, r->len - off, MSG_DONTWAIT);
        if (n == SOCKIT_EWOULDBLOCK) {
            p->wr_need = need_after_block(p->s, SOCKIT_EVENT_WRITE);
            break;
        }
        p->wr_need = SOCKIT_EVENT_WRITE;
        if (n < 0) {
            peer_failed(p, n);
            return false;
        }
        if (r->cfg->hexdump)
            hexdump(stderr, '>', &r->hex_out, r->netout + off, (size_t)n);
        p->sent += (uint64_t)n;
        r->bytes_out += n;
        p->active = sockit_loop_now(r->loop);
        if (p->sent == r->base + r->len) {
            p->owes = false;
            if (--r->behind == 0)
                want_stdin(r);
        }
    }
    if (!r->keep)
        want_stdin(r); /* room again */
    return peer_state(p);
}

static void peer_read(peer *p)
{
    relay *r = p->r;
    if (r->out_len == RELAY_BUF && r->out_pos > 0) {
        memmove(r->out, r->out + r->out_pos, r->out_len - r->out_pos);
        r->out_len -= r->out_pos;
        r->out_pos = 0;
    }
    if (r->out_len == RELAY_BUF) {
        /* stdout is behind: this one waits, the others are read when they speak. */
        p->paused = true;
        p->wprev = NULL;
        p->wnext = r->waiting;
        if (r->waiting != NULL)
            r->waiting->wprev = p;
        r->waiting = p;
        peer_watch(p);
        return;
    }
    ssize_t n = sockit_recv(p->s, r->out + r->out_len, RELAY_BUF - r->out_len, MSG_DONTWAIT);
    int need = p->rd_need;
    p->rd_need =
        n == SOCKIT_EWOULDBLOCK ? need_after_block(p->s, SOCKIT_EVENT_READ) : SOCKIT_EVENT_READ;
    if (n > 0) {
        if (r->cfg->hexdump)
            hexdump(stderr, '<', &r->hex_in, r->out + r->out_len, (size_t)n);
        r->out_len += (size_t)n;
        r->bytes_in += n;
        p->active = sockit_loop_now(r->loop);
        want_stdout(r);
        if (p->rd_need != need)
            peer_watch(p); /* back from waiting for TLS's other direction */
    } else if (n == 0) {
        p->in_eof = true;
        peer_state(p);
    } else if (n != SOCKIT_EWOULDBLOCK) {
        peer_failed(p, n);
    } else if (p->rd_need != need) {
        peer_watch(p); /* TLS waits for the other direction */
    }
}

static void on_peer(sockit_io *io, int events, void *user)
{
    (void)io;
    peer *p = user;
    /* Each direction goes on when the socket became what it waits for: on a TLS
     * socket a recv may wait for WRITE and a send for READ. */
    if (peer_writing(p) && (events & p->wr_need) && !peer_write(p))
        return;
    if (peer_reading(p) && (events & p->rd_need))
        peer_read(p);
}

static void on_peer_timer(sockit_timer *t, void *user)
{
    (void)t;
    peer *p = user;
    relay *r = p->r;
    double now = sockit_loop_now(r->loop);
    if (r->cfg->idle >= 0 && now - p->active >= r->cfg->idle - 1e-6) {
        drop_peer(p, "idle");
        return;
    }
    if (p->linger_at >= 0 && now >= p->linger_at - 1e-6) {
        drop_peer(p, "linger");
        return;
    }
    if (p->ack_at >= 0 && now >= p->ack_at - 1e-6) {
        p->ack_at = -1;
        if (!peer_state(p))
            return;
    }
    peer_schedule(p);
}

static peer *add_peer(relay *r, sockit *s, const sockit_addr *addr)
{
    peer *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->io = sockit_io_new_socket(r->loop, s, on_peer, p);
    bool timed = r->cfg->idle >= 0 || r->cfg->linger >= 0 || !r->keep;
    if (p != NULL && p->io != NULL && timed)
        p->timer = sockit_timer_new(r->loop, on_peer_timer, p);
    if (p == NULL || p->io == NULL || (timed && p->timer == NULL)) {
        netlog_warn("out of memory for a connection");
        if (p != NULL)
            sockit_io_close(p->io);
        free(p);
        sockit_close(s);
        return NULL;
    }
    p->r = r;
    p->s = s;
    p->sent = r->base + r->len; /* it joins at the next chunk */
    p->active = sockit_loop_now(r->loop);
    p->linger_at = -1;
    p->ack_at = -1;
    p->rd_need = SOCKIT_EVENT_READ;
    p->wr_need = SOCKIT_EVENT_WRITE;
    cli_peer_name(s, addr, p->name, sizeof p->name);
    p->next = r->peers;
    if (r->peers != NULL)
        r->peers->prev = p;
    r->peers = p;
    r->npeers++;
    if (r->cfg->idle >= 0)
        peer_schedule(p);
    return p;
}

static void on_accept(sockit *c, const sockit_addr *addr, void *user)
{
    relay *r = user;
    peer *p = add_peer(r, c, addr);
    if (p == NULL) {
        accepter_release(r->acc);
        return;
    }
    sockit_timer_stop(r->first);
    netlog_connected(p->name, true, c);
    if (peer_state(p))
        want_stdin(r);
}

static void on_stdin(void *user)
{
    relay *r = user;
    /* Drop what every connection has taken: all of it with -k (behind is 0), the
     * part the one connection sent when alone. */
    size_t taken = r->len - unsent(r);
    memmove(r->netout, r->netout + taken, r->len - taken);
    r->base += taken;
    r->len -= taken;
    ssize_t n = netio_read_stdin(r->netout + r->len, RELAY_BUF - r->len);
    if (n < 0)
        return;
    if (n == 0) {
        r->stdin_eof = true;
        want_stdin(r);
        for (peer *p = r->peers, *next; p != NULL; p = next) {
            next = p->next;
            peer_state(p);
        }
        return;
    }
    r->len += (size_t)n;
    r->stdin_read += n;
    for (peer *p = r->peers; p != NULL; p = p->next) {
        if (!p->shut && !p->owes) {
            p->owes = true;
            r->behind++;
        }
    }
    want_stdin(r);
    for (peer *p = r->peers, *next; p != NULL; p = next) {
        next = p->next;
        if (p->owes)
            peer_write(p);
    }
}

static void on_stdout(void *user)
{
    relay *r = user;
    ssize_t n = netio_write_stdout(r->out + r->out_pos, r->out_len - r->out_pos);
    if (n == 0) {
        r->stdout_gone = true;
        want_stdout(r);
        end(r, "stdout");
        return;
    }
    if (n > 0)
        r->out_pos += (size_t)n;
    if (r->out_pos == r->out_len)
        r->out_pos = r->out_len = 0;
    want_stdout(r);
    /* Room again: the paused connections may read. */
    while (r->waiting != NULL) {
        peer *p = r->waiting;
        unpause(p);
        peer_watch(p);
    }
    if (!r->keep && r->npeers == 0 && r->out_pos == r->out_len)
        end(r, "done");
}

static void on_signal(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    (void)signum;
    (void)count;
    end(user, "signal");
}

static void on_first_timeout(sockit_timer *t, void *user)
{
    (void)t;
    relay *r = user;
    r->failed = true;
    cli_fail("no client within %g s (-w)", r->cfg->wait);
    end(r, "timeout");
}

static relay *relay_new(const relay_config *cfg, bool keep)
{
    relay *r = calloc(1, sizeof *r);
    if (r == NULL) {
        cli_fail("out of memory");
        return NULL;
    }
    netio_init();
    r->cfg = cfg;
    r->keep = keep;
    r->stdin_tty = isatty(STDIN_FILENO);
    r->undelivered = -1;
    r->loop = sockit_loop_new(NULL);
    if (r->loop != NULL) {
        r->in = netio_new(r->loop, STDIN_FILENO, SOCKIT_EVENT_READ, on_stdin, r);
        r->out_io = netio_new(r->loop, STDOUT_FILENO, SOCKIT_EVENT_WRITE, on_stdout, r);
        r->sigint = sockit_signal_new(r->loop, on_signal, r);
        r->sigterm = sockit_signal_new(r->loop, on_signal, r);
    }
    if (r->loop == NULL || r->in == NULL || r->out_io == NULL || r->sigint == NULL ||
        r->sigterm == NULL || sockit_signal_start(r->sigint, SIGINT) < 0 ||
        sockit_signal_start(r->sigterm, SIGTERM) < 0) {
        cli_fail_lib();
        r->why = "error";
        r->failed = true;
    }
    return r;
}

static int finish(relay *r)
{
    if (r->why == NULL) {
        if (sockit_loop_run(r->loop) < 0) {
            netlog_warn("%s", sockit_errmsg());
            r->failed = true;
            r->why = "error";
        }
    }
    const char *why = r->why != NULL ? r->why : "done";
    while (r->peers != NULL)
        drop_peer(r->peers, why);
    if (strcmp(why, "done") == 0 && r->last_close != NULL && strcmp(r->last_close, "peer") != 0)
        why = r->last_close; /* idle, linger, reset */
    if (r->undelivered >= 0)
        why = "undelivered";
    netlog_exit(why, r->bytes_in, r->bytes_out, r->undelivered);
    /* -k runs until told to stop; a single connection cut short by a signal did not
     * finish its transfer. */
    bool cut = strcmp(why, "signal") == 0 && !r->keep;
    int status = r->failed || cut || strcmp(why, "error") == 0 ? CLI_FAIL : CLI_OK;
    accepter_close(r->acc);
    sockit_timer_close(r->first);
    netio_close(r->in);
    netio_close(r->out_io);
    sockit_signal_close(r->sigint);
    sockit_signal_close(r->sigterm);
    sockit_loop_close(r->loop);
    free(r);
    return status;
}

int relay_stream(sockit *conn, const sockit_addr *peer_addr, const relay_config *cfg)
{
    relay *r = relay_new(cfg, false);
    if (r == NULL) {
        sockit_close(conn);
        return CLI_FAIL;
    }
    if (r->why != NULL) {
        sockit_close(conn);
    } else {
        peer *p = add_peer(r, conn, peer_addr);
        if (p == NULL)
            end(r, "error");
        else if (peer_state(p))
            want_stdin(r);
    }
    return finish(r);
}

int relay_serve(sockit *listener, const relay_config *cfg)
{
    relay *r = relay_new(cfg, true);
    if (r == NULL)
        return CLI_FAIL;
    if (r->why == NULL) {
        r->acc = accepter_new(r->loop, listener, cfg->max_clients, on_accept, r);
        r->first = sockit_timer_new(r->loop, on_first_timeout, r);
        if (r->acc != NULL && cfg->tls != NULL)
            accepter_tls(r->acc, cfg->tls, cfg->tls_timeout);
        if (r->acc != NULL)
            accepter_gate(r->acc, cfg->gate);
        if (r->acc == NULL || r->first == NULL) {
            cli_fail("out of memory");
            r->failed = true;
            r->why = "error";
        } else if (cfg->wait >= 0) {
            sockit_timer_start(r->first, cfg->wait, 0);
        }
    }
    return finish(r);
}
