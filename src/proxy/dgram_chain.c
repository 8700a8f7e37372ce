/* A datagram direction's chain: one stage per toxic. A stage drops a datagram,
 * cuts it, copies it or holds it back; what it lets go runs on through the stages
 * after it, and past the last to the receiver. Datagrams are borrowed from the
 * receive batch until a stage must hold one, so a chain that only drops or cuts
 * costs no copy. */
#include "proxy_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static sockit_proxy *proxy_of(const px_cdir *d) { return d->client->proxy; }
static double now_of(const px_cdir *d) { return sockit_loop_now(proxy_of(d)->loop); }
static double draw(const px_cdir *d) { return sockit__proxy_random(proxy_of(d)); }

static void dropped(px_cdir *d, px_dgram *g)
{
    proxy_of(d)->stats.dropped++;
    free(g);
}

static size_t index_of(const px_cdir *d, const px_dstage *s)
{
    size_t i = 0;
    while (i < d->n && d->stages[i] != s)
        i++;
    return i;
}

/* ---- what a stage holds ------------------------------------------------------------ */

static void unhold(px_cdir *d, size_t len)
{
    sockit_proxy *p = proxy_of(d);
    d->held -= PX_DGRAM_COST(len);
    p->held -= PX_DGRAM_COST(len);
}

static bool room_for(const px_cdir *d, size_t len)
{
    const sockit_proxy *p = proxy_of(d);
    return d->held + PX_DGRAM_COST(len) <= SOCKIT_PROXY_HELD_MAX &&
           p->held + PX_DGRAM_COST(len) <= PX_DGRAM_HELD_ALL;
}

/* Takes the datagram into a stage's keeping: a copy unless it is owned already.
 * NULL when there is no room (the datagram is then dropped and counted). */
static px_dgram *keep(px_cdir *d, const char *data, size_t len, px_dgram *g)
{
    sockit_proxy *p = proxy_of(d);
    if (!room_for(d, len)) {
        dropped(d, g);
        return NULL;
    }
    if (g == NULL) {
        g = malloc(sizeof *g + len);
        if (g == NULL) {
            dropped(d, NULL);
            return NULL;
        }
        if (len > 0)
            memcpy(g->data, data, len);
    }
    g->len = len;
    g->next = NULL;
    g->wait = 0;
    d->held += PX_DGRAM_COST(len);
    p->held += PX_DGRAM_COST(len);
    return g;
}

static void append(px_dstage *s, px_dgram *g)
{
    if (s->tail != NULL)
        s->tail->next = g;
    else
        s->head = g;
    s->tail = g;
    s->count++;
}

/* Keeps the stage's list in the order of due times, a later one after an equal
 * one (latency with jitter: each datagram has its own delay). Without jitter each
 * is the latest, so the common case is an append. */
static void insert_by_due(px_dstage *s, px_dgram *g)
{
    if (s->tail == NULL || s->tail->due <= g->due) {
        append(s, g);
        return;
    }
    px_dgram **at = &s->head;
    while (*at != NULL && (*at)->due <= g->due)
        at = &(*at)->next;
    g->next = *at;
    *at = g;
    s->count++;
}

static void stage_fire(sockit_timer *t, void *arg);

/* Arms the stage's timer for its earliest due time: every stage's list is in the
 * order of due times (latency sorts it; bandwidth's and reorder's times only grow). */
static void arm(px_dstage *s)
{
    if (s->head == NULL) {
        if (s->timer != NULL)
            sockit_timer_stop(s->timer);
        return;
    }
    double due = s->head->due;
    if (s->timer == NULL) {
        s->timer = sockit_timer_new(proxy_of(s->dir)->loop, stage_fire, s);
        if (s->timer == NULL)
            return; /* released when the next datagram passes, or when the toxic goes */
    }
    double after = due - now_of(s->dir);
    sockit_timer_start(s->timer, after > 0 ? after : 0, 0);
}

/* Takes g out of s's list; prev is the one before it (NULL: the head). */
static void unlink_after(px_dstage *s, px_dgram *prev, px_dgram *g)
{
    if (prev != NULL)
        prev->next = g->next;
    else
        s->head = g->next;
    if (s->tail == g)
        s->tail = prev;
    g->next = NULL;
    s->count--;
}

/* Lets the held datagrams that are due (or, with all, every one) go on from the
 * stage at index i, in the list's order. Due times and reorder's counts only grow
 * along the list, so those due are its head. */
static void release(px_cdir *d, px_dstage *s, size_t i, bool all)
{
    double now = now_of(d);
    px_dgram *g;
    while ((g = s->head) != NULL &&
           (all || g->due <= now || (s->toxic->kind == SOCKIT_TOXIC_REORDER && g->wait <= 0))) {
        unlink_after(s, NULL, g);
        unhold(d, g->len);
        sockit__dchain_run(d, i + 1, g->data, g->len, g);
    }
}

static void stage_fire(sockit_timer *t, void *arg)
{
    (void)t;
    px_dstage *s = arg;
    px_cdir *d = s->dir;
    release(d, s, index_of(d, s), false);
    arm(s);
}

/* ---- each kind ------------------------------------------------------------------- */

/* Loss: independent draws, or a two-state (Gilbert) chain whose runs of losses
 * average `burst` datagrams and whose share of losses is still the probability:
 * a run ends with chance 1/burst, and one starts with chance p / (burst (1 - p)). */
static bool lost(px_cdir *d, px_dstage *s)
{
    const sockit_toxic *t = s->toxic;
    double p = t->probability;
    if (p <= 0)
        return false;
    if (p >= 1)
        return true;
    if (t->burst <= 0)
        return draw(d) < p;
    double end = 1.0 / (double)t->burst;
    if (s->losing)
        s->losing = draw(d) >= end;
    else
        s->losing = draw(d) < p * end / (1 - p);
    return s->losing;
}

/* Latency and bandwidth: when the datagram goes on, or NAN to let it pass now,
 * or INFINITY to drop it (more than a second of queue at the rate). Bandwidth's
 * link is taken (s->next) only once the datagram is kept: one dropped for want
 * of room must not use up time no datagram fills. */
static double due_of(px_cdir *d, px_dstage *s, size_t len)
{
    const sockit_toxic *t = s->toxic;
    double now = now_of(d);
    if (t->kind == SOCKIT_TOXIC_LATENCY) {
        double ms = (double)t->latency;
        if (t->jitter > 0)
            ms += (draw(d) * 2 - 1) * (double)t->jitter;
        return ms > 0 ? now + ms / 1000 : NAN;
    }
    if (t->rate <= 0)
        return NAN;
    double start = s->next > now ? s->next : now;
    if (start - now > 1.0)
        return INFINITY;
    return start + (double)len / ((double)t->rate * 1000);
}

void sockit__dchain_run(px_cdir *d, size_t i, const char *data, size_t len, px_dgram *g)
{
    for (; i < d->n; i++) {
        px_dstage *s = d->stages[i];
        if (!s->active)
            continue;
        const sockit_toxic *t = s->toxic;
        switch (t->kind) {
        case SOCKIT_TOXIC_LOSS:
            if (lost(d, s)) {
                dropped(d, g);
                return;
            }
            break;
        case SOCKIT_TOXIC_DUPLICATE:
            if (draw(d) < t->probability)
                sockit__dchain_run(d, i + 1, data, len, NULL); /* the copy, borrowed */
            break;
        case SOCKIT_TOXIC_TRUNCATE:
            if (len > (size_t)t->size)
                len = (size_t)t->size;
            break;
        case SOCKIT_TOXIC_REORDER:
            /* past its cap, or with no room, a datagram passes in order */
            if (s->count < PX_REORDER_HELD_MAX && room_for(d, len) && draw(d) < t->probability) {
                if ((g = keep(d, data, len, g)) == NULL)
                    return;
                g->wait = t->gap;
                g->due = now_of(d) + (double)t->delay / 1000;
                append(s, g);
                arm(s);
                return;
            }
            if (s->count > 0) {
                /* this one overtakes those held; those it was the last for follow it */
                for (px_dgram *h = s->head; h != NULL; h = h->next)
                    h->wait--;
                sockit__dchain_run(d, i + 1, data, len, g);
                release(d, s, i, false);
                arm(s);
                return;
            }
            break;
        case SOCKIT_TOXIC_LATENCY:
        case SOCKIT_TOXIC_BANDWIDTH: {
            double due = due_of(d, s, len);
            if (isnan(due))
                break;
            if (isinf(due)) {
                dropped(d, g);
                return;
            }
            if ((g = keep(d, data, len, g)) == NULL)
                return;
            g->due = due;
            if (t->kind == SOCKIT_TOXIC_LATENCY) {
                insert_by_due(s, g);
            } else {
                s->next = due;
                append(s, g);
            }
            if (s->head == g)
                arm(s);
            return;
        }
        default:
            break;
        }
    }
    sockit__client_deliver(d, data, len);
    free(g);
}

/* ---- the chain as the toxics change ---------------------------------------------------- */

static px_dstage *stage_new(px_cdir *d, sockit_toxic *t)
{
    px_dstage *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->toxic = t;
    s->dir = d;
    s->active = draw(d) < t->toxicity;
    return s;
}

/* Drops what the stage holds (counted) and closes its timer. */
static void stage_clear(px_cdir *d, px_dstage *s)
{
    for (px_dgram *g = s->head, *next; g != NULL; g = next) {
        next = g->next;
        unhold(d, g->len);
        dropped(d, g);
    }
    s->head = s->tail = NULL;
    s->count = 0;
    sockit_timer_close(s->timer);
    s->timer = NULL;
}

static void stage_free(px_cdir *d, px_dstage *s)
{
    stage_clear(d, s);
    free(s);
}

int sockit__dchain_add(px_cdir *d, sockit_toxic *t)
{
    px_dstage **grown = realloc(d->stages, (d->n + 1) * sizeof *grown);
    if (grown == NULL)
        return -ENOMEM;
    d->stages = grown;
    px_dstage *s = stage_new(d, t);
    if (s == NULL)
        return -ENOMEM;
    d->stages[d->n++] = s;
    return 0;
}

int sockit__dchain_build(px_cdir *d)
{
    sockit_proxy *p = proxy_of(d);
    for (size_t i = 0; i < p->nchain[d->which]; i++)
        if (sockit__dchain_add(d, p->chain[d->which][i]) < 0)
            return -ENOMEM;
    return 0;
}

/* The index of t's stage in d, or d->n. */
static size_t stage_index(const px_cdir *d, const sockit_toxic *t)
{
    size_t i = 0;
    while (i < d->n && d->stages[i]->toxic != t)
        i++;
    return i;
}

void sockit__dchain_update(px_cdir *d, sockit_toxic *t)
{
    size_t i = stage_index(d, t);
    if (i == d->n)
        return;
    px_dstage *s = d->stages[i];
    s->active = draw(d) < t->toxicity;
    s->losing = false;
    if (!s->active) /* a toxic no longer acting holds nothing back */
        release(d, s, i, true);
    else if (t->kind == SOCKIT_TOXIC_REORDER) /* the new gap and delay count from now */
        for (px_dgram *g = s->head; g != NULL; g = g->next) {
            g->wait = t->gap;
            g->due = now_of(d) + (double)t->delay / 1000;
        }
    arm(s);
}

void sockit__dchain_remove(px_cdir *d, sockit_toxic *t)
{
    size_t i = stage_index(d, t);
    if (i == d->n)
        return;
    px_dstage *s = d->stages[i];
    /* What it held goes on in its order; it is out of the chain first, so the
     * stages after it (now from index i) take it. */
    memmove(&d->stages[i], &d->stages[i + 1], (d->n - i - 1) * sizeof *d->stages);
    d->n--;
    for (px_dgram *g = s->head, *next; g != NULL; g = next) {
        next = g->next;
        g->next = NULL;
        unhold(d, g->len);
        sockit__dchain_run(d, i, g->data, g->len, g);
    }
    s->head = s->tail = NULL;
    s->count = 0;
    stage_free(d, s);
}

void sockit__dchain_clear(px_cdir *d)
{
    for (size_t i = 0; i < d->n; i++)
        stage_clear(d, d->stages[i]);
}

void sockit__dchain_free(px_cdir *d)
{
    for (size_t i = 0; i < d->n; i++)
        stage_free(d, d->stages[i]);
    free(d->stages);
    d->stages = NULL;
    d->n = 0;
}
