/* I/O watchers: readiness of a descriptor or a sockit, level-triggered as the user
 * sees it on every backend. Watchers are found by descriptor in loop->slots; the
 * backend's token carries a generation, so a report collected for a registration
 * that has since ended (the descriptor closed and reused within one batch) matches
 * no slot and is dropped. */
#include "loop_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t token_of(const sockit_io *io)
{
    return ((uint64_t)io->gen << 32) | (uint32_t)io->fd;
}

static sockit_io *io_new(sockit_loop *loop, int fd, sockit *sock, sockit_io_fn cb, void *user)
{
    if (loop == NULL || cb == NULL) {
        sockit__failf(-EINVAL, "io_new: %s", loop == NULL ? "no loop" : "no callback");
        return NULL;
    }
    if (fd < 0) {
        sockit__failf(-EBADF, "io_new: descriptor %d", fd);
        return NULL;
    }
    sockit_io *io = sockit__calloc(1, sizeof *io);
    if (io == NULL) {
        sockit__failf(-ENOMEM, "io_new (fd %d)", fd);
        return NULL;
    }
    sockit__watcher_init(&io->base, loop, SOCKIT__IO, user, true);
    io->cb = cb;
    io->fd = fd;
    io->sock = sock;
    return io;
}

sockit_io *sockit_io_new(sockit_loop *loop, int fd, sockit_io_fn cb, void *user)
{
    return io_new(loop, fd, NULL, cb, user);
}

sockit_io *sockit_io_new_socket(sockit_loop *loop, sockit *s, sockit_io_fn cb, void *user)
{
    if (s == NULL) {
        sockit__failf(-EBADF, "io_new_socket: no socket");
        return NULL;
    }
    return io_new(loop, sockit_fileno(s), s, cb, user);
}

static void ra_add(sockit_io *io)
{
    if (io->on_ra_list)
        return;
    sockit_loop *loop = io->base.loop;
    io->ra_prev = NULL;
    io->ra_next = loop->ra_head;
    if (loop->ra_head != NULL)
        loop->ra_head->ra_prev = io;
    loop->ra_head = io;
    io->on_ra_list = true;
}

static void ra_remove(sockit_io *io)
{
    if (!io->on_ra_list)
        return;
    if (io->ra_prev != NULL)
        io->ra_prev->ra_next = io->ra_next;
    else
        io->base.loop->ra_head = io->ra_next;
    if (io->ra_next != NULL)
        io->ra_next->ra_prev = io->ra_prev;
    io->on_ra_list = false;
}

/* Bytes readline read ahead are readable now, but the descriptor will never say so. */
static void check_read_ahead(sockit_io *io)
{
    if (io->sock != NULL && (io->events & SOCKIT_EVENT_READ) && sockit_pending(io->sock) > 0)
        ra_add(io);
}

static int grow_slots(sockit_loop *loop, int fd)
{
    void *slots = loop->slots;
    int rc = sockit__fd_table_grow(&slots, &loop->nslots, sizeof *loop->slots, fd);
    loop->slots = slots;
    return rc;
}

int sockit_io_start(sockit_io *io, int events)
{
    if (io == NULL || io->base.closing)
        return sockit__failf(-EINVAL, "io_start: %s", io ? "watcher is closed" : "no watcher");
    if (events & ~(SOCKIT_EVENT_READ | SOCKIT_EVENT_WRITE))
        return sockit__failf(-EINVAL, "io_start (fd %d): events 0x%x (READ 1, WRITE 2)", io->fd,
                             (unsigned)events);
    if (events == 0)
        return sockit_io_stop(io);
    sockit_loop *loop = io->base.loop;
    sockit__backend *b = &loop->backend;
    if (io->events == 0) {
        int rc = grow_slots(loop, io->fd);
        if (rc < 0)
            return sockit__failf(rc, "io_start (fd %d)", io->fd);
        if (loop->slots[io->fd].w != 0)
            return sockit__failf(-EEXIST, "io_start: fd %d already has a watcher on this loop",
                                 io->fd);
        io->gen = loop->next_gen++;
        if (loop->next_gen == 0) /* generation 0 never names a registration */
            loop->next_gen = 1;
        rc = b->ops->watch(b, io->fd, token_of(io), 0, events);
        if (rc < 0)
            return sockit__failf(rc, "io_start: watching fd %d (%s)", io->fd, b->ops->name);
        loop->slots[io->fd].w = (uintptr_t)io;
    } else if (events != io->events) {
        int rc = b->ops->watch(b, io->fd, token_of(io), io->events, events);
        if (rc < 0)
            return sockit__failf(rc, "io_start: changing fd %d's events (%s)", io->fd,
                                 b->ops->name);
    }
    io->events = events;
    sockit__watcher_set_active(&io->base, true);
    if (!(events & SOCKIT_EVENT_READ))
        ra_remove(io);
    check_read_ahead(io);
    return 0;
}

int sockit_io_stop(sockit_io *io)
{
    if (io == NULL)
        return sockit__failf(-EINVAL, "io_stop: no watcher");
    if (io->events == 0)
        return 0;
    sockit_loop *loop = io->base.loop;
    sockit__backend *b = &loop->backend;
    int rc = b->ops->watch(b, io->fd, token_of(io), io->events, 0);
    /* The slot goes whatever the backend said: the watcher no longer wants reports,
     * and the generation check drops any that are still on their way. */
    loop->slots[io->fd].w = 0;
    io->events = 0;
    ra_remove(io);
    sockit__watcher_set_active(&io->base, false);
    if (rc < 0)
        return sockit__failf(rc, "io_stop: unwatching fd %d (%s)", io->fd, b->ops->name);
    return 0;
}

int sockit_io_events(const sockit_io *io) { return io ? io->events : 0; }
int sockit_io_fd(const sockit_io *io) { return io ? io->fd : -1; }

void sockit_io_keepalive(sockit_io *io, bool on)
{
    if (io != NULL)
        sockit__watcher_set_keepalive(&io->base, on);
}

void sockit_io_close(sockit_io *io)
{
    if (io == NULL || io->base.closing)
        return;
    sockit_io_stop(io);
    sockit__watcher_release(&io->base);
}

void sockit__io_free(sockit_io *io) { sockit__free(io); }

static void dispatch(sockit_io *io, int events)
{
    if (events & SOCKIT_EVENT_READ)
        io->dispatched_in = io->base.loop->iteration;
    io->cb(io, events, io->base.user);
    /* The callback may have stopped or closed it; a live one may have left bytes
     * read ahead. */
    if (!io->base.closing && io->events != 0)
        check_read_ahead(io);
}

#define SLOT_HANDLE ((uintptr_t)1)

void sockit__io_ready(sockit_loop *loop, uint64_t token, int events)
{
    uint32_t fd = (uint32_t)token, gen = (uint32_t)(token >> 32);
    if (fd >= loop->nslots || loop->slots[fd].w == 0)
        return;
    uintptr_t w = loop->slots[fd].w;
    if (w & SLOT_HANDLE) {
        sockit__handle *h = (sockit__handle *)(w & ~SLOT_HANDLE);
        int mine = events & h->events;
        /* A registration that has ended is never the new owner's. */
        if (h->gen == gen && mine != 0) {
            if (h->kind == SOCKIT__HANDLE_STREAM)
                sockit__stream_handle_ready(h, mine);
            else
                sockit__datagram_handle_ready(h, mine);
        }
        return;
    }
    sockit_io *io = (sockit_io *)w;
    int mine = events & io->events;
    if (io->gen == gen && mine != 0)
        dispatch(io, mine);
}

static uint64_t handle_token(const sockit__handle *h)
{
    return ((uint64_t)h->gen << 32) | (uint32_t)h->fd;
}

void sockit__handle_init(sockit_loop *loop, sockit__handle *h, int fd, sockit__handle_kind kind)
{
    *h = (sockit__handle){.fd = fd, .kind = (uint8_t)kind};
    loop->open[SOCKIT__IO]++;
}

int sockit__handle_watch(sockit_loop *loop, sockit__handle *h, int events)
{
    sockit__backend *b = &loop->backend;
    if (events == h->events)
        return 0;
    if (h->ring) {
        if ((h->events != 0) != (events != 0))
            loop->alive += events != 0 ? 1 : -1;
        h->events = (uint8_t)events;
        return 0;
    }
    if (h->events == 0) {
        int rc = grow_slots(loop, h->fd);
        if (rc < 0)
            return sockit__failf(rc, "watching fd %d", h->fd);
        if (loop->slots[h->fd].w != 0)
            return sockit__failf(-EEXIST, "fd %d already has a watcher on this loop", h->fd);
        h->gen = loop->next_gen++;
        if (loop->next_gen == 0)
            loop->next_gen = 1;
        rc = b->ops->watch(b, h->fd, handle_token(h), 0, events);
        if (rc < 0)
            return sockit__failf(rc, "watching fd %d (%s)", h->fd, b->ops->name);
        loop->slots[h->fd].w = (uintptr_t)h | SLOT_HANDLE;
        loop->alive++;
    } else {
        int rc = b->ops->watch(b, h->fd, handle_token(h), h->events, events);
        if (events == 0) {
            loop->slots[h->fd].w = 0;
            loop->alive--;
        }
        if (rc < 0 && events != 0)
            return sockit__failf(rc, "changing fd %d's events (%s)", h->fd, b->ops->name);
    }
    h->events = (uint8_t)events;
    return 0;
}

void sockit__handle_close(sockit_loop *loop, sockit__handle *h)
{
    sockit__handle_watch(loop, h, 0);
    loop->open[SOCKIT__IO]--;
}

bool sockit__io_read_ahead_waiting(sockit_loop *loop)
{
    for (sockit_io *io = loop->ra_head; io != NULL;) {
        sockit_io *next = io->ra_next;
        if (!(io->events & SOCKIT_EVENT_READ) || sockit_pending(io->sock) == 0)
            ra_remove(io);
        io = next;
    }
    return loop->ra_head != NULL;
}

void sockit__io_run_read_ahead(sockit_loop *loop)
{
    if (loop->ra_head == NULL)
        return;
    /* Taken whole into an array first: the callbacks may put watchers back on the
     * list (bytes still buffered: reported next iteration) or take them off. */
    size_t n = 0;
    for (sockit_io *io = loop->ra_head; io != NULL; io = io->ra_next)
        n++;
    if (n > loop->ra_cap) {
        sockit_io **a = sockit__realloc(loop->ra_scratch, n * sizeof *a);
        if (a == NULL)
            return; /* they stay listed, and are tried again next iteration */
        loop->ra_scratch = a;
        loop->ra_cap = n;
    }
    n = 0;
    for (sockit_io *io = loop->ra_head; io != NULL; io = io->ra_next) {
        io->on_ra_list = false;
        loop->ra_scratch[n++] = io;
    }
    loop->ra_head = NULL;
    for (size_t i = 0; i < n; i++) {
        sockit_io *w = loop->ra_scratch[i];
        if (w->base.closing || !(w->events & SOCKIT_EVENT_READ))
            continue;
        if (w->dispatched_in == loop->iteration) /* reported this iteration already */
            check_read_ahead(w);
        else if (sockit_pending(w->sock) > 0)
            dispatch(w, SOCKIT_EVENT_READ);
    }
}
