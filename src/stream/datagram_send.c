/* A datagram endpoint's sends: tried at once when nothing waits, else queued (a
 * copy, bounded by the limit) and flushed with sendmmsg, in order. */
#include "datagram_internal.h"

#include <errno.h>
#include <string.h>

/* The largest UDP payload: 65,535 less the UDP header and, over IPv4, the IP one
 * (IPv6's is outside its payload length). */
#define UDP4_MAX 65507
#define UDP6_MAX 65527

static size_t max_payload(const sockit_datagram *d)
{
    if (d->family == AF_INET)
        return UDP4_MAX;
    if (d->family == AF_INET6)
        return UDP6_MAX;
    return SIZE_MAX;
}

static int enqueue(sockit_datagram *d, const void *buf, size_t len, const sockit_addr *to)
{
    if (d->queued + len > d->limit || (len == 0 && d->queued >= d->limit))
        return sockit__failf(-ENOBUFS,
                             "datagram_send: %zu bytes queued, %zu more would pass the limit "
                             "of %zu",
                             d->queued, len, d->limit);
    sockit__dgram_out *o = sockit__malloc(sizeof *o + len);
    if (o == NULL)
        return sockit__failf(-ENOMEM, "datagram_send: queueing %zu bytes", len);
    o->next = NULL;
    o->len = len;
    o->truncated = false;
    if (to != NULL)
        o->to = *to;
    else
        o->to.len = 0;
    if (len > 0)
        memcpy(o->data, buf, len);
    if (d->q_tail != NULL)
        d->q_tail->next = o;
    else
        d->q_head = o;
    d->q_tail = o;
    d->queued += len;
    return 0;
}

/* Queues a copy and makes sure writability is watched (outside a batch). */
static int enqueue_and_watch(sockit_datagram *d, const void *buf, size_t len, const sockit_addr *to)
{
    bool was_empty = d->q_head == NULL;
    int rc = enqueue(d, buf, len, to);
    if (rc == 0 && was_empty && !d->delivering)
        sockit__datagram_update_io(d);
    return rc;
}

static void pop(sockit_datagram *d)
{
    sockit__dgram_out *o = d->q_head;
    d->q_head = o->next;
    if (d->q_head == NULL)
        d->q_tail = NULL;
    d->queued -= o->len;
    sockit__free(o);
}

size_t sockit__datagram_drop_queue(sockit_datagram *d)
{
    size_t n = 0;
    for (; d->q_head != NULL; n++)
        pop(d);
    return n;
}

static bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

static void report_refused(sockit_datagram *d, const sockit_addr *to, int code, bool report)
{
    if (!report || d->closing || d->cb == NULL || d->cb->on_error == NULL)
        return;
    char name[SOCKIT_ADDRSTRLEN];
    sockit__datagram_name(d, to, name, sizeof name);
    sockit__failf(code, "send (%s)", name);
    d->cb->on_error(d, code, d->user);
}

/* One sendmmsg of msgs[0, n), retried on EINTR. Returns how many the kernel took
 * (> 0); 0 when it takes none for now (a back-off is armed where writability
 * cannot tell when to try again); or the code that refused the first one, which
 * the caller drops and reports. */
static int send_batch(sockit_datagram *d, struct mmsghdr *msgs, unsigned n)
{
    for (;;) {
        int sent = sendmmsg(d->h.fd, msgs, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent > 0)
            return sent;
        int err = sent < 0 ? errno : EIO;
        if (err == EINTR)
            continue;
        if (sent < 0 && would_block(err)) {
            if (!sockit__datagram_waits_writable(d, err))
                sockit__datagram_back_off(d);
            return 0;
        }
        return -err;
    }
}

void sockit__datagram_flush(sockit_datagram *d, bool report)
{
    struct mmsghdr msgs[SOCKIT__DGRAM_SEND_BATCH];
    struct iovec iov[SOCKIT__DGRAM_SEND_BATCH];
    /* Each round either sends at least one datagram or drops the one the kernel
     * refused, so this ends. */
    while (d->q_head != NULL && d->h.fd >= 0) {
        unsigned n = 0;
        for (sockit__dgram_out *o = d->q_head; o != NULL && n < SOCKIT__DGRAM_SEND_BATCH;
             o = o->next, n++) {
            iov[n] = (struct iovec){o->data, o->len};
            msgs[n].msg_hdr = (struct msghdr){
                .msg_name = o->to.len > 0 ? &o->to.u : NULL,
                .msg_namelen = o->to.len,
                .msg_iov = &iov[n],
                .msg_iovlen = 1,
            };
        }
        int sent = send_batch(d, msgs, n);
        if (sent > 0) {
            for (int i = 0; i < sent; i++)
                pop(d);
            continue;
        }
        if (sent == 0)
            break;
        /* The first datagram was refused (-EMSGSIZE, an ICMP error, no route): it is
         * dropped and the rest go on. */
        sockit_addr to = d->q_head->to;
        pop(d);
        report_refused(d, to.len > 0 ? &to : NULL, sent, report);
    }
    if (!d->delivering)
        sockit__datagram_update_io(d);
}

void sockit__datagram_flush_batch(sockit_datagram *d, bool report)
{
    sockit__dgram_batch *b = d->loop->dgram_batch;
    /* The batch is settled (sent, or copied to the queue, and emptied) before any
     * refusal is told: on_error may send again, or close the endpoint. */
    int codes[SOCKIT__DGRAM_SEND_BATCH];
    sockit_addr *refused[SOCKIT__DGRAM_SEND_BATCH];
    sockit_addr kept_to[SOCKIT__DGRAM_SEND_BATCH];
    unsigned nrefused = 0;
    d->flushing = true;
    /* The held replies leave the count here; what goes to the queue comes back in
     * through enqueue, which they fit, since they were counted when made. */
    for (unsigned i = 0; i < b->nout; i++)
        d->queued -= b->out_iov[i].iov_len;
    unsigned done = 0;
    while (done < b->nout && d->h.fd >= 0) {
        int sent = send_batch(d, b->out_msgs + done, b->nout - done);
        if (sent > 0) {
            done += (unsigned)sent;
            continue;
        }
        if (sent == 0)
            break;
        /* The first one was refused: dropped, and the rest go on. */
        codes[nrefused] = sent;
        refused[nrefused] = NULL;
        if (b->out_msgs[done].msg_hdr.msg_name != NULL) {
            kept_to[nrefused] = b->out_to[done];
            refused[nrefused] = &kept_to[nrefused];
        }
        nrefused++;
        done++;
    }
    /* What the kernel did not take now is copied to the queue, in order. */
    for (unsigned i = done; i < b->nout && d->h.fd >= 0; i++) {
        struct msghdr *m = &b->out_msgs[i].msg_hdr;
        int rc = enqueue(d, m->msg_iov->iov_base, m->msg_iov->iov_len,
                         m->msg_name != NULL ? &b->out_to[i] : NULL);
        if (rc < 0 && nrefused < SOCKIT__DGRAM_SEND_BATCH) {
            /* No memory for the copy: this one is lost, and said so. */
            codes[nrefused] = rc;
            refused[nrefused] = NULL;
            if (m->msg_name != NULL) {
                kept_to[nrefused] = b->out_to[i];
                refused[nrefused] = &kept_to[nrefused];
            }
            nrefused++;
        }
    }
    b->nout = 0;
    b->arena_used = 0;
    d->flushing = false;
    if (d->q_head != NULL && !d->delivering)
        sockit__datagram_update_io(d);
    for (unsigned i = 0; i < nrefused && !d->closing; i++)
        report_refused(d, refused[i], codes[i], report);
}

/* A send made while d's batch is delivered: held in the batch (see its struct). */
static int batch_add(sockit_datagram *d, sockit__dgram_batch *b, const void *buf, size_t len,
                     const sockit_addr *to)
{
    if (d->queued + len > d->limit || (len == 0 && d->queued >= d->limit)) {
        char name[SOCKIT_ADDRSTRLEN];
        sockit__datagram_name(d, to, name, sizeof name);
        return sockit__failf(-ENOBUFS,
                             "datagram_send (%s): %zu bytes waiting, %zu more would pass the "
                             "limit of %zu",
                             name, d->queued, len, d->limit);
    }
    const char *p = buf;
    bool in_batch =
        p >= b->buf && p + len <= b->buf + (size_t)SOCKIT__DGRAM_BATCH * SOCKIT__DGRAM_ROOM;
    bool fits = in_batch || b->arena_used + len <= sizeof b->arena;
    if (b->nout == SOCKIT__DGRAM_SEND_BATCH || !fits)
        sockit__datagram_flush_batch(d, true);
    if (d->closing)
        return sockit__failf(-EPIPE, "datagram_send: the endpoint was closed");
    /* Behind the queue when the kernel is full; a copy bigger than the arena (a
     * Unix datagram) goes to the queue too, the batch being empty now. */
    if (d->q_head != NULL || (!in_batch && len > sizeof b->arena))
        return enqueue_and_watch(d, buf, len, to);
    if (!in_batch && len > 0) {
        memcpy(b->arena + b->arena_used, buf, len);
        p = b->arena + b->arena_used;
        b->arena_used += len;
    }
    unsigned i = b->nout++;
    d->queued += len;
    b->out_iov[i] = (struct iovec){(void *)p, len};
    if (to != NULL) {
        b->out_to[i].len = to->len;
        memcpy(&b->out_to[i].u, &to->u, to->len);
    }
    b->out_msgs[i].msg_hdr = (struct msghdr){
        .msg_name = to != NULL ? &b->out_to[i].u : NULL,
        .msg_namelen = to != NULL ? to->len : 0,
        .msg_iov = &b->out_iov[i],
        .msg_iovlen = 1,
    };
    return 0;
}

int sockit_datagram_send(sockit_datagram *d, const void *buf, size_t len, const sockit_addr *to)
{
    if (d == NULL || d->closing)
        return sockit__failf(-EPIPE, "datagram_send: the endpoint is closed");
    /* Messages name where the datagram was going (or the endpoint's peer). */
    char name[SOCKIT_ADDRSTRLEN];
    const sockit_addr *named = to != NULL && to->len > 0 ? to : NULL;
    if (buf == NULL && len > 0) {
        sockit__datagram_name(d, named, name, sizeof name);
        return sockit__failf(-EINVAL, "datagram_send (%s): NULL buffer with length %zu", name, len);
    }
    if (to != NULL && to->len == 0)
        return sockit__failf(SOCKIT_EBADADDR, "datagram_send (fd %d): empty address", d->h.fd);
    if (to == NULL && !d->connected)
        return sockit__failf(-EDESTADDRREQ,
                             "datagram_send (fd %d): no address, and the endpoint is not "
                             "connected",
                             d->h.fd);
    if (len > max_payload(d) || len > d->limit) {
        sockit__datagram_name(d, named, name, sizeof name);
        return sockit__failf(-EMSGSIZE, "datagram_send (%s): %zu bytes, more than %s allows", name,
                             len, len > max_payload(d) ? "UDP" : "the queue's limit");
    }
    /* Order is kept: nothing overtakes what is queued, and a batch's replies wait
     * for its end to go out together. */
    if (d->delivering && d->q_head == NULL && !d->flushing)
        return batch_add(d, d->loop->dgram_batch, buf, len, to);
    /* A send from on_error while a batch is being settled goes behind it too. */
    if (d->q_head != NULL || d->delivering || d->flushing)
        return enqueue_and_watch(d, buf, len, to);
    for (;;) {
        ssize_t n = sendto(d->h.fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                           to != NULL ? &to->u.sa : NULL, to != NULL ? to->len : 0);
        if (n >= 0)
            return 0;
        int err = errno;
        if (err == EINTR)
            continue;
        if (would_block(err)) {
            int rc = enqueue(d, buf, len, to);
            if (rc == 0 && !sockit__datagram_waits_writable(d, err))
                sockit__datagram_back_off(d);
            if (rc == 0)
                sockit__datagram_update_io(d);
            return rc;
        }
        sockit__datagram_name(d, to, name, sizeof name);
        return sockit__failf(-err, "datagram_send (%s)", name);
    }
}

size_t sockit_datagram_queued(const sockit_datagram *d) { return d != NULL ? d->queued : 0; }

int sockit_datagram_set_limit(sockit_datagram *d, size_t limit)
{
    if (d == NULL || limit == 0)
        return sockit__failf(-EINVAL, "datagram_set_limit: %zu (must be > 0)", limit);
    d->limit = limit;
    return 0;
}
