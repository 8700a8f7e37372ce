/* A direction's chain: one stage per toxic, each with a queue of chunks that it
 * releases when its toxic allows. A stage only ever hands chunks to the next one,
 * so running the chain from a stage onwards moves everything that can move; a
 * stage that must wait arms its timer, which runs the chain from that stage. */
#include "proxy_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double now_of(const px_dir *d) { return sockit_loop_now(d->conn->proxy->loop); }

static void q_push(px_queue *q, px_chunk *ch)
{
    ch->next = NULL;
    if (q->tail != NULL)
        q->tail->next = ch;
    else
        q->head = ch;
    q->tail = ch;
}

static px_chunk *q_pop(px_queue *q)
{
    px_chunk *ch = q->head;
    if (ch != NULL) {
        q->head = ch->next;
        if (q->head == NULL)
            q->tail = NULL;
        ch->next = NULL;
    }
    return ch;
}

static px_chunk *chunk_new(const char *data, size_t len, int what, double t)
{
    px_chunk *ch = malloc(sizeof *ch + len);
    if (ch == NULL)
        return NULL;
    ch->next = NULL;
    ch->t = t;
    ch->due = NAN;
    ch->len = len;
    ch->off = 0;
    ch->what = what;
    ch->reason = NULL;
    if (len > 0)
        memcpy(ch->data, data, len);
    return ch;
}

static size_t left_of(const px_chunk *ch) { return ch->len - ch->off; }

/* After an end, the chain was emptied and held is 0: never below it. */
static void unhold(px_dir *d, size_t n) { d->held = d->held >= n ? d->held - n : 0; }

/* Hands ch from stage i to the next one, or out of the chain. */
static void pass(px_dir *d, size_t i, px_chunk *ch)
{
    ch->due = NAN;
    if (i + 1 < d->n) {
        q_push(&d->stages[i + 1]->q, ch);
        return;
    }
    unhold(d, left_of(ch));
    sockit__proxy_deliver(d, ch);
}

static void drop(px_dir *d, px_chunk *ch)
{
    unhold(d, left_of(ch));
    free(ch);
}

/* Sends a marker from stage i on (the close a toxic decided). */
static void emit_marker(px_dir *d, size_t i, int what, const char *reason)
{
    px_chunk *ch = chunk_new(NULL, 0, what, now_of(d));
    if (ch == NULL) {
        sockit__proxy_conn_end(d->conn, "out of memory", PX_ABORT);
        return;
    }
    ch->reason = reason;
    pass(d, i, ch);
}

/* The first n bytes of ch as a chunk of their own (ch keeps the rest), or ch
 * itself, whole, when it is no longer than n or there is no memory to split it. */
static px_chunk *take(px_stage *s, px_chunk *ch, size_t n)
{
    if (n < left_of(ch)) {
        px_chunk *piece = chunk_new(ch->data + ch->off, n, PX_DATA, ch->t);
        if (piece != NULL) {
            ch->off += n;
            return piece;
        }
    }
    return q_pop(&s->q);
}

static void run(px_dir *d, size_t from);

static size_t index_of(const px_dir *d, const px_stage *s)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->stages[i] == s)
            return i;
    return d->n;
}

static void stage_fire(sockit_timer *t, void *user)
{
    (void)t;
    px_stage *s = user;
    px_dir *d = s->dir;
    size_t i = index_of(d, s);
    if (i < d->n)
        run(d, i);
}

/* Runs stage s's chain again at loop time `at`. */
static void arm(px_dir *d, px_stage *s, double at)
{
    if (s->timer == NULL) {
        s->timer = sockit_timer_new(d->conn->proxy->loop, stage_fire, s);
        if (s->timer == NULL) {
            sockit__proxy_conn_end(d->conn, "out of memory", PX_ABORT);
            return;
        }
    }
    double after = at - now_of(d);
    sockit_timer_start(s->timer, after > 0 ? after : 0, 0);
}

static double draw(px_dir *d) { return sockit__proxy_random(d->conn->proxy); }

static void run_latency(px_dir *d, size_t i, px_stage *s, double now)
{
    const sockit_toxic *t = s->toxic;
    px_chunk *ch;
    while (!d->conn->ending && (ch = s->q.head) != NULL) {
        if (ch->what == PX_DATA) {
            if (isnan(ch->due)) {
                double ms = (double)t->latency;
                if (t->jitter > 0)
                    ms += (draw(d) * 2 - 1) * (double)t->jitter;
                ch->due = ch->t + ms / 1000;
            }
            if (ch->due > now) {
                arm(d, s, ch->due);
                return;
            }
            if (ch->due > ch->t)
                ch->t = ch->due;
        }
        pass(d, i, q_pop(&s->q));
    }
}

/* Pieces of 10 ms at the rate, spaced by their length over the rate. A timer that
 * fires late is made up for (up to 50 ms), so the rate holds on a busy loop. */
static void run_bandwidth(px_dir *d, size_t i, px_stage *s, double now)
{
    const sockit_toxic *t = s->toxic;
    px_chunk *ch;
    while (!d->conn->ending && (ch = s->q.head) != NULL) {
        if (ch->what != PX_DATA || t->rate <= 0) {
            pass(d, i, q_pop(&s->q));
            continue;
        }
        if (s->next > now) {
            arm(d, s, s->next);
            return;
        }
        double per_s = (double)t->rate * 1000;
        size_t piece = (size_t)(per_s / 100);
        if (piece < 1)
            piece = 1;
        px_chunk *out = take(s, ch, piece);
        double base = s->next < now - 0.05 ? now : s->next;
        s->next = base + (double)left_of(out) / per_s;
        pass(d, i, out);
    }
}

static void run_slicer(px_dir *d, size_t i, px_stage *s, double now)
{
    const sockit_toxic *t = s->toxic;
    px_chunk *ch;
    while (!d->conn->ending && (ch = s->q.head) != NULL) {
        if (ch->what != PX_DATA || t->average_size <= 0) {
            pass(d, i, q_pop(&s->q));
            continue;
        }
        if (t->delay > 0 && s->next > now) {
            arm(d, s, s->next);
            return;
        }
        long long size = t->average_size;
        if (t->size_variation > 0) {
            long long span = 2 * t->size_variation + 1;
            size += (long long)(draw(d) * (double)span) - t->size_variation;
        }
        if (size < 1)
            size = 1;
        pass(d, i, take(s, ch, (size_t)size));
        if (t->delay > 0)
            s->next = now + (double)t->delay / 1e6;
    }
}

static void run_slow_close(px_dir *d, size_t i, px_stage *s, double now)
{
    const sockit_toxic *t = s->toxic;
    px_chunk *ch;
    while (!d->conn->ending && (ch = s->q.head) != NULL) {
        if (ch->what != PX_DATA) {
            if (isnan(ch->due))
                ch->due = now + (double)t->delay / 1000;
            if (ch->due > now) {
                arm(d, s, ch->due);
                return;
            }
        }
        pass(d, i, q_pop(&s->q));
    }
}

static void run_timeout(px_dir *d, size_t i, px_stage *s, double now)
{
    const sockit_toxic *t = s->toxic;
    px_chunk *ch;
    while (!d->conn->ending && (ch = q_pop(&s->q)) != NULL) {
        if (ch->what == PX_DATA || s->done)
            drop(d, ch);
        else
            pass(d, i, ch);
    }
    if (d->conn->ending || s->done || t->timeout <= 0)
        return;
    double at = s->started + (double)t->timeout / 1000;
    if (now >= at) {
        s->done = true;
        emit_marker(d, i, PX_CLOSE, "timeout");
    } else {
        arm(d, s, at);
    }
}

static void run_reset_peer(px_dir *d, px_stage *s, double now)
{
    const sockit_toxic *t = s->toxic;
    px_chunk *ch;
    while ((ch = q_pop(&s->q)) != NULL) {
        if (isnan(s->started))
            s->started = now;
        drop(d, ch);
    }
    if (isnan(s->started))
        return;
    double at = s->started + (double)t->timeout / 1000;
    if (now >= at)
        sockit__proxy_conn_end(d->conn, "reset_peer", PX_ABORT);
    else
        arm(d, s, at);
}

static void run_limit_data(px_dir *d, size_t i, px_stage *s)
{
    const sockit_toxic *t = s->toxic;
    px_chunk *ch;
    while (!d->conn->ending && (ch = s->q.head) != NULL) {
        if (s->done) {
            drop(d, q_pop(&s->q));
            continue;
        }
        if (ch->what != PX_DATA) {
            pass(d, i, q_pop(&s->q));
            continue;
        }
        long long room = t->bytes - s->passed;
        size_t left = left_of(ch);
        q_pop(&s->q);
        if (room <= 0) {
            drop(d, ch);
        } else {
            if ((unsigned long long)room < left) {
                unhold(d, left - (size_t)room);
                ch->len = ch->off + (size_t)room;
                left = (size_t)room;
            }
            s->passed += (long long)left;
            pass(d, i, ch);
        }
        if (s->passed >= t->bytes && !d->conn->ending) {
            s->done = true;
            emit_marker(d, i, PX_CLOSE, "limit_data");
        }
    }
}

static void run_stage(px_dir *d, size_t i)
{
    px_stage *s = d->stages[i];
    double now = now_of(d);
    if (!s->active) {
        while (!d->conn->ending && s->q.head != NULL)
            pass(d, i, q_pop(&s->q));
        return;
    }
    switch (s->toxic->kind) {
    case SOCKIT_TOXIC_LATENCY:
        run_latency(d, i, s, now);
        break;
    case SOCKIT_TOXIC_BANDWIDTH:
        run_bandwidth(d, i, s, now);
        break;
    case SOCKIT_TOXIC_SLICER:
        run_slicer(d, i, s, now);
        break;
    case SOCKIT_TOXIC_SLOW_CLOSE:
        run_slow_close(d, i, s, now);
        break;
    case SOCKIT_TOXIC_TIMEOUT:
        run_timeout(d, i, s, now);
        break;
    case SOCKIT_TOXIC_RESET_PEER:
        run_reset_peer(d, s, now);
        break;
    case SOCKIT_TOXIC_LIMIT_DATA:
        run_limit_data(d, i, s);
        break;
    default: /* a datagram toxic never gets a stream stage */
        while (s->q.head != NULL)
            pass(d, i, q_pop(&s->q));
        break;
    }
}

static void run(px_dir *d, size_t from)
{
    px_conn *c = d->conn;
    for (size_t i = from; i < d->n && !c->ending; i++)
        run_stage(d, i);
    if (!c->ending)
        sockit__proxy_pressure(d);
}

static void stage_draw(px_dir *d, px_stage *s)
{
    double toxicity = s->toxic->toxicity;
    s->active = toxicity >= 1 || (toxicity > 0 && draw(d) < toxicity);
    s->started = s->toxic->kind == SOCKIT_TOXIC_TIMEOUT ? now_of(d) : NAN;
    s->done = false;
    if (s->timer != NULL)
        sockit_timer_stop(s->timer);
}

static int append_stage(px_dir *d, sockit_toxic *t)
{
    px_stage *s = calloc(1, sizeof *s);
    px_stage **grown = s != NULL ? realloc(d->stages, (d->n + 1) * sizeof *grown) : NULL;
    if (grown == NULL) {
        free(s);
        return -ENOMEM;
    }
    d->stages = grown;
    s->toxic = t;
    s->dir = d;
    stage_draw(d, s);
    d->stages[d->n++] = s;
    return 0;
}

int sockit__chain_build(px_dir *d)
{
    sockit_proxy *p = d->conn->proxy;
    for (size_t i = 0; i < p->nchain[d->which]; i++)
        if (append_stage(d, p->chain[d->which][i]) < 0)
            return -ENOMEM;
    if (d->n > 0)
        run(d, 0); /* arms the timeouts */
    return 0;
}

static void stage_clear(px_dir *d, px_stage *s)
{
    px_chunk *ch;
    while ((ch = q_pop(&s->q)) != NULL)
        drop(d, ch);
    sockit_timer_close(s->timer);
    s->timer = NULL;
}

void sockit__chain_clear(px_dir *d)
{
    for (size_t i = 0; i < d->n; i++)
        stage_clear(d, d->stages[i]);
    d->held = 0;
}

void sockit__chain_free(px_dir *d)
{
    for (size_t i = 0; i < d->n; i++) {
        stage_clear(d, d->stages[i]);
        free(d->stages[i]);
    }
    free(d->stages);
    d->stages = NULL;
    d->n = 0;
    d->held = 0;
}

bool sockit__chain_idle(const px_dir *d)
{
    if (d->held > 0)
        return false;
    for (size_t i = 0; i < d->n; i++)
        if (d->stages[i]->active || d->stages[i]->q.head != NULL)
            return false;
    return true;
}

int sockit__chain_push(px_dir *d, const char *data, size_t len, int what)
{
    px_chunk *ch = chunk_new(data, len, what, now_of(d));
    if (ch == NULL)
        return -ENOMEM;
    d->held += len;
    q_push(&d->stages[0]->q, ch);
    run(d, 0);
    return 0;
}

int sockit__chain_add(px_dir *d, sockit_toxic *t)
{
    if (append_stage(d, t) < 0)
        return -ENOMEM;
    run(d, d->n - 1);
    return 0;
}

void sockit__chain_update(px_dir *d, sockit_toxic *t)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->stages[i]->toxic == t) {
            stage_draw(d, d->stages[i]);
            run(d, i);
            return;
        }
    }
}

void sockit__chain_remove(px_dir *d, sockit_toxic *t)
{
    size_t i = 0;
    while (i < d->n && d->stages[i]->toxic != t)
        i++;
    if (i == d->n)
        return;
    px_stage *s = d->stages[i];
    memmove(&d->stages[i], &d->stages[i + 1], (d->n - i - 1) * sizeof *d->stages);
    d->n--;
    sockit_timer_close(s->timer);
    s->timer = NULL;
    bool closes = s->active && t->kind == SOCKIT_TOXIC_TIMEOUT && !d->conn->ending;
    /* What s held goes after what the next stage holds: it is newer. */
    px_chunk *ch;
    while ((ch = q_pop(&s->q)) != NULL) {
        if (d->conn->ending || closes) {
            drop(d, ch);
            continue;
        }
        ch->due = NAN;
        if (i < d->n) {
            q_push(&d->stages[i]->q, ch);
        } else {
            unhold(d, left_of(ch));
            sockit__proxy_deliver(d, ch);
        }
    }
    free(s);
    if (closes) /* toxiproxy's timeout toxic closes its connections as it goes */
        sockit__proxy_conn_end(d->conn, "timeout toxic removed", PX_LINGER);
    else if (!d->conn->ending)
        run(d, i < d->n ? i : d->n);
}
