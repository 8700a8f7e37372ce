/* Two sides joined (sockit.h section 12): each side's bytes written to the other,
 * the sender paused while its receiver holds too much, an end of stream passed on
 * as a half-close, any error resetting both. A side is a stream, two streams (read
 * one, write the other) or a connected datagram endpoint. The proxy's connections
 * run on it with hooks (relay_internal.h) that put their toxics between the sides. */
#include "relay_internal.h"

#include "../abi.h"
#include "../internal.h"
#include "stream_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RELAY_HELD_DEFAULT ((size_t)256 * 1024)
#define RELAY_LINGER       30.0
#define RELAY_DGRAM_LINGER 0.5 /* socat's -t: what a datagram side gets after the end */
#define RELAY_TIME_MAX     4e6
#define RELAY_NAME_MAX     64
/* The most a datagram carries over IPv4: bytes for a datagram side go in pieces
 * this big at most. */
#define RELAY_DGRAM_MAX 65507
/* A datagram endpoint tells no drain, nor does a stream whose queue never passed
 * its high watermark: while a sender is paused for such a receiver, its queue is
 * looked at this often. */
#define RELAY_DGRAM_POLL 0.005

struct sockit_relay {
    sockit_loop *loop;
    /* Side s is read from in[s] and written to out[s] (streams), or is dg[s];
     * direction d goes from side d to side 1 - d. */
    sockit_stream *in[2], *out[2];
    sockit_datagram *dg[2];
    sockit_addr peer[2];   /* a datagram side's peer: others' datagrams are dropped */
    bool mute[2];          /* the side is only written: nothing comes from it */
    sockit_stream *all[4]; /* each distinct stream once; NULL once closed */
    bool shut[4];          /* closed by its own shutdown (a pipe's end): expected */
    size_t nall, open;     /* open: streams and endpoints not yet closed */
    unsigned long long bytes[2];
    bool paused[2], ended[2];
    bool ending;
    int code;
    size_t held_max, held_low;
    double linger, half_close, idle;
    double last;     /* when bytes last moved */
    double half_due; /* when the half-closed relay gives up; 0: not set */
    sockit_timer *timer, *poll;
    char name[2][RELAY_NAME_MAX];
    char reason[192];
    void (*on_end)(sockit_relay *r, int code, const char *reason, void *user);
    void *user;
    const sockit__relay_hooks *hooks;
    void *hook_user;
};

static void on_data(sockit_stream *st, const char *data, size_t len, void *user);
static void on_eof(sockit_stream *st, void *user);
static void on_drain(sockit_stream *st, void *user);
static void on_error(sockit_stream *st, int code, void *user);
static void on_close(sockit_stream *st, void *user);
static void on_datagram(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user);
static void on_dgram_error(sockit_datagram *d, int code, void *user);
static void on_dgram_close(sockit_datagram *d, void *user);

static const sockit_stream_callbacks reader_callbacks = {.on_data = on_data,
                                                         .on_eof = on_eof,
                                                         .on_drain = on_drain,
                                                         .on_error = on_error,
                                                         .on_close = on_close};
/* A stream that is only written (stdout) must not be read: a terminal's fd 1 is
 * often its fd 0 too. */
static const sockit_stream_callbacks writer_callbacks = {
    .on_eof = on_eof, .on_drain = on_drain, .on_error = on_error, .on_close = on_close};
static const sockit_datagram_callbacks dgram_callbacks = {
    .on_datagram = on_datagram, .on_error = on_dgram_error, .on_close = on_dgram_close};

static void arm(sockit_relay *r);

/* How an end closes the streams: reset at once, or closed with their queues given
 * the relay's linger. */
enum { CLOSE = 0, RESET = 1 };

static void endf(sockit_relay *r, int code, int how, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void end_now(sockit_relay *r, int code, int how, double linger)
{
    r->ending = true;
    r->code = code;
    if (r->hooks != NULL && r->hooks->ending != NULL)
        r->hooks->ending(r, code, r->reason, r->hook_user);
    sockit_timer_close(r->timer);
    sockit_timer_close(r->poll);
    r->timer = r->poll = NULL;
    for (size_t i = 0; i < r->nall; i++) {
        if (r->all[i] == NULL)
            continue;
        if (how == RESET)
            sockit_stream_abort(r->all[i]);
        else
            sockit_stream_close(r->all[i], linger);
    }
    for (int s = 0; s < 2; s++)
        if (r->dg[s] != NULL)
            sockit_datagram_close(r->dg[s]); /* what the kernel takes now goes */
}

static void endf(sockit_relay *r, int code, int how, const char *fmt, ...)
{
    if (r->ending)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    end_now(r, code, how, r->linger);
}

void sockit__relay_end(sockit_relay *r, int code, const char *reason, double linger)
{
    if (r == NULL || r->ending)
        return;
    snprintf(r->reason, sizeof r->reason, "%s", reason != NULL ? reason : "ended");
    end_now(r, code, linger < 0 ? RESET : CLOSE, linger);
}

bool sockit__relay_ending(const sockit_relay *r) { return r == NULL || r->ending; }

bool sockit__relay_paused(const sockit_relay *r, int dir)
{
    return r != NULL && (dir == 0 || dir == 1) && r->paused[dir];
}

/* The side that reads st, or -1. */
static int reader_side(const sockit_relay *r, const sockit_stream *st)
{
    return st == r->in[0] ? 0 : st == r->in[1] ? 1 : -1;
}

static const char *name_of(const sockit_relay *r, const sockit_stream *st)
{
    return st == r->in[0] || st == r->out[0] ? r->name[0] : r->name[1];
}

static int dgram_side(const sockit_relay *r, const sockit_datagram *d)
{
    return d == r->dg[0] ? 0 : d == r->dg[1] ? 1 : -1;
}

static void pause_side(sockit_relay *r, int s, bool on)
{
    if (r->dg[s] != NULL)
        on ? sockit_datagram_pause(r->dg[s]) : sockit_datagram_resume(r->dg[s]);
    else if (r->in[s] != NULL)
        on ? sockit_stream_pause(r->in[s]) : sockit_stream_resume(r->in[s]);
}

static void poll_fired(sockit_timer *t, void *user)
{
    (void)t;
    sockit_relay *r = user;
    for (int dir = 0; dir < 2; dir++)
        if (r->paused[dir])
            sockit__relay_pressure(r, dir);
}

void sockit__relay_pressure(sockit_relay *r, int dir)
{
    if (r->ending)
        return;
    sockit_datagram *to_dg = r->dg[1 - dir];
    sockit_stream *out = r->out[1 - dir];
    if (to_dg == NULL && (out == NULL || (r->in[dir] == NULL && r->dg[dir] == NULL)))
        return;
    size_t queued = to_dg != NULL ? sockit_datagram_queued(to_dg) : sockit_stream_queued(out);
    size_t held = queued;
    if (r->hooks != NULL && r->hooks->held != NULL)
        held += r->hooks->held(r, dir, r->hook_user);
    bool blocked = to_dg == NULL && sockit_stream_write_blocked(out);
    if (!r->paused[dir] && (blocked || held > r->held_max)) {
        r->paused[dir] = true;
        pause_side(r, dir, true);
    } else if (r->paused[dir] && !blocked && held <= r->held_low) {
        r->paused[dir] = false;
        pause_side(r, dir, false);
    }
    /* What the hooks hold they weigh again themselves as they let it go. */
    if (r->paused[dir] && (to_dg != NULL || (!blocked && queued > r->held_low))) {
        if (r->poll == NULL)
            r->poll = sockit_timer_new(r->loop, poll_fired, r);
        if (r->poll == NULL)
            endf(r, -ENOMEM, RESET, "out of memory");
        else
            sockit_timer_start(r->poll, RELAY_DGRAM_POLL, 0);
    }
}

static int send_datagrams(sockit_relay *r, int to, const char *data, size_t len)
{
    do {
        size_t n = len < RELAY_DGRAM_MAX ? len : RELAY_DGRAM_MAX;
        int rc = sockit_datagram_send(r->dg[to], data, n, NULL);
        /* A full queue loses the datagram, as a router would. */
        if (rc == -ECONNREFUSED) { /* no one at the peer's port: as on_dgram_error */
            endf(r, rc, RESET, "%s: %s", r->name[to], sockit_strerror(rc));
            return rc;
        }
        if (rc < 0 && rc != -ENOBUFS)
            return rc;
        data += n;
        len -= n;
    } while (len > 0);
    return 0;
}

int sockit__relay_pass(sockit_relay *r, int dir, const char *data, size_t len)
{
    if (r->ending)
        return -EPIPE;
    int to = 1 - dir;
    int rc = r->dg[to] != NULL ? send_datagrams(r, to, data, len)
                               : sockit_stream_write(r->out[to], data, len);
    if (rc < 0) {
        endf(r, rc, RESET, "write to %s: %s", r->name[to], sockit_strerror(rc));
        return rc;
    }
    r->bytes[dir] += len;
    r->last = sockit_loop_now(r->loop);
    return 0;
}

void sockit__relay_pass_eof(sockit_relay *r, int dir)
{
    if (r->ending || r->ended[dir])
        return;
    r->ended[dir] = true;
    int to = 1 - dir;
    sockit_stream *out = r->out[to];
    if (r->dg[to] == NULL && out != r->in[to]) {
        /* Only written: its end is expected. A pipe's end is closed, its queue
         * given the relay's linger (a shutdown would wait without limit). */
        for (size_t i = 0; i < r->nall; i++)
            if (r->all[i] == out)
                r->shut[i] = true;
        if (out->is_socket)
            sockit_stream_shutdown(out);
        else
            sockit_stream_close(out, r->linger);
    } else if (r->dg[to] == NULL) { /* a datagram side has nothing to shut down */
        sockit_stream_shutdown(out);
    }
    if (r->ended[to]) {
        /* The first side to end names the end, as a shell user reads it. */
        endf(r, 0, CLOSE, "%s closed", r->name[to]);
        return;
    }
    if (!r->mute[dir] && (r->half_close > 0 || r->dg[to] != NULL)) {
        double wait = r->half_close > 0 ? r->half_close : RELAY_DGRAM_LINGER;
        r->half_due = sockit_loop_now(r->loop) + wait;
        arm(r);
    }
}

static void take(sockit_relay *r, int dir, const char *data, size_t len)
{
    if (r->ending || dir < 0)
        return;
    if (r->hooks != NULL && r->hooks->take(r, dir, data, len, false, r->hook_user))
        return;
    if (sockit__relay_pass(r, dir, data, len) == 0)
        sockit__relay_pressure(r, dir);
}

static void on_data(sockit_stream *st, const char *data, size_t len, void *user)
{
    sockit_relay *r = user;
    take(r, reader_side(r, st), data, len);
}

static void on_datagram(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated, void *user)
{
    (void)truncated; /* never: the endpoint takes the longest datagram there is */
    sockit_relay *r = user;
    int s = dgram_side(r, d);
    /* Connecting keeps others out from then on, not what came before. */
    if (s >= 0 && r->peer[s].len > 0 && (from == NULL || !sockit_addr_equal(from, &r->peer[s])))
        return;
    take(r, s, data, len);
}

static void on_eof(sockit_stream *st, void *user)
{
    sockit_relay *r = user;
    int dir = reader_side(r, st);
    if (r->ending || dir < 0)
        return;
    if (r->hooks != NULL && r->hooks->take(r, dir, NULL, 0, true, r->hook_user))
        return;
    sockit__relay_pass_eof(r, dir);
}

static void on_drain(sockit_stream *st, void *user)
{
    sockit_relay *r = user;
    for (int s = 0; s < 2; s++)
        if (r->out[s] == st)
            sockit__relay_pressure(r, 1 - s);
}

static void on_error(sockit_stream *st, int code, void *user)
{
    sockit_relay *r = user;
    /* A stream that is only written fails only in a write. */
    endf(r, code, RESET, "%s%s: %s", reader_side(r, st) < 0 ? "write to " : "", name_of(r, st),
         sockit_strerror(code));
}

static void on_dgram_error(sockit_datagram *d, int code, void *user)
{
    sockit_relay *r = user;
    int s = dgram_side(r, d);
    /* No one listens at the peer's port (an ICMP error on the connected socket):
     * what the other side sends would all be lost. */
    if (s >= 0 && code == -ECONNREFUSED)
        endf(r, code, RESET, "%s: %s", r->name[s], sockit_strerror(code));
}

/* One stream or endpoint is gone; the last one ends the relay. */
static void gone(sockit_relay *r, bool expected, const char *name)
{
    r->open--;
    if (!r->ending && !expected)
        endf(r, -EPIPE, RESET, "%s closed", name);
    if (r->open > 0)
        return;
    if (!r->ending) /* every stream was a pipe's end that closed as asked */
        endf(r, 0, CLOSE, "%s closed", r->name[0]);
    if (r->on_end != NULL)
        r->on_end(r, r->code, r->reason, r->user);
    free(r);
}

static void on_close(sockit_stream *st, void *user)
{
    sockit_relay *r = user;
    bool expected = false;
    const char *name = name_of(r, st);
    for (size_t i = 0; i < r->nall; i++)
        if (r->all[i] == st) {
            expected = r->shut[i];
            r->all[i] = NULL;
        }
    for (int s = 0; s < 2; s++) {
        if (r->in[s] == st)
            r->in[s] = NULL;
        if (r->out[s] == st)
            r->out[s] = NULL;
    }
    gone(r, expected, name);
}

static void on_dgram_close(sockit_datagram *d, void *user)
{
    sockit_relay *r = user;
    int s = dgram_side(r, d);
    if (s >= 0)
        r->dg[s] = NULL;
    gone(r, false, r->name[s >= 0 ? s : 0]);
}

static void on_timer(sockit_timer *t, void *user)
{
    (void)t;
    sockit_relay *r = user;
    double now = sockit_loop_now(r->loop);
    if (r->idle > 0 && now - r->last >= r->idle) {
        endf(r, SOCKIT_ETIMEOUT, RESET, "idle for %g s", r->idle);
        return;
    }
    if (r->half_due > 0 && now >= r->half_due) {
        int open = r->ended[0] ? 1 : 0; /* the side still sending */
        double waited = r->half_close > 0 ? r->half_close : RELAY_DGRAM_LINGER;
        /* A datagram side cannot end by itself: this is its end. */
        if (r->dg[open] != NULL)
            endf(r, 0, CLOSE, "%s: no more datagrams %g s after %s ended", r->name[open], waited,
                 r->name[1 - open]);
        else
            endf(r, SOCKIT_ETIMEOUT, RESET, "%s still open %g s after %s ended", r->name[open],
                 waited, r->name[1 - open]);
        return;
    }
    arm(r);
}

/* The timer goes at the nearer of the idle limit and the half-close limit; a move
 * of bytes does not touch it: it looks again when it fires. */
static void arm(sockit_relay *r)
{
    if (r->timer == NULL || r->ending)
        return;
    double now = sockit_loop_now(r->loop), due = INFINITY;
    if (r->idle > 0)
        due = r->last + r->idle;
    if (r->half_due > 0 && r->half_due < due)
        due = r->half_due;
    if (isfinite(due))
        sockit_timer_start(r->timer, due > now ? due - now : 0, 0);
}

static int check_time(const char *what, double v)
{
    if (isnan(v) || v > RELAY_TIME_MAX)
        return sockit__failf(-EINVAL, "relay: %s %g: not a time in seconds", what, v);
    return 0;
}

static void add_stream(sockit_relay *r, sockit_stream *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < r->nall; i++)
        if (r->all[i] == st)
            return;
    r->all[r->nall++] = st;
}

/* A side as given, checked: its streams (out defaulting to in) or its endpoint. */
static int side_of(const sockit_relay_side *given, const char *which, sockit_relay_side *out)
{
    if (given == NULL)
        return sockit__failf(-EINVAL, "relay: no side %s", which);
    char what[32];
    snprintf(what, sizeof what, "relay: side %s", which);
    if (sockit__struct_copy(out, sizeof *out, given, SOCKIT__BASE_RELAY_SIDE, what) < 0)
        return -EINVAL;
    if (out->out == NULL)
        out->out = out->in;
    bool streams = out->in != NULL || out->out != NULL;
    if ((out->datagram != NULL) == streams)
        return sockit__failf(-EINVAL, "relay: side %s: %s", which,
                             streams ? "streams and a datagram endpoint"
                                     : "no stream and no datagram endpoint");
    return 0;
}

static sockit_loop *loop_of(const sockit_relay_side *s)
{
    return s->datagram != NULL ? sockit_datagram_loop(s->datagram) : sockit_stream_loop(s->out);
}

static sockit_relay *make(const sockit_relay_side *a, const sockit_relay_side *b,
                          const sockit_relay_config *own)
{
    if ((a->in != NULL && (a->in == b->in || a->in == b->out)) ||
        (a->out != NULL && (a->out == b->in || a->out == b->out)) ||
        (a->datagram != NULL && a->datagram == b->datagram)) {
        sockit__failf(-EINVAL, "relay: the same stream on both sides");
        return NULL;
    }
    if (a->datagram == NULL && b->datagram == NULL && a->in == NULL && b->in == NULL) {
        sockit__failf(-EINVAL, "relay: neither side is read");
        return NULL;
    }
    sockit_loop *loop = loop_of(a);
    if (loop_of(b) != loop || (a->out != NULL && sockit_stream_loop(a->out) != loop) ||
        (b->out != NULL && sockit_stream_loop(b->out) != loop)) {
        sockit__failf(-EINVAL, "relay: streams of different loops");
        return NULL;
    }
    sockit_relay *r = calloc(1, sizeof *r);
    if (r == NULL) {
        sockit__failf(-ENOMEM, "relay");
        return NULL;
    }
    r->loop = loop;
    const sockit_relay_side *sides[2] = {a, b};
    for (int s = 0; s < 2; s++) {
        r->in[s] = sides[s]->in;
        r->out[s] = sides[s]->out;
        r->dg[s] = sides[s]->datagram;
        r->mute[s] = r->dg[s] == NULL && r->in[s] == NULL;
        if (r->dg[s] != NULL) {
            r->peer[s].len = sizeof r->peer[s].u;
            if (getpeername(sockit_datagram_fd(r->dg[s]), &r->peer[s].u.sa, &r->peer[s].len) < 0)
                r->peer[s].len = 0; /* not connected: anyone's datagrams pass */
        }
    }
    r->held_max = own->held_max > 0 ? own->held_max : RELAY_HELD_DEFAULT;
    r->held_low = r->held_max / 4;
    r->linger = own->linger == 0 ? RELAY_LINGER : own->linger;
    r->half_close = own->half_close_timeout;
    r->idle = own->idle_timeout;
    r->last = sockit_loop_now(loop);
    snprintf(r->name[0], sizeof r->name[0], "%s", own->name_a != NULL ? own->name_a : "a");
    snprintf(r->name[1], sizeof r->name[1], "%s", own->name_b != NULL ? own->name_b : "b");
    r->on_end = own->on_end;
    r->user = own->user;
    return r;
}

sockit_relay *sockit__relay_new_hooked(const sockit_relay_side *a, const sockit_relay_side *b,
                                       const sockit_relay_config *cfg,
                                       const sockit__relay_hooks *hooks, void *hook_user)
{
    sockit_relay_side sa, sb;
    if (side_of(a, "a", &sa) < 0 || side_of(b, "b", &sb) < 0)
        return NULL;
    sockit_relay_config own = {0};
    if (cfg != NULL &&
        sockit__struct_copy(&own, sizeof own, cfg, SOCKIT__BASE_RELAY_CONFIG, "relay: config") < 0)
        return NULL;
    if (check_time("linger", own.linger) < 0 ||
        check_time("half_close_timeout", own.half_close_timeout) < 0 ||
        check_time("idle_timeout", own.idle_timeout) < 0)
        return NULL;
    if (own.half_close_timeout < 0 || own.idle_timeout < 0) {
        sockit__failf(-EINVAL, "relay: a negative timeout");
        return NULL;
    }
    sockit_relay *r = make(&sa, &sb, &own);
    if (r == NULL)
        return NULL;
    r->hooks = hooks;
    r->hook_user = hook_user;
    /* One timer, made now, serves the idle limit and the half-close one: nothing
     * can fail once the streams are the relay's. */
    if (r->idle > 0 || r->half_close > 0 || r->dg[0] != NULL || r->dg[1] != NULL) {
        r->timer = sockit_timer_new(r->loop, on_timer, r);
        if (r->timer == NULL) {
            free(r);
            return NULL;
        }
    }
    for (int s = 0; s < 2; s++) {
        add_stream(r, r->in[s]);
        add_stream(r, r->out[s]);
    }
    r->open = r->nall + (r->dg[0] != NULL) + (r->dg[1] != NULL);
    for (size_t i = 0; i < r->nall; i++) {
        sockit_stream *st = r->all[i];
        sockit_stream_set_user(st, r);
        bool reads = reader_side(r, st) >= 0;
        sockit_stream_set_callbacks(st, reads ? &reader_callbacks : &writer_callbacks);
        if (!reads) /* a socket reads whatever its callbacks are: this one must not */
            sockit_stream_pause(st);
    }
    for (int s = 0; s < 2; s++)
        if (r->dg[s] != NULL) {
            sockit_datagram_set_user(r->dg[s], r);
            sockit_datagram_set_callbacks(r->dg[s], &dgram_callbacks);
        }
    arm(r);
    /* A side that is only written sends nothing: its end goes to the other side
     * at once, and starts no half-close limit. */
    for (int s = 0; s < 2; s++)
        if (r->mute[s])
            sockit__relay_pass_eof(r, s);
    return r;
}

sockit_relay *sockit_relay_join(const sockit_relay_side *a, const sockit_relay_side *b,
                                const sockit_relay_config *cfg)
{
    return sockit__relay_new_hooked(a, b, cfg, NULL, NULL);
}

sockit_relay *sockit_relay_new(sockit_stream *a, sockit_stream *b, const sockit_relay_config *cfg)
{
    sockit_relay_side sa = {.in = a}, sb = {.in = b};
    if (a == NULL || b == NULL) {
        sockit__failf(-EINVAL, "relay: a side without a stream");
        return NULL;
    }
    return sockit__relay_new_hooked(&sa, &sb, cfg, NULL, NULL);
}

unsigned long long sockit_relay_bytes(const sockit_relay *r, int dir)
{
    return r != NULL && (dir == 0 || dir == 1) ? r->bytes[dir] : 0;
}

void sockit_relay_close(sockit_relay *r)
{
    if (r != NULL)
        endf(r, -ECANCELED, RESET, "closed");
}
