/* sockit_selector: Python's selectors over the loop's backends (src/loop/backend.h).
 * Keys are found by descriptor; each registration's token carries a generation, as
 * the loop's do. */
#include "abi.h"
#include "loop/backend.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct key_slot {
    sockit_selector_key *key;
    uint32_t gen;
    bool rechecked;  /* on the recheck list */
    uint64_t round;  /* the select that last collected it, */
    size_t at;       /* at this index of ready */
    uint64_t served; /* the select that last returned it (0: never) */
} key_slot;

/* One collected result, and when its descriptor was last returned: when more are
 * ready than the caller has room for, those that waited longest go first. */
typedef struct ready_item {
    sockit_selector_event ev;
    uint64_t served;
    size_t seq;
} ready_item;

struct sockit_selector {
    sockit__backend backend;
    key_slot *slots;
    size_t nslots, count;
    uint32_t next_gen;
    uint64_t round; /* selects so far */
    /* One select's results, each descriptor once, collected before any is returned
     * (room for every registration). */
    ready_item *ready;
    size_t nready, ready_cap;
    /* Sockets that may have bytes read ahead, which their descriptor will never
     * report: those selected readable last time (the reads that followed may have
     * left bytes behind) and those registered or modified since with bytes already
     * read ahead. Each once (rechecked). */
    int *recheck;
    size_t nrecheck, recheck_cap;
};

sockit_selector *sockit_selector_new(const sockit_loop_options *opts)
{
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    if (opts != NULL && sockit__struct_copy(&o, sizeof o, opts, SOCKIT__BASE_LOOP_OPTIONS,
                                            "selector_new: options") < 0)
        return NULL;
    sockit_selector *sel = sockit__calloc(1, sizeof *sel);
    if (sel == NULL) {
        sockit__failf(-ENOMEM, "selector_new");
        return NULL;
    }
    sel->next_gen = 1;
    if (sockit__backend_open(&sel->backend, o.backend) < 0) {
        sockit__free(sel);
        return NULL;
    }
    return sel;
}

static int check_events(const char *op, int fd, int events)
{
    if (events == 0 || (events & ~(SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE)))
        return sockit__failf(-EINVAL, "%s: fd %d: events 0x%x (READ 1, WRITE 2, or both)", op, fd,
                             (unsigned)events);
    return 0;
}

static sockit_selector_key *find(const sockit_selector *sel, int fd)
{
    return fd >= 0 && (size_t)fd < sel->nslots ? sel->slots[fd].key : NULL;
}

static uint64_t token(const sockit_selector *sel, int fd)
{
    return ((uint64_t)sel->slots[fd].gen << 32) | (uint32_t)fd;
}

static bool has_read_ahead(const sockit_selector_key *key)
{
    return key->sock != NULL && (key->events & SOCKIT_EVENT_READ) && sockit_pending(key->sock) > 0;
}

/* Lists fd for the next select's read-ahead check. Returns false without memory. */
static bool recheck_add(sockit_selector *sel, int fd)
{
    if (sel->slots[fd].rechecked)
        return true;
    if (sel->nrecheck == sel->recheck_cap) {
        size_t cap = sel->recheck_cap ? sel->recheck_cap * 2 : 16;
        int *r = sockit__realloc(sel->recheck, cap * sizeof *r);
        if (r == NULL)
            return false;
        sel->recheck = r;
        sel->recheck_cap = cap;
    }
    sel->recheck[sel->nrecheck++] = fd;
    sel->slots[fd].rechecked = true;
    return true;
}

static int add(sockit_selector *sel, int fd, sockit *s, int events, void *data, const char *op)
{
    if (sel == NULL)
        return sockit__failf(-EINVAL, "%s: no selector", op);
    if (fd < 0)
        return sockit__failf(-EBADF, "%s: fd %d", op, fd);
    int rc = check_events(op, fd, events);
    if (rc < 0)
        return rc;
    if (find(sel, fd) != NULL)
        return sockit__failf(-EEXIST, "%s: fd %d is already registered", op, fd);
    void *slots = sel->slots;
    rc = sockit__fd_table_grow(&slots, &sel->nslots, sizeof *sel->slots, fd);
    sel->slots = slots;
    if (rc < 0)
        return sockit__failf(rc, "%s: fd %d", op, fd);
    sockit_selector_key *key = sockit__malloc(sizeof *key);
    if (key == NULL)
        return sockit__failf(-ENOMEM, "%s: fd %d", op, fd);
    *key = (sockit_selector_key){fd, s, events, data};
    sel->slots[fd].gen = sel->next_gen++;
    sel->slots[fd].served = 0;
    if (sel->next_gen == 0)
        sel->next_gen = 1;
    rc = sel->backend.ops->watch(&sel->backend, fd, token(sel, fd), 0, events);
    if (rc < 0) {
        sockit__free(key);
        return sockit__failf(rc, "%s: fd %d (%s)", op, fd, sel->backend.ops->name);
    }
    sel->slots[fd].key = key;
    sel->count++;
    if (has_read_ahead(key) && !recheck_add(sel, fd)) {
        sockit_selector_unregister(sel, fd);
        return sockit__failf(-ENOMEM, "%s: fd %d", op, fd);
    }
    return 0;
}

int sockit_selector_register(sockit_selector *sel, int fd, int events, void *data)
{
    return add(sel, fd, NULL, events, data, "selector_register");
}

int sockit_selector_register_socket(sockit_selector *sel, sockit *s, int events, void *data)
{
    if (s == NULL)
        return sockit__failf(-EBADF, "selector_register_socket: no socket");
    return add(sel, sockit_fileno(s), s, events, data, "selector_register_socket");
}

int sockit_selector_modify(sockit_selector *sel, int fd, int events, void *data)
{
    if (sel == NULL)
        return sockit__failf(-EINVAL, "selector_modify: no selector");
    int rc = check_events("selector_modify", fd, events);
    if (rc < 0)
        return rc;
    sockit_selector_key *key = find(sel, fd);
    if (key == NULL)
        return sockit__failf(-ENOENT, "selector_modify: fd %d is not registered", fd);
    if (events != key->events) {
        rc = sel->backend.ops->watch(&sel->backend, fd, token(sel, fd), key->events, events);
        if (rc < 0)
            return sockit__failf(rc, "selector_modify: fd %d (%s)", fd, sel->backend.ops->name);
        key->events = events;
    }
    key->data = data;
    /* Asked for READ again with bytes already read ahead: readable at once. On
     * failure the registration has changed but that is still reported when the
     * descriptor is selected readable. */
    if (has_read_ahead(key) && !recheck_add(sel, fd))
        return sockit__failf(-ENOMEM, "selector_modify: fd %d", fd);
    return 0;
}

int sockit_selector_unregister(sockit_selector *sel, int fd)
{
    if (sel == NULL)
        return sockit__failf(-EINVAL, "selector_unregister: no selector");
    sockit_selector_key *key = find(sel, fd);
    if (key == NULL)
        return sockit__failf(-ENOENT, "selector_unregister: fd %d is not registered", fd);
    int rc = sel->backend.ops->watch(&sel->backend, fd, token(sel, fd), key->events, 0);
    sel->slots[fd].key = NULL;
    sel->count--;
    sockit__free(key);
    if (rc < 0)
        return sockit__failf(rc, "selector_unregister: fd %d (%s)", fd, sel->backend.ops->name);
    return 0;
}

const sockit_selector_key *sockit_selector_get_key(const sockit_selector *sel, int fd)
{
    const sockit_selector_key *key = sel ? find(sel, fd) : NULL;
    if (key == NULL)
        sockit__failf(-ENOENT, "selector_get_key: fd %d is not registered", fd);
    return key;
}

size_t sockit_selector_count(const sockit_selector *sel) { return sel ? sel->count : 0; }

const char *sockit_selector_backend(const sockit_selector *sel)
{
    return sel ? sel->backend.ops->name : "none";
}

/* Adds the result for key, or widens the one it already has in this select (from
 * read-ahead: the backend reports each descriptor once per wait). */
static void collect(sockit_selector *sel, sockit_selector_key *key, int events)
{
    key_slot *slot = &sel->slots[key->fd];
    if (slot->round == sel->round) {
        sel->ready[slot->at].ev.events |= events;
        return;
    }
    if (sel->nready == sel->ready_cap)
        return; /* cannot happen: room for every registration */
    slot->round = sel->round;
    slot->at = sel->nready;
    sel->ready[sel->nready] = (ready_item){{key, events}, slot->served, sel->nready};
    sel->nready++;
}

static void on_ready(void *ctx, uint64_t tok, int events)
{
    sockit_selector *sel = ctx;
    int fd = (int)(uint32_t)tok;
    sockit_selector_key *key = find(sel, fd);
    if (key == NULL || sel->slots[fd].gen != (uint32_t)(tok >> 32))
        return;
    int mine = events & key->events;
    if (mine != 0)
        collect(sel, key, mine);
}

/* The recheck list's sockets that have bytes read ahead; the list is rebuilt after
 * the wait. */
static void collect_read_ahead(sockit_selector *sel)
{
    for (size_t i = 0; i < sel->nrecheck; i++) {
        int fd = sel->recheck[i];
        sel->slots[fd].rechecked = false;
        sockit_selector_key *key = find(sel, fd);
        if (key != NULL && has_read_ahead(key))
            collect(sel, key, SOCKIT_EVENT_READ);
    }
    sel->nrecheck = 0;
}

/* Every collected socket that is readable is checked again next time, whether it
 * is returned now or not. Without memory, only the descriptor's own readiness is
 * seen for those left off. */
static void remember_readable_sockets(sockit_selector *sel)
{
    for (size_t i = 0; i < sel->nready; i++) {
        const sockit_selector_key *key = sel->ready[i].ev.key;
        if (key->sock != NULL && (sel->ready[i].ev.events & SOCKIT_EVENT_READ))
            recheck_add(sel, key->fd);
    }
}

static int longest_waiting_first(const void *pa, const void *pb)
{
    const ready_item *a = pa, *b = pb;
    if (a->served != b->served)
        return a->served < b->served ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

ssize_t sockit_selector_select(sockit_selector *sel, double timeout, sockit_selector_event *out,
                               size_t max)
{
    if (sel == NULL || (out == NULL && max > 0) || isnan(timeout))
        return sockit__failf(-EINVAL, "selector_select: %s",
                             sel == NULL ? "no selector" : "bad output or timeout");
    if (sel->ready_cap < sel->count) {
        ready_item *r = sockit__realloc(sel->ready, sel->count * sizeof *r);
        if (r == NULL)
            return sockit__failf(-ENOMEM, "selector_select: %zu registrations", sel->count);
        sel->ready = r;
        sel->ready_cap = sel->count;
    }
    sel->round++;
    sel->nready = 0;
    collect_read_ahead(sel);
    int64_t deadline = sel->nready > 0 ? 0 : timeout < 0 ? -1 : sockit__deadline(timeout);
    for (;;) {
        int64_t left = deadline <= 0 ? deadline : deadline - sockit__now_ns();
        if (left < 0 && deadline > 0)
            left = 0;
        int rc = sel->backend.ops->wait(&sel->backend, left, on_ready, sel);
        if (rc < 0) {
            remember_readable_sockets(sel);
            return sockit__failf(rc, "selector_select (%s)", sel->backend.ops->name);
        }
        /* Nothing reported before the deadline is an interrupted wait (PEP 475). */
        if (sel->nready > 0 || left == 0 || (deadline > 0 && sockit__now_ns() >= deadline))
            break;
    }
    remember_readable_sockets(sel);
    /* More ready than room: the level-triggered backend reports the rest again next
     * time, and the ones returned least recently go first, so none is starved. */
    if (sel->nready > max)
        qsort(sel->ready, sel->nready, sizeof *sel->ready, longest_waiting_first);
    size_t n = sel->nready < max ? sel->nready : max;
    for (size_t i = 0; i < n; i++) {
        out[i] = sel->ready[i].ev;
        sel->slots[out[i].key->fd].served = sel->round;
    }
    return (ssize_t)n;
}

int sockit_selector_close(sockit_selector *sel)
{
    if (sel == NULL)
        return 0;
    for (size_t fd = 0; fd < sel->nslots; fd++)
        sockit__free(sel->slots[fd].key);
    sel->backend.ops->close(&sel->backend, false);
    sockit__free(sel->slots);
    sockit__free(sel->recheck);
    sockit__free(sel->ready);
    sockit__free(sel);
    return 0;
}
