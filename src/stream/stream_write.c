/* Writing: try the kernel at once when nothing is queued; queue the rest (copied, or
 * the caller's buffer for zero copy); flush the queue with one writev of many chunks
 * when the descriptor is writable. Watermarks and the hard limit count the user's
 * bytes. Errors are never reported from inside a write call: a failed attempt
 * leaves the bytes queued and the writable watcher meets the error, from the loop. */
#include "stream_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* A copied chunk has room for at least this much, so small writes coalesce. */
#define CHUNK_MIN 4096
/* Chunks handed to one writev. */
#define FLUSH_IOV 64

static ssize_t write_some(sockit_stream *st, const void *buf, size_t len)
{
    return st->is_socket ? sockit__sys_send(st->h.fd, buf, len, MSG_NOSIGNAL)
                         : write(st->h.fd, buf, len);
}

static bool is_transient(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

static int check_write(sockit_stream *st, const void *buf, size_t len, const char *op)
{
    if (st == NULL || (buf == NULL && len > 0))
        return sockit__failf(-EINVAL, "%s: %s", op, st == NULL ? "no stream" : "no buffer");
    if (st->closing || st->shut_asked)
        return sockit__failf(-EPIPE, "%s (fd %d): the stream is %s", op, st->h.fd,
                             st->closing ? "closed" : "shut down for writing");
    size_t queued = sockit__stream_queued(st);
    size_t limit = st->ext != NULL ? st->ext->limit : SOCKIT__STREAM_LIMIT;
    if (queued > limit || len > limit - queued) {
        char name[SOCKIT_ADDRSTRLEN + 8];
        sockit__stream_name(st, name, sizeof name);
        return sockit__failf(-ENOBUFS,
                             "%s (peer %s): %zu more bytes would take the queue (%zu) past "
                             "its limit of %zu",
                             op, name, len, queued, limit);
    }
    return 0;
}

/* One attempt when nothing is queued. Returns the bytes the kernel took (0 when it
 * took none or failed: a failure is met again by the flush, from the loop). */
static size_t try_now(sockit_stream *st, const void *buf, size_t len)
{
    /* On a completion backend every write is queued and goes with the next wait:
     * what one iteration writes leaves in one send, and no system call of its own. */
    if ((st->ext != NULL && st->ext->wq_head != NULL) || len == 0 || st->h.ring)
        return 0;
    ssize_t n = write_some(st, buf, len);
    if (n <= 0)
        return 0;
    sockit__stream_touch(st);
    return (size_t)n;
}

static void enqueue(sockit__stream_ext *x, sockit__wchunk *c)
{
    c->next = NULL;
    if (x->wq_tail != NULL)
        x->wq_tail->next = c;
    else
        x->wq_head = c;
    x->wq_tail = c;
}

static void settle(sockit_stream *st);

static void queued_more(sockit_stream *st, size_t n)
{
    sockit__stream_ext *x = st->ext;
    x->queued += n;
    if (x->queued > x->high)
        st->over_high = true;
    sockit__stream_update_io(st);
}

/* Whatever a write may need to queue is had before anything is sent, so a write
 * that fails for memory has sent nothing. The common case (the kernel takes it all)
 * must not allocate, so a small write's ext and chunk come from the loop's spares,
 * made once and given back unused. */
static sockit__wchunk *chunk_new(size_t cap)
{
    sockit__wchunk *c = sockit__malloc(sizeof *c + cap);
    if (c != NULL)
        *c = (sockit__wchunk){.data = (const char *)(c + 1), .cap = cap};
    return c;
}

#define CACHE_MAX 256

void sockit__stream_ext_release(sockit_loop *loop, sockit__stream_ext *x)
{
    if (loop->exts_cached >= CACHE_MAX) {
        sockit__free(x);
        return;
    }
    memset(x, 0, sizeof *x);
    x->wq_head = (sockit__wchunk *)(void *)loop->ext_cache; /* the cache's link */
    loop->ext_cache = x;
    loop->exts_cached++;
}

static void chunk_release(sockit_loop *loop, sockit__wchunk *c)
{
    if (c->cap != CHUNK_MIN || loop->chunks_cached >= CACHE_MAX) {
        sockit__free(c);
        return;
    }
    c->next = loop->chunk_cache;
    loop->chunk_cache = c;
    loop->chunks_cached++;
}

void sockit__stream_caches_free(sockit_loop *loop)
{
    while (loop->ext_cache != NULL) {
        sockit__stream_ext *x = loop->ext_cache;
        loop->ext_cache = (sockit__stream_ext *)(void *)x->wq_head;
        sockit__free(x);
    }
    while (loop->chunk_cache != NULL) {
        sockit__wchunk *c = loop->chunk_cache;
        loop->chunk_cache = c->next;
        sockit__free(c);
    }
    loop->exts_cached = loop->chunks_cached = 0;
}

static int have_spares(sockit_stream *st, size_t len)
{
    sockit_loop *loop = st->loop;
    if (st->ext == NULL && loop->spare_ext == NULL) {
        if (loop->ext_cache != NULL) {
            loop->spare_ext = loop->ext_cache;
            loop->ext_cache = (sockit__stream_ext *)(void *)loop->spare_ext->wq_head;
            loop->spare_ext->wq_head = NULL;
            loop->exts_cached--;
        } else if ((loop->spare_ext = sockit__calloc(1, sizeof(sockit__stream_ext))) == NULL) {
            return sockit__fail(-ENOMEM, "stream_write");
        }
    }
    if (len <= CHUNK_MIN && loop->spare_chunk == NULL) {
        if (loop->chunk_cache != NULL) {
            sockit__wchunk *c = loop->chunk_cache;
            loop->chunk_cache = c->next;
            loop->chunks_cached--;
            *c = (sockit__wchunk){.data = (const char *)(c + 1), .cap = CHUNK_MIN};
            loop->spare_chunk = c;
        } else if ((loop->spare_chunk = chunk_new(CHUNK_MIN)) == NULL) {
            return sockit__fail(-ENOMEM, "stream_write");
        }
    }
    return 0;
}

int sockit__stream_send_bytes(sockit_stream *st, const void *buf, size_t len, bool user)
{
    sockit__wchunk *tail = st->ext != NULL ? st->ext->wq_tail : NULL;
    bool fits_tail = tail != NULL && !tail->ref && tail->cap - tail->len >= len;
    sockit__wchunk *big = NULL;
    if (!fits_tail) {
        if (have_spares(st, len) < 0)
            return -ENOMEM;
        if (len > CHUNK_MIN && (big = chunk_new(len)) == NULL)
            return sockit__failf(-ENOMEM, "stream_write: queueing %zu bytes", len);
    }
    size_t sent = try_now(st, buf, len);
    if (sent == len) {
        sockit__free(big);
        return 0;
    }
    const char *rest = (const char *)buf + sent;
    size_t left = len - sent;
    if (st->filtered)
        st->ext->wire += left;
    if (fits_tail) {
        memcpy((char *)(tail + 1) + tail->len, rest, left);
        tail->len += left;
        queued_more(st, user ? left : 0);
        return 0;
    }
    sockit__stream_ext *x = sockit__stream_ext_get(st); /* the spare: cannot fail */
    sockit__wchunk *c = big;
    if (c == NULL) {
        c = st->loop->spare_chunk;
        st->loop->spare_chunk = NULL;
    }
    c->len = left;
    memcpy(c + 1, rest, left);
    enqueue(x, c);
    queued_more(st, user ? left : 0);
    return 0;
}

/* Through the filter: its wire bytes are queued by sockit__filter_send_wire, and
 * the write's user bytes are counted on the last chunk they made, released when
 * that chunk has gone to the kernel. */
static int filtered_write(sockit_stream *st, const void *buf, size_t len)
{
    int rc = sockit__filter_user(st, buf, len);
    sockit__stream_ext *x = st->ext;
    /* Bytes the filter kept (sockit__filter_hold) are counted already. */
    bool held = x != NULL && x->filter_held;
    if (x != NULL)
        x->filter_held = false;
    if (rc == 0 && !held && x != NULL && x->wq_tail != NULL && len > 0) {
        x->wq_tail->user += len;
        queued_more(st, len);
    }
    return rc;
}

int sockit_stream_write(sockit_stream *st, const void *buf, size_t len)
{
    int rc = check_write(st, buf, len, "stream_write");
    if (rc < 0)
        return rc;
    if (st->filtered)
        return filtered_write(st, buf, len);
    return sockit__stream_send_bytes(st, buf, len, true);
}

void sockit__stream_done_later(sockit_stream *st)
{
    st->done_scheduled = false;
    sockit__stream_run_done(st);
    if (!st->ended)
        sockit__stream_ext_trim(st);
    sockit__stream_unref(st);
}

/* A caller's chunk is finished: its done call goes on the list, run from the loop. */
static void finish_ref(sockit_stream *st, sockit__wchunk *c, int status)
{
    if (c->done == NULL) {
        sockit__free(c);
        return;
    }
    sockit__stream_ext *x = st->ext; /* a queued chunk's stream has one */
    c->status = status;
    c->next = NULL;
    if (x->done_tail != NULL)
        x->done_tail->next = c;
    else
        x->done_head = c;
    x->done_tail = c;
    if (!st->done_scheduled && !st->ended) {
        sockit__stream_defer(st, SOCKIT__DEFER_DONE);
        st->done_scheduled = true;
    }
}

int sockit_stream_write_ref(sockit_stream *st, const void *buf, size_t len,
                            sockit_write_done_fn done, void *arg)
{
    int rc = check_write(st, buf, len, "stream_write_ref");
    if (rc < 0)
        return rc;
    sockit__stream_ext *x = sockit__stream_ext_get(st);
    sockit__wchunk *c = x != NULL ? sockit__malloc(sizeof *c) : NULL;
    if (c == NULL) {
        sockit__stream_ext_trim(st);
        return sockit__fail(-ENOMEM, "stream_write_ref");
    }
    if (st->filtered) {
        /* The filter reads the caller's bytes now; done comes when what it made of
         * them has gone, marked by an empty chunk behind them. */
        *c = (sockit__wchunk){.data = buf, .done = done, .arg = arg, .ref = true};
        rc = filtered_write(st, buf, len);
        if (rc < 0) {
            sockit__free(c);
            return rc;
        }
        if (x->wq_head == NULL)
            finish_ref(st, c, 0);
        else
            enqueue(x, c);
        return 0;
    }
    *c = (sockit__wchunk){.data = buf, .len = len, .done = done, .arg = arg, .ref = true};
    c->sent = try_now(st, buf, len);
    if (c->sent == len) {
        finish_ref(st, c, 0);
        if (done == NULL)
            sockit__stream_ext_trim(st);
        return 0;
    }
    enqueue(x, c);
    queued_more(st, len - c->sent);
    return 0;
}

void sockit__stream_run_done(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    while (x != NULL && x->done_head != NULL) {
        sockit__wchunk *c = x->done_head;
        x->done_head = c->next;
        if (x->done_head == NULL)
            x->done_tail = NULL;
        c->done(st, c->status, c->arg);
        sockit__free(c);
    }
}

static void finish_chunk(sockit_stream *st, sockit__wchunk *c, int status)
{
    if (st->filtered && status == 0)
        st->ext->queued -= c->user;
    if (c->ref)
        finish_ref(st, c, status);
    else
        chunk_release(st->loop, c);
}

void sockit__stream_drop_queue(sockit_stream *st, int status)
{
    sockit__stream_ext *x = st->ext;
    if (x == NULL)
        return;
    /* A chunk a send has in flight stays the kernel's until the send completes: it
     * is finished then, with this status. */
    sockit__wchunk *keep = st->send_on ? x->wq_head : NULL;
    if (keep != NULL) {
        keep->status = status;
        x->wq_head = keep->next;
    }
    while (x->wq_head != NULL) {
        sockit__wchunk *c = x->wq_head;
        x->wq_head = c->next;
        finish_chunk(st, c, status);
    }
    if (keep != NULL)
        keep->next = NULL;
    x->wq_head = x->wq_tail = keep;
    x->queued = 0;
    x->wire = 0;
}

void sockit__filter_hold(sockit_stream *st, size_t n)
{
    st->ext->filter_held = true;
    queued_more(st, n);
}

void sockit__filter_held_out(sockit_stream *st, size_t n)
{
    sockit__stream_ext *x = st->ext;
    if (x->wq_tail != NULL) {
        x->wq_tail->user += n; /* counted until that chunk has gone to the kernel */
        return;
    }
    x->queued -= n <= x->queued ? n : x->queued;
    settle(st);
}

/* Everything queued is with the kernel: a pending half-close or close happens. */
static void drained(sockit_stream *st)
{
    if (st->closing) {
        sockit__stream_end(st, 0, false);
        return;
    }
    if (st->shut_asked && !st->shut_done) {
        st->shut_done = true;
        if (shutdown(st->h.fd, SHUT_WR) < 0 && errno != ENOTCONN)
            sockit__stream_fail(st, -errno, "shutdown");
    }
}

/* Finishes the chunks at the head that have nothing left to send (a filtered
 * write_ref's empty marker). */
static void pop_sent(sockit_stream *st, sockit__stream_ext *x)
{
    while (x->wq_head != NULL && x->wq_head->sent == x->wq_head->len) {
        sockit__wchunk *c = x->wq_head;
        x->wq_head = c->next;
        if (x->wq_head == NULL)
            x->wq_tail = NULL;
        finish_chunk(st, c, 0);
    }
}

/* w bytes of the queue went to the kernel. */
static void sent(sockit_stream *st, sockit__stream_ext *x, size_t w)
{
    sockit__stream_touch(st);
    if (!st->filtered)
        x->queued -= w; /* filtered: per chunk, in finish_chunk */
    else
        x->wire -= w;
    size_t left = w;
    while (left > 0) {
        sockit__wchunk *c = x->wq_head;
        size_t in_chunk = c->len - c->sent;
        if (left < in_chunk) {
            c->sent += left;
            break;
        }
        left -= in_chunk;
        x->wq_head = c->next;
        if (x->wq_head == NULL)
            x->wq_tail = NULL;
        finish_chunk(st, c, 0);
    }
    pop_sent(st, x);
}

static void settle(sockit_stream *st);

void sockit__stream_flush(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    if (x != NULL)
        pop_sent(st, x);
    if (st->h.ring) {
        /* The queue goes with the next wait, one send at a time. */
        if (x != NULL && x->wq_head != NULL) {
            sockit__stream_update_io(st);
            return;
        }
        settle(st);
        return;
    }
    while (x != NULL && x->wq_head != NULL) {
        struct iovec iov[FLUSH_IOV];
        int n = 0;
        size_t want = 0;
        for (sockit__wchunk *c = x->wq_head; c != NULL && n < FLUSH_IOV; c = c->next, n++) {
            iov[n] = (struct iovec){.iov_base = (void *)(c->data + c->sent),
                                    .iov_len = c->len - c->sent};
            want += iov[n].iov_len;
        }
        ssize_t w;
        if (st->is_socket) {
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            w = sockit__sys_sendmsg(st->h.fd, &msg, MSG_NOSIGNAL);
        } else {
            w = writev(st->h.fd, iov, n);
        }
        if (w < 0) {
            if (!is_transient(errno))
                sockit__stream_fail(st, -errno, st->is_socket ? "send" : "write");
            else
                sockit__stream_update_io(st);
            return;
        }
        sent(st, x, (size_t)w);
        if ((size_t)w < want)
            break; /* the kernel is full */
    }
    settle(st);
}

/* After bytes went: a drained queue ends a close or a shutdown, one at the low
 * watermark calls on_drain, and the ext goes if it holds nothing. */
static void settle(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    if (x == NULL || x->wq_head == NULL) {
        drained(st);
        if (st->ended)
            return;
    }
    x = st->ext;
    if (st->over_high && (x == NULL || x->queued <= x->low)) {
        st->over_high = false;
        if (!st->closing && st->cb != NULL && st->cb->on_drain != NULL)
            st->cb->on_drain(st, st->user);
        if (st->ended)
            return;
    }
    sockit__stream_ext_trim(st);
    sockit__stream_update_io(st);
}

/* Completion backends: the head chunk's unsent bytes, one send per stream. */
static void submit_send(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    if (x == NULL)
        return;
    pop_sent(st, x);
    if (x->wq_head == NULL) {
        settle(st);
        return;
    }
    /* What the queue holds, up to SOCKIT__SEND_IOV chunks, in one send. Injected
     * faults see it as a sendmsg would be seen: an error, or fewer bytes. */
    size_t want = 0;
    int n = 0;
    for (sockit__wchunk *c = x->wq_head; c != NULL && n < SOCKIT__SEND_IOV; c = c->next) {
        if (c->len == c->sent)
            continue;
        x->send_iov[n++] =
            (struct iovec){.iov_base = (void *)(c->data + c->sent), .iov_len = c->len - c->sent};
        want += c->len - c->sent;
    }
    size_t allowed = want;
    int rc = sockit__sys_ring_fault(SOCKIT__SYS_SENDMSG, &allowed);
    if (rc == 0 && allowed < want) {
        /* A short send: the iovec ends where the injected length does. */
        size_t left = allowed;
        int k = 0;
        while (k < n && left >= x->send_iov[k].iov_len)
            left -= x->send_iov[k++].iov_len;
        if (k < n && left > 0)
            x->send_iov[k++].iov_len = left;
        n = k > 0 ? k : 1;
        if (allowed == 0)
            x->send_iov[0].iov_len = 1;
    }
    x->send_msg = (struct msghdr){.msg_iov = x->send_iov, .msg_iovlen = (size_t)n};
    sockit__backend *b = &st->loop->backend;
    if (rc == 0)
        rc = b->ops->send(b, st->h.fd, &x->send_msg, sockit__tag(st, SOCKIT__TAG_STREAM_SEND));
    if (rc == -EAGAIN || rc == -EINTR || rc == -EBUSY) {
        /* Not taken now (an injected fault, a full submission queue): the next
         * wait tries again, and does not sleep first. */
        sockit__stream_update_io(st);
        return;
    }
    if (rc < 0) {
        sockit__stream_fail(st, rc, "send");
        return;
    }
    st->send_on = true;
    st->refs++;
    st->loop->ops_pending++;
}

void sockit__stream_submit_sends(sockit_loop *loop)
{
    /* Taken whole: failing a stream here runs its on_error, which may write to
     * another and list it again (for the next wait). */
    size_t n = loop->nsend, cap = loop->send_cap;
    sockit_stream **list = loop->send_list;
    loop->send_list = NULL;
    loop->nsend = loop->send_cap = 0;
    for (size_t i = 0; i < n; i++) {
        sockit_stream *st = list[i];
        st->send_listed = false;
        if (!st->ended && !st->send_on)
            submit_send(st);
        sockit__stream_unref(st);
    }
    if (loop->send_list == NULL) {
        /* Nothing was listed meanwhile: the array serves the next wait. */
        loop->send_list = list;
        loop->send_cap = cap;
    } else {
        sockit__free(list);
    }
}

void sockit__stream_send_done(sockit_stream *st, int res)
{
    st->send_on = false;
    sockit__stream_ext *x = st->ext;
    if (st->ended) {
        /* The chunk the kernel had is finished now, with the end's status. */
        sockit__wchunk *c = x != NULL ? x->wq_head : NULL;
        if (c != NULL) {
            x->wq_head = x->wq_tail = NULL;
            finish_chunk(st, c, c->status);
        }
        if (st->close_waits && !st->recv_on)
            sockit__stream_schedule_close(st);
    } else if (res >= 0) {
        sent(st, x, (size_t)res);
        settle(st);
    } else if (res == -ECANCELED || res == -EINTR || res == -EAGAIN) {
        /* Not asked for (the stream has not ended): the kernel's; sent again. */
        sockit__stream_update_io(st);
    } else {
        sockit__stream_fail(st, res, "send");
    }
    sockit__stream_unref(st);
}

size_t sockit_stream_queued(const sockit_stream *st)
{
    return st != NULL ? sockit__stream_queued(st) : 0;
}

bool sockit_stream_write_blocked(const sockit_stream *st) { return st != NULL && st->over_high; }

int sockit_stream_set_watermarks(sockit_stream *st, size_t low, size_t high, size_t limit)
{
    if (st == NULL || low > high || high > limit || limit == 0)
        return sockit__failf(-EINVAL,
                             "stream_set_watermarks: need low <= high <= limit and limit > 0 "
                             "(low %zu, high %zu, limit %zu)",
                             low, high, limit);
    sockit__stream_ext *x = sockit__stream_ext_get(st);
    if (x == NULL)
        return -ENOMEM;
    x->low = low;
    x->high = high;
    x->limit = limit;
    x->custom_marks = true;
    return 0;
}
