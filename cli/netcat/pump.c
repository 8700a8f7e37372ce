/* The two-way copy of pump.h. Both sockets are non-blocking and each has one
 * watcher, asking for READ while its direction has room and it has not ended, and
 * for WRITE only while the other direction has bytes for it (or a TLS shutdown
 * waits to be retried). On TLS a call that would block may wait for the other
 * event (a read needs the socket writable during a key update): rd_need and
 * wr_need hold what each call waits for, as in relay.c. */
#include "pump.h"

#include "cli.h"
#include "netlog.h"

#include <sockit_tls.h>

#include <errno.h>
#include <stdlib.h>

#define PUMP_BUF 65536

typedef struct side {
    pump *p;
    sockit *s;
    sockit_io *io;
    int rd_need;   /* what the next recv waits for */
    int wr_need;   /* what the next send (or shutdown) waits for */
    bool eof;      /* it ended its side */
    bool shut;     /* our write side to it is shut down */
    bool shutting; /* a TLS shutdown would block: retried when wr_need comes */
} side;

/* Bytes read from one side for the other: [pos, len) are still to send. Reads add
 * at len, and only an emptied buffer starts again at 0, so a TLS send that would
 * block is retried from the same bytes, never fewer. */
typedef struct flow {
    char buf[PUMP_BUF];
    size_t pos, len;
} flow;

struct pump {
    side sides[2]; /* 0: the network, 1: the local socket */
    flow flows[2]; /* flows[i]: what was read from sides[i] */
    pump_done_fn done;
    void *user;
    char name[CLI_PEER_NAME_MAX];
};

#define NET   0
#define LOCAL 1

static bool reading(const pump *p, int i) { return !p->sides[i].eof && p->flows[i].len < PUMP_BUF; }

static bool writing(const pump *p, int j)
{
    const flow *f = &p->flows[1 - j];
    return f->pos < f->len || p->sides[j].shutting;
}

static void watch(pump *p, int i)
{
    side *s = &p->sides[i];
    int ev = (reading(p, i) ? s->rd_need : 0) | (writing(p, i) ? s->wr_need : 0);
    if (sockit_io_events(s->io) != ev)
        sockit_io_start(s->io, ev);
}

/* After a would-block: what the socket must become for the call to go on. */
static int need_after_block(const sockit *s, int dflt)
{
    int want = sockit_tls_wants(s);
    return want != 0 ? want : dflt;
}

static void free_pump(pump *p)
{
    for (int i = 0; i < 2; i++) {
        sockit_io_close(p->sides[i].io);
        sockit_close(p->sides[i].s);
    }
    free(p);
}

static void finish(pump *p, bool failed)
{
    pump_done_fn done = p->done;
    void *user = p->user;
    free_pump(p);
    done(failed, user);
}

/* A send or recv on side i failed with code. */
static void side_failed(pump *p, int i, ssize_t code)
{
    bool gone = code == -ECONNRESET || code == -EPIPE;
    /* The local side failing is the command going away; a network peer that ended
     * its side and then refused what we still sent is done, not failed. */
    bool failed = i == NET && !(gone && p->sides[NET].eof);
    if (failed)
        netlog_warn("%s (%s)", sockit_errmsg(), p->name);
    finish(p, failed);
}

/* Sends to side j what the other side sent. false: the pump is gone. */
static bool send_to(pump *p, int j)
{
    flow *f = &p->flows[1 - j];
    side *s = &p->sides[j];
    while (f->pos < f->len) {
        ssize_t n = sockit_send(s->s, f->buf + f->pos, f->len - f->pos, MSG_DONTWAIT);
        if (n == SOCKIT_EWOULDBLOCK) {
            s->wr_need = need_after_block(s->s, SOCKIT_EVENT_WRITE);
            return true;
        }
        s->wr_need = SOCKIT_EVENT_WRITE;
        if (n < 0) {
            side_failed(p, j, n);
            return false;
        }
        f->pos += (size_t)n;
    }
    f->pos = f->len = 0;
    return true;
}

/* Reads from side i and passes it on at once. false: the pump is gone. */
static bool recv_from(pump *p, int i)
{
    flow *f = &p->flows[i];
    side *s = &p->sides[i];
    ssize_t n = sockit_recv(s->s, f->buf + f->len, PUMP_BUF - f->len, MSG_DONTWAIT);
    if (n == SOCKIT_EWOULDBLOCK) {
        s->rd_need = need_after_block(s->s, SOCKIT_EVENT_READ);
        return true;
    }
    s->rd_need = SOCKIT_EVENT_READ;
    if (n < 0) {
        side_failed(p, i, n);
        return false;
    }
    if (n == 0) {
        s->eof = true;
        return true;
    }
    f->len += (size_t)n;
    return send_to(p, 1 - i);
}

/* A side that ended, with all it sent passed on: the other side is told (half-close).
 * Once both are, the pump is done. false: the pump is gone. */
static bool pass_eof(pump *p)
{
    for (int i = 0; i < 2; i++) {
        side *to = &p->sides[1 - i];
        const flow *f = &p->flows[i];
        if (!p->sides[i].eof || f->pos < f->len || to->shut)
            continue;
        int rc = sockit_shutdown(to->s, SHUT_WR);
        to->shutting = rc == SOCKIT_EWOULDBLOCK;
        if (to->shutting)
            to->wr_need = need_after_block(to->s, SOCKIT_EVENT_WRITE);
        else
            to->shut = true; /* or failed: a peer that is gone; its recv says how */
    }
    if (p->sides[NET].shut && p->sides[LOCAL].shut) {
        finish(p, false);
        return false;
    }
    return true;
}

static void on_io(sockit_io *io, int events, void *user)
{
    side *s = user;
    pump *p = s->p;
    int i = s == &p->sides[NET] ? NET : LOCAL;
    (void)io;
    if (writing(p, i) && (events & s->wr_need) && !send_to(p, i))
        return;
    if (reading(p, i) && (events & s->rd_need) && !recv_from(p, i))
        return;
    if (!pass_eof(p))
        return;
    watch(p, NET);
    watch(p, LOCAL);
}

pump *pump_new(sockit_loop *loop, sockit *net, sockit *local, const char *name, pump_done_fn done,
               void *user)
{
    pump *p = calloc(1, sizeof *p);
    if (p == NULL) {
        netlog_warn("out of memory for a connection (%s)", name);
        sockit_close(net);
        sockit_close(local);
        return NULL;
    }
    p->done = done;
    p->user = user;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->sides[NET].s = net;
    p->sides[LOCAL].s = local;
    for (int i = 0; i < 2; i++) {
        side *s = &p->sides[i];
        s->p = p;
        s->rd_need = SOCKIT_EVENT_READ;
        s->wr_need = SOCKIT_EVENT_WRITE;
        sockit_setblocking(s->s, false);
        s->io = sockit_io_new_socket(loop, s->s, on_io, s);
        if (s->io == NULL) {
            netlog_warn("%s (%s)", sockit_errmsg(), name);
            free_pump(p);
            return NULL;
        }
    }
    watch(p, NET);
    watch(p, LOCAL);
    return p;
}

void pump_close(pump *p)
{
    if (p != NULL)
        free_pump(p);
}
