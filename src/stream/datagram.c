/* Datagram endpoints on the loop: making one, receiving in batches (recvmmsg) and
 * handing each datagram to on_datagram with its sender, closing. The send queue is
 * datagram_send.c. */
#include "../abi.h"
#include "datagram_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

void sockit__datagram_batch_free(sockit_loop *loop)
{
    if (loop->dgram_batch == NULL)
        return;
    sockit__free(loop->dgram_batch->buf);
    sockit__free(loop->dgram_batch);
    loop->dgram_batch = NULL;
}

static sockit__dgram_batch *batch_get(sockit_loop *loop)
{
    if (loop->dgram_batch != NULL)
        return loop->dgram_batch;
    sockit__dgram_batch *b = sockit__calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    /* Not cleared: untouched pages cost no memory until a datagram lands there. */
    b->buf = sockit__malloc((size_t)SOCKIT__DGRAM_BATCH * SOCKIT__DGRAM_ROOM);
    if (b->buf == NULL) {
        sockit__free(b);
        return NULL;
    }
    loop->dgram_batch = b;
    return b;
}

void sockit__datagram_name(const sockit_datagram *d, const sockit_addr *a, char *buf, size_t size)
{
    if (a != NULL && a->len > 0 && sockit_addr_format(a, buf, size) > 0)
        return;
    sockit_addr peer;
    peer.len = sizeof peer.u;
    if (d->connected && getpeername(d->h.fd, &peer.u.sa, &peer.len) == 0 &&
        sockit_addr_format(&peer, buf, size) > 0)
        return;
    snprintf(buf, size, "fd %d", d->h.fd);
}

void sockit__datagram_update_io(sockit_datagram *d)
{
    if (d->h.fd < 0)
        return;
    int want = (d->paused || d->closing || d->kept_head != NULL ? 0 : SOCKIT_EVENT_READ) |
               (d->q_head != NULL && !d->retrying ? SOCKIT_EVENT_WRITE : 0);
    sockit__handle_watch(d->loop, &d->h, want);
}

static void report(sockit_datagram *d, int code, const char *op, const sockit_addr *a)
{
    if (d->closing || d->cb == NULL || d->cb->on_error == NULL)
        return;
    char name[SOCKIT_ADDRSTRLEN];
    sockit__datagram_name(d, a, name, sizeof name);
    sockit__failf(code, "%s (%s)", op, name);
    d->cb->on_error(d, code, d->user);
}

/* The callbacks of a report or a kept delivery may close d: it is freed when the
 * outermost of them has unwound (see run_on_close). */
static void enter(sockit_datagram *d) { d->depth++; }

static void leave(sockit_datagram *d)
{
    if (--d->depth == 0 && d->free_later)
        sockit__free(d);
}

/* Hands one datagram to the user, unless verify rejects it. */
static void deliver_one(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                        bool truncated)
{
    /* An unnamed Unix sender has only a family (or nothing): it cannot be answered,
     * so on_datagram gets no address; verify still sees what there is. */
    const sockit_addr *sender = from->len > sizeof(sa_family_t) ? from : NULL;
    if (d->verify != NULL && !d->verify(d->verify_ctx, from))
        return;
    if (d->cb != NULL && d->cb->on_datagram != NULL)
        d->cb->on_datagram(d, data, len, sender, truncated, d->user);
}

/* Keeps a received datagram a pause left undelivered. Returns false for no memory
 * (the datagram is then lost, as the kernel would lose it). */
static bool keep(sockit_datagram *d, const char *data, size_t len, const sockit_addr *from,
                 bool truncated)
{
    sockit__dgram_out *o = sockit__malloc(sizeof *o + len);
    if (o == NULL)
        return false;
    o->next = NULL;
    o->len = len;
    o->to = *from;
    o->truncated = truncated;
    if (len > 0)
        memcpy(o->data, data, len);
    if (d->kept_tail != NULL)
        d->kept_tail->next = o;
    else
        d->kept_head = o;
    d->kept_tail = o;
    return true;
}

static void drop_kept(sockit_datagram *d)
{
    while (d->kept_head != NULL) {
        sockit__dgram_out *o = d->kept_head;
        d->kept_head = o->next;
        sockit__free(o);
    }
    d->kept_tail = NULL;
}

/* Delivers one received batch; what a pause inside it left is kept. Returns false
 * when the endpoint was closed or paused from a callback. */
static bool deliver(sockit_datagram *d, sockit__dgram_batch *b, int n)
{
    for (int i = 0; i < n; i++) {
        struct msghdr *m = &b->msgs[i].msg_hdr;
        sockit_addr *from = &b->from[i];
        from->len = m->msg_namelen;
        if (d->closing)
            return false;
        /* Behind kept ones too: a pause and a resume inside one batch keep order. */
        if (d->paused || d->kept_head != NULL) {
            if (!keep(d, b->iov[i].iov_base, b->msgs[i].msg_len, from,
                      (m->msg_flags & MSG_TRUNC) != 0))
                report(d, -ENOMEM, "recv: keeping datagrams past a pause", NULL);
            continue;
        }
        /* MSG_TRUNC in each message's flags says which datagrams were longer than
         * their room, for UDP and Unix datagrams alike. */
        deliver_one(d, b->iov[i].iov_base, b->msgs[i].msg_len, from,
                    (m->msg_flags & MSG_TRUNC) != 0);
    }
    return !d->closing && !d->paused && d->kept_head == NULL;
}

static void deliver_kept(sockit_loop *loop, void *arg);

/* Kept datagrams come first, from the loop; call_soon runs in order, so one
 * scheduled before a close runs before the close's on_close frees d. */
static void schedule_kept(sockit_datagram *d)
{
    if (d->kept_head != NULL && !d->paused && !d->kept_scheduled && !d->delivering &&
        sockit_loop_call_soon(d->loop, deliver_kept, d) == 0)
        d->kept_scheduled = true;
}

/* Delivers what a pause kept, from the loop after a resume, before reading more. */
static void deliver_kept(sockit_loop *loop, void *arg)
{
    (void)loop;
    sockit_datagram *d = arg;
    d->kept_scheduled = false;
    if (d->closing)
        return;
    enter(d);
    d->delivering = true;
    while (d->kept_head != NULL && !d->paused && !d->closing) {
        sockit__dgram_out *o = d->kept_head;
        d->kept_head = o->next;
        if (d->kept_head == NULL)
            d->kept_tail = NULL;
        deliver_one(d, o->data, o->len, &o->to, o->truncated);
        sockit__free(o);
    }
    d->delivering = false;
    schedule_kept(d);
    if (d->loop->dgram_batch != NULL && d->loop->dgram_batch->nout > 0)
        sockit__datagram_flush_batch(d, !d->closing);
    if (d->h.fd >= 0)
        sockit__datagram_update_io(d);
    leave(d);
}

static void receive(sockit_datagram *d)
{
    sockit__dgram_batch *b = batch_get(d->loop);
    if (b == NULL) {
        report(d, -ENOMEM, "recv", NULL);
        return;
    }
    for (int round = 0; round < SOCKIT__DGRAM_ROUNDS && d->kept_head == NULL; round++) {
        for (int i = 0; i < SOCKIT__DGRAM_BATCH; i++) {
            b->iov[i] = (struct iovec){b->buf + (size_t)i * SOCKIT__DGRAM_ROOM, d->max_size};
            b->msgs[i].msg_hdr = (struct msghdr){
                .msg_name = &b->from[i].u,
                .msg_namelen = sizeof b->from[i].u,
                .msg_iov = &b->iov[i],
                .msg_iovlen = 1,
            };
        }
        int n = recvmmsg(d->h.fd, b->msgs, SOCKIT__DGRAM_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                break;
            if (err == EINTR)
                continue;
            /* An ICMP error the kernel queued on the socket (a connected endpoint's
             * peer refused): reported, consumed, and receiving goes on. */
            report(d, -err, "recv", NULL);
            if (d->closing || (err != ECONNREFUSED && err != EHOSTUNREACH && err != ENETUNREACH &&
                               err != EMSGSIZE))
                break;
            continue;
        }
        d->delivering = true;
        bool more = deliver(d, b, n);
        d->delivering = false;
        schedule_kept(d); /* paused and resumed inside the batch */
        /* The replies made during the batch go out together, before the next
         * batch reuses the buffers they point into. */
        if (b->nout > 0)
            sockit__datagram_flush_batch(d, !d->closing);
        if (d->h.fd >= 0 && d->q_head != NULL)
            sockit__datagram_flush(d, !d->closing);
        /* A short batch does not mean the socket is empty: while its replies went
         * out, more may have come, and one more recvmmsg is cheaper than going
         * back through the loop's wait to find them. */
        if (!more)
            break;
    }
}

void sockit__datagram_handle_ready(sockit__handle *h, int events)
{
    sockit_datagram *d = (sockit_datagram *)h;
    enter(d);
    if ((events & SOCKIT_EVENT_WRITE) && d->q_head != NULL)
        sockit__datagram_flush(d, true);
    if ((events & SOCKIT_EVENT_READ) && !d->paused && !d->closing)
        receive(d);
    if (d->h.fd >= 0)
        sockit__datagram_update_io(d);
    leave(d);
}

sockit_datagram *sockit__datagram_make(sockit_loop *loop, int fd, bool owned,
                                       const sockit_datagram_callbacks *cb, void *user)
{
    sockit_datagram *d = sockit__calloc(1, sizeof *d);
    if (d == NULL) {
        sockit__failf(-ENOMEM, "datagram_new");
        return NULL;
    }
    d->loop = loop;
    d->cb = cb;
    d->user = user;
    d->owned = owned;
    d->max_size = SOCKIT__DGRAM_ROOM;
    d->limit = SOCKIT__DGRAM_LIMIT;
    sockit_addr a;
    a.len = sizeof a.u;
    d->family = getsockname(fd, &a.u.sa, &a.len) == 0 ? a.u.sa.sa_family : AF_UNSPEC;
    a.len = sizeof a.u;
    d->connected = getpeername(fd, &a.u.sa, &a.len) == 0;
    sockit__handle_init(loop, &d->h, fd, SOCKIT__HANDLE_DATAGRAM);
    int rc = sockit__handle_watch(loop, &d->h, SOCKIT_EVENT_READ);
    if (rc < 0) {
        sockit__handle_close(loop, &d->h);
        sockit__free(d);
        return NULL;
    }
    return d;
}

sockit_datagram *sockit_datagram_new(sockit_loop *loop, sockit *s,
                                     const sockit_datagram_callbacks *cb, void *user)
{
    if (loop == NULL || s == NULL) {
        sockit__failf(-EINVAL, "datagram_new: %s", loop == NULL ? "no loop" : "no socket");
        return NULL;
    }
    if (s->type != SOCK_DGRAM) {
        sockit__failf(-EINVAL, "datagram_new (fd %d): not a datagram socket", s->fd);
        return NULL;
    }
    if (cb != NULL && sockit__table_check(cb, SOCKIT__BASE_DATAGRAM_CALLBACKS, sizeof *cb,
                                          "datagram_new: callbacks") < 0)
        return NULL;
    bool was_blocking = s->timeout != 0.0;
    if (was_blocking) {
        int rc = sockit__set_nonblock(s->fd, true);
        if (rc < 0) {
            sockit__failf(rc, "datagram_new (fd %d): O_NONBLOCK", s->fd);
            return NULL;
        }
    }
    sockit_datagram *d = sockit__datagram_make(loop, s->fd, true, cb, user);
    if (d == NULL) {
        if (was_blocking)
            sockit__set_nonblock(s->fd, false);
        return NULL;
    }
    /* The endpoint has the descriptor now; the object goes. */
    sockit__free_parts(s);
    sockit__free(s);
    return d;
}

bool sockit__datagram_waits_writable(const sockit_datagram *d, int err)
{
    return err != ENOBUFS && (d->family != AF_UNIX || d->connected);
}

static void retry_fired(sockit_timer *t, void *arg)
{
    (void)t;
    sockit_datagram *d = arg;
    d->retrying = false;
    enter(d);
    if (!d->closing && d->q_head != NULL)
        sockit__datagram_flush(d, true);
    if (d->q_head == NULL)
        d->retry_ns = 0;
    leave(d);
}

/* 1 ms, doubling to 100 ms while the refusals go on. */
void sockit__datagram_back_off(sockit_datagram *d)
{
    if (d->retrying)
        return;
    if (d->retry == NULL && (d->retry = sockit_timer_new(d->loop, retry_fired, d)) == NULL)
        return; /* writability it is, then: the next report tries again */
    d->retry_ns = d->retry_ns == 0 ? 1000000 : d->retry_ns * 2;
    if (d->retry_ns > 100000000)
        d->retry_ns = 100000000;
    if (sockit_timer_start(d->retry, (double)d->retry_ns / 1e9, 0) == 0)
        d->retrying = true;
}

static void run_on_close(sockit_loop *loop, void *arg)
{
    (void)loop;
    sockit_datagram *d = arg;
    d->loop->on_close_pending--;
    if (d->cb != NULL && d->cb->on_close != NULL)
        d->cb->on_close(d, d->user);
    if (d->depth > 0)
        d->free_later = true; /* run from inside a callback: freed as it unwinds */
    else
        sockit__free(d);
}

/* on_close when call_soon had no room: after the kept datagrams' delivery, which
 * call_soon may still hold (it runs before the late calls of its iteration). */
static void close_late(sockit_loop *loop, sockit__late *n)
{
    sockit_datagram *d = (sockit_datagram *)((char *)n - offsetof(sockit_datagram, late));
    if (d->kept_scheduled)
        sockit__late_queue(loop, n);
    else
        run_on_close(loop, d);
}

size_t sockit_datagram_close(sockit_datagram *d)
{
    if (d == NULL || d->closing)
        return 0;
    d->closing = true;
    sockit_timer_close(d->retry);
    d->retry = NULL;
    d->retrying = false;
    if (d->owner_slot != NULL)
        *d->owner_slot = NULL;
    drop_kept(d);
    if (d->delivering && d->loop->dgram_batch->nout > 0)
        sockit__datagram_flush_batch(d, false);
    if (d->q_head != NULL)
        sockit__datagram_flush(d, false);
    size_t dropped = sockit__datagram_drop_queue(d);
    int fd = d->h.fd;
    sockit__handle_close(d->loop, &d->h);
    d->h.fd = -1;
    if (d->owned)
        close(fd);
    d->loop->on_close_pending++;
    if (sockit_loop_call_soon(d->loop, run_on_close, d) < 0) {
        d->late.run = close_late;
        sockit__late_queue(d->loop, &d->late);
    }
    return dropped;
}

void sockit_datagram_pause(sockit_datagram *d)
{
    if (d == NULL || d->paused || d->closing)
        return;
    d->paused = true;
    if (!d->delivering)
        sockit__datagram_update_io(d);
}

void sockit_datagram_resume(sockit_datagram *d)
{
    if (d == NULL || !d->paused || d->closing)
        return;
    d->paused = false;
    schedule_kept(d);
    if (!d->delivering)
        sockit__datagram_update_io(d);
}

int sockit_datagram_set_max_size(sockit_datagram *d, size_t max_size)
{
    if (d == NULL || max_size == 0 || max_size > SOCKIT__DGRAM_ROOM)
        return sockit__failf(-EINVAL, "datagram_set_max_size: %zu (1 to %d)", max_size,
                             SOCKIT__DGRAM_ROOM);
    d->max_size = max_size;
    return 0;
}

void *sockit_datagram_user(const sockit_datagram *d) { return d != NULL ? d->user : NULL; }

void sockit_datagram_set_user(sockit_datagram *d, void *user)
{
    if (d != NULL)
        d->user = user;
}

int sockit_datagram_connect(sockit_datagram *d, const sockit_addr *to)
{
    if (d == NULL || to == NULL)
        return sockit__fail(-EINVAL, "datagram_connect");
    if (to->len == 0)
        return sockit__failf(SOCKIT_EBADADDR, "datagram_connect: an empty address");
    if (connect(d->h.fd, &to->u.sa, to->len) < 0) {
        int code = -errno;
        char text[SOCKIT_ADDRSTRLEN];
        if (sockit_addr_format(to, text, sizeof text) < 0)
            snprintf(text, sizeof text, "(family %d)", to->u.sa.sa_family);
        return sockit__failf(code, "datagram_connect to %s: %s", text, sockit_strerror(code));
    }
    d->connected = true;
    return 0;
}

void sockit_datagram_set_callbacks(sockit_datagram *d, const sockit_datagram_callbacks *cb)
{
    /* A table this library cannot serve whole is refused: the endpoint keeps its
     * own, and the message says why. */
    if (d == NULL || (cb != NULL && sockit__table_check(cb, SOCKIT__BASE_DATAGRAM_CALLBACKS,
                                                        sizeof *cb, "datagram_set_callbacks") < 0))
        return;
    d->cb = cb;
}

int sockit_datagram_fd(const sockit_datagram *d) { return d != NULL ? d->h.fd : -1; }

sockit_loop *sockit_datagram_loop(const sockit_datagram *d) { return d != NULL ? d->loop : NULL; }

int sockit_datagram_address(const sockit_datagram *d, sockit_addr *out)
{
    if (d == NULL || out == NULL || d->h.fd < 0)
        return sockit__failf(-EBADF, "datagram_address: %s",
                             d == NULL || d->h.fd < 0 ? "closed" : "no output");
    out->len = sizeof out->u;
    if (getsockname(d->h.fd, &out->u.sa, &out->len) < 0)
        return sockit__failf(-errno, "datagram_address (fd %d)", d->h.fd);
    return 0;
}
