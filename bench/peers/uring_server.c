/* The raw io_uring bench peer: one thread, one ring, completions instead of
 * readiness. It is what a competent hand-written io_uring server does, the ceiling
 * sockit's io_uring backend is compared with, as epoll_server is for epoll.
 *
 * Usage: uring_server [--mode echo|oneshot|sink] [--port PORT]
 * The peer convention of bench/README.md. One multishot accept serves the listener.
 * echo and sink keep one multishot receive per connection, reading into a ring of
 * provided buffers the connections share, so an idle connection holds no buffer.
 * echo sends a received buffer straight back when nothing is queued before it, and
 * otherwise copies it behind what is queued and gives the buffer back at once; one
 * send at a time per socket keeps the bytes in order. A connection whose queue passes
 * QUEUE_HIGH has its receive cancelled until the queue drains, so a client that does
 * not read cannot make the server grow. oneshot submits receive, reply and close as
 * one linked chain as soon as the connection is accepted. SIGTERM and SIGINT arrive
 * through a signalfd read in the same ring, so no signal is lost between two waits.
 *
 * A connection's state is freed only once no operation in the ring names it: its
 * close is itself a ring operation, submitted when the count of its operations in
 * flight reaches zero, and its completion frees the state. */
#include "peer_common.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "usage: uring_server [--mode echo|oneshot|sink] [--port PORT]"

/* Submission entries. A batch can need more (10,000 connections' sends); sqe_reserve
 * then submits early, so the size only sets how many system calls a batch takes. */
#define SQ_ENTRIES 4096
/* Completion entries: every connection can have a receive and a send complete in one
 * wait; room for all of them at 10,000 connections keeps the kernel off its
 * overflow list, which is slower and ends multishot operations. */
#define CQ_ENTRIES 32768
/* Echo buffers are 16 KiB so a 16 KiB message is one completion and one send.
 * 2048 of them (32 MiB of address space; a 64-byte echo touches one page of each)
 * cover the receives one wait completes even with thousands of busy connections:
 * the kernel fills buffers before the program sees any completion, and a receive
 * that finds none ends with -ENOBUFS and has to be re-armed, a round trip lost. */
#define ECHO_BUF_SIZE  (16 * 1024)
#define ECHO_BUF_COUNT 2048
/* sink only discards, and gives each buffer back as soon as it sees it: fewer,
 * larger buffers mean fewer completions per megabyte on a bulk stream. */
#define SINK_BUF_SIZE  (64 * 1024)
#define SINK_BUF_COUNT 256
#define BUF_GROUP      0
/* Queued echo bytes past which a connection's receive is cancelled (see top). */
#define QUEUE_HIGH (256 * 1024)

/* What a completion is for: the low bits of its user_data; the rest is the
 * connection, or nothing for the listener and the signalfd. */
enum op { OP_ACCEPT, OP_SIGNAL, OP_RECV, OP_SEND, OP_CANCEL, OP_CLOSE };
#define OP_MASK 7u
_Static_assert(_Alignof(max_align_t) > OP_MASK, "malloc'd pointers leave the tag bits free");

struct bytes {
    char *data;
    size_t len, cap;
};

struct conn {
    int fd;
    unsigned inflight; /* ring operations naming this connection, and the re-arm list */
    bool recv_armed;   /* a multishot receive is in the ring */
    bool sending;      /* a send is in the ring: never a second on the same socket */
    bool paused;       /* receive cancelled for a full queue: re-armed once it drains */
    bool eof;          /* the client closed its side: close once the echo is out */
    bool closing;      /* no new operations; close when inflight reaches zero */
    bool close_sent, fd_closed, on_rearm;
    int send_bid;        /* provided buffer the send in flight reads; -1: it reads out */
    const char *send_at; /* what of the send in flight is still to go */
    size_t send_left;    /* (a short send resubmits from there) */
    /* Both keep their capacity for the next use: about QUEUE_HIGH at most, since
     * reading stops there. */
    struct bytes out;         /* the bytes the send in flight reads when not a buffer */
    struct bytes queue;       /* bytes received while a send was in flight, sent next */
    struct conn *prev, *next; /* every connection, to close them at exit */
    struct conn *rearm_next;
    char oneshot_buf[]; /* oneshot mode only: its one receive */
};

struct server {
    struct io_uring ring;
    enum peer_mode mode;
    int listen_fd, signal_fd;
    struct signalfd_siginfo siginfo;
    bool stopping;
    bool accept_armed;
    bool accept_paused; /* out of descriptors: re-armed when a connection closes */
    /* The provided-buffer ring and the buffers it hands out. */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    char *bufs;
    unsigned buf_size, buf_count;
    unsigned free_bufs; /* buffers the kernel may still fill */
    struct conn *conns;
    struct conn *rearm; /* receives that ended for want of a buffer */
};

static uint64_t tag(struct conn *c, enum op op) { return (uint64_t)(uintptr_t)c | op; }

static void fail_rc(const char *what, int rc)
{
    errno = -rc;
    peer_fail(what);
}

/* Makes room for n consecutive submission entries, submitting what is queued if it
 * must: a linked chain must not be split by a submit, which would end it there. */
static void sqe_reserve(struct server *s, unsigned n)
{
    while (io_uring_sq_space_left(&s->ring) < n) {
        int rc = io_uring_submit(&s->ring);
        if (rc == -EBUSY || rc == -EAGAIN) {
            /* The completion queue is full: let the kernel flush its backlog into
             * the room the loop has already made by consuming entries. */
            rc = io_uring_get_events(&s->ring);
        }
        if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
            fail_rc("io_uring_submit", rc);
    }
}

static struct io_uring_sqe *sqe_get(struct server *s, struct conn *c, enum op op)
{
    sqe_reserve(s, 1);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    io_uring_sqe_set_data64(sqe, tag(c, op));
    if (c != NULL)
        c->inflight++;
    return sqe;
}

static char *buf_addr(struct server *s, unsigned bid)
{
    return s->bufs + (size_t)bid * s->buf_size;
}

/* Hands a buffer back to the kernel at once, so a receive waiting for one gets it. */
static void buf_recycle(struct server *s, unsigned bid)
{
    io_uring_buf_ring_add(s->br, buf_addr(s, bid), s->buf_size, bid,
                          io_uring_buf_ring_mask(s->buf_count), 0);
    io_uring_buf_ring_advance(s->br, 1);
    s->free_bufs++;
}

static void bufs_setup(struct server *s)
{
    s->buf_size = s->mode == PEER_SINK ? SINK_BUF_SIZE : ECHO_BUF_SIZE;
    s->buf_count = s->mode == PEER_SINK ? SINK_BUF_COUNT : ECHO_BUF_COUNT;
    /* liburing 2.3 has no io_uring_setup_buf_ring: the ring is our own memory, which
     * the kernel wants page-aligned (mmap is). */
    s->br_bytes = s->buf_count * sizeof(struct io_uring_buf);
    s->br = mmap(NULL, s->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->br == MAP_FAILED)
        peer_fail("mmap (buffer ring)");
    s->bufs = mmap(NULL, (size_t)s->buf_size * s->buf_count, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->bufs == MAP_FAILED)
        peer_fail("mmap (buffers)");
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)s->br, .ring_entries = s->buf_count, .bgid = BUF_GROUP};
    int rc = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (rc < 0)
        fail_rc("io_uring_register_buf_ring (needs Linux 5.19)", rc);
    io_uring_buf_ring_init(s->br);
    for (unsigned i = 0; i < s->buf_count; i++)
        io_uring_buf_ring_add(s->br, buf_addr(s, i), s->buf_size, i,
                              io_uring_buf_ring_mask(s->buf_count), i);
    io_uring_buf_ring_advance(s->br, s->buf_count);
    s->free_bufs = s->buf_count;
}

static void ring_setup(struct server *s)
{
    /* SINGLE_ISSUER and DEFER_TASKRUN (Linux 6.1) run completion work only when this
     * thread waits, in one batch, rather than interrupting it after every syscall. */
    struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
                                         IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                .cq_entries = CQ_ENTRIES};
    int rc = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &p);
    if (rc == -EINVAL) {
        p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_ENTRIES};
        rc = io_uring_queue_init_params(SQ_ENTRIES, &s->ring, &p);
    }
    if (rc < 0)
        fail_rc("io_uring_queue_init_params", rc);
    /* Saves the kernel a file lookup on every wait; only a cost if it fails. */
    io_uring_register_ring_fd(&s->ring);
}

static void arm_accept(struct server *s)
{
    struct io_uring_sqe *sqe = sqe_get(s, NULL, OP_ACCEPT);
    io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    s->accept_armed = true;
}

static void arm_signal_read(struct server *s)
{
    struct io_uring_sqe *sqe = sqe_get(s, NULL, OP_SIGNAL);
    io_uring_prep_read(sqe, s->signal_fd, &s->siginfo, sizeof s->siginfo, 0);
}

static void arm_recv(struct server *s, struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get(s, c, OP_RECV);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    c->recv_armed = true;
}

/* The whole one-shot flow at once: the send starts only after the receive, the close
 * after the send. A failed link cancels the rest, and settle() closes the fd itself. */
static void oneshot_start(struct server *s, struct conn *c)
{
    sqe_reserve(s, 3);
    struct io_uring_sqe *sqe = sqe_get(s, c, OP_RECV);
    io_uring_prep_recv(sqe, c->fd, c->oneshot_buf, PEER_ONESHOT_READ, 0);
    sqe->flags |= IOSQE_IO_LINK;
    sqe = sqe_get(s, c, OP_SEND);
    io_uring_prep_send(sqe, c->fd, PEER_REPLY, sizeof PEER_REPLY - 1, MSG_NOSIGNAL);
    sqe->flags |= IOSQE_IO_LINK;
    sqe = sqe_get(s, c, OP_CLOSE);
    io_uring_prep_close(sqe, c->fd);
    c->closing = c->close_sent = true;
}

static void submit_send(struct server *s, struct conn *c)
{
    struct io_uring_sqe *sqe = sqe_get(s, c, OP_SEND);
    io_uring_prep_send(sqe, c->fd, c->send_at, c->send_left, MSG_NOSIGNAL);
    c->sending = true;
}

static void conn_free(struct server *s, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->out.data);
    free(c->queue.data);
    free(c);
    if (s->accept_paused && !s->stopping) {
        s->accept_paused = false;
        arm_accept(s);
    }
}

/* Moves a closing connection on once nothing in the ring names it: first its close,
 * then, when the close has completed, its state. */
static void settle(struct server *s, struct conn *c)
{
    if (!c->closing || c->inflight > 0)
        return;
    if (!c->close_sent) {
        io_uring_prep_close(sqe_get(s, c, OP_CLOSE), c->fd);
        c->close_sent = true;
        return;
    }
    if (!c->fd_closed)
        close(c->fd); /* the ring's close was cancelled by a failed link */
    conn_free(s, c);
}

static void conn_close(struct server *s, struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->recv_armed || c->sending) {
        struct io_uring_sqe *sqe = sqe_get(s, c, OP_CANCEL);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    }
    settle(s, c);
}

static bool bytes_append(struct bytes *b, const char *data, size_t len)
{
    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < len)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return false;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return true;
}

/* Stops reading a connection whose client does not take its echo fast enough. */
static void pause_recv(struct server *s, struct conn *c)
{
    if (c->paused || c->closing)
        return;
    c->paused = true;
    if (c->recv_armed)
        io_uring_prep_cancel64(sqe_get(s, c, OP_CANCEL), tag(c, OP_RECV), 0);
}

/* Resumes reading a paused connection as soon as only the send in flight is left (so
 * the socket's receive side is not idle while the last of the queue goes out) and its
 * cancelled receive has ended: whichever of the two comes last calls this. */
static void maybe_resume(struct server *s, struct conn *c)
{
    if (c->paused && !c->closing && c->queue.len == 0 && !c->recv_armed) {
        c->paused = false;
        arm_recv(s, c);
    }
}

static void echo_data(struct server *s, struct conn *c, unsigned bid, size_t len)
{
    char *data = buf_addr(s, bid);
    /* Sending from the buffer itself saves a copy, but holds the buffer until the
     * send completes: only while plenty are left, so clients slow to read can never
     * hold so many that the others' receives starve. */
    if (!c->sending && s->free_bufs > s->buf_count / 4) {
        c->send_bid = (int)bid;
        c->send_at = data;
        c->send_left = len;
        submit_send(s, c);
        return;
    }
    bool ok = bytes_append(&c->queue, data, len);
    buf_recycle(s, bid);
    if (!ok) {
        conn_close(s, c);
        return;
    }
    if (!c->sending) {
        struct bytes t = c->out;
        c->out = c->queue;
        c->queue = t;
        c->queue.len = 0;
        c->send_at = c->out.data;
        c->send_left = c->out.len;
        submit_send(s, c);
    } else if (c->queue.len > QUEUE_HIGH) {
        pause_recv(s, c);
    }
}

static void on_recv(struct server *s, struct conn *c, int res, unsigned flags)
{
    if (s->mode == PEER_ONESHOT) {
        c->inflight--;
        settle(s, c);
        return;
    }
    /* Only the last completion of a multishot receive ends it. */
    bool more = flags & IORING_CQE_F_MORE;
    if (!more) {
        c->recv_armed = false;
        c->inflight--;
    }
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        s->free_bufs--;
        if (s->mode == PEER_ECHO && !c->closing)
            echo_data(s, c, bid, (size_t)res);
        else
            buf_recycle(s, bid);
    } else if (res == 0) {
        c->eof = true;
    } else if (res == -ENOBUFS) {
        /* No data was lost: it waits in the socket until a buffer is back and the
         * receive re-armed, after this batch has given its buffers back. */
        if (!c->on_rearm && !c->closing) {
            c->on_rearm = true;
            c->inflight++;
            c->rearm_next = s->rearm;
            s->rearm = c;
        }
    } else if (res < 0 && res != -ECANCELED) {
        conn_close(s, c);
    }
    if (c->eof && !c->sending)
        conn_close(s, c);
    /* A multishot receive also ends when the kernel says so (a full completion queue,
     * for one): it is re-armed unless this connection stopped reading on purpose. */
    if (!more && res > 0 && !c->closing && !c->paused && !c->recv_armed)
        arm_recv(s, c);
    maybe_resume(s, c);
    settle(s, c);
}

static void on_send(struct server *s, struct conn *c, int res)
{
    c->inflight--;
    c->sending = false;
    if (s->mode == PEER_ONESHOT) {
        settle(s, c);
        return;
    }
    if (res > 0 && (size_t)res < c->send_left && !c->closing) {
        c->send_at += res;
        c->send_left -= (size_t)res;
        submit_send(s, c);
        return;
    }
    if (c->send_bid >= 0)
        buf_recycle(s, (unsigned)c->send_bid);
    c->send_bid = -1;
    c->out.len = 0;
    if (res <= 0) {
        conn_close(s, c); /* reset, or cancelled by a close already under way */
    } else if (!c->closing && c->queue.len > 0) {
        struct bytes t = c->out;
        c->out = c->queue;
        c->queue = t;
        c->send_at = c->out.data;
        c->send_left = c->out.len;
        submit_send(s, c);
    } else if (c->eof) {
        conn_close(s, c);
    }
    maybe_resume(s, c);
    settle(s, c);
}

static void on_accept(struct server *s, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        s->accept_armed = false;
    if (res >= 0) {
        size_t extra = s->mode == PEER_ONESHOT ? PEER_ONESHOT_READ : 0;
        struct conn *c = calloc(1, sizeof *c + extra);
        if (c == NULL) {
            close(res);
        } else {
            c->fd = res;
            c->send_bid = -1;
            c->next = s->conns;
            if (c->next)
                c->next->prev = c;
            s->conns = c;
            if (s->mode == PEER_ONESHOT)
                oneshot_start(s, c);
            else
                arm_recv(s, c);
        }
    } else if ((res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) &&
               s->conns != NULL) {
        /* The pending connection would fail the accept again at once: wait for a
         * close to free a descriptor rather than spin. */
        s->accept_paused = true;
    }
    if (!s->accept_armed && !s->accept_paused && !s->stopping)
        arm_accept(s);
}

static void dispatch(struct server *s, uint64_t data, int res, unsigned flags)
{
    struct conn *c = (struct conn *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
    switch ((enum op)(data & OP_MASK)) {
    case OP_ACCEPT:
        on_accept(s, res, flags);
        break;
    case OP_SIGNAL:
        if (res == -EINTR || res == -EAGAIN)
            arm_signal_read(s);
        else
            s->stopping = true;
        break;
    case OP_RECV:
        on_recv(s, c, res, flags);
        break;
    case OP_SEND:
        on_send(s, c, res);
        break;
    case OP_CANCEL:
        c->inflight--;
        settle(s, c);
        break;
    case OP_CLOSE:
        c->inflight--;
        c->fd_closed = res != -ECANCELED;
        settle(s, c);
        break;
    }
}

static void rearm_starved(struct server *s)
{
    while (s->rearm != NULL) {
        struct conn *c = s->rearm;
        s->rearm = c->rearm_next;
        c->on_rearm = false;
        c->inflight--;
        if (!c->closing && !c->paused && !c->eof && !c->recv_armed)
            arm_recv(s, c);
        settle(s, c);
    }
}

int main(int argc, char **argv)
{
    struct peer_args args;
    peer_parse(argc, argv, "uring_server", PEER_ALL_MODES, USAGE, &args);
    peer_prepare();

    static struct server s;
    s.mode = args.mode;
    s.signal_fd = peer_stop_signalfd(false);
    /* Blocking sockets: the ring tries each operation without waiting and arms its
     * own poll when it would block. */
    s.listen_fd = peer_socket(SOCK_STREAM, false, args.port);
    if (s.mode == PEER_ECHO) {
        /* Accepted sockets inherit TCP_NODELAY from the listener on Linux: replies
         * go out at once, without a setsockopt per connection. */
        int one = 1;
        if (setsockopt(s.listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            peer_fail("setsockopt TCP_NODELAY");
    }
    ring_setup(&s);
    if (s.mode != PEER_ONESHOT)
        bufs_setup(&s);
    arm_signal_read(&s);
    arm_accept(&s);
    peer_announce(peer_bound_port(s.listen_fd));

    while (!s.stopping) {
        rearm_starved(&s);
        int rc = io_uring_submit_and_wait(&s.ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME)
            fail_rc("io_uring_submit_and_wait", rc);
        struct io_uring_cqe *cqe;
        /* Each entry is consumed before it is handled, so a handler that has to
         * submit early (sqe_reserve) always leaves the kernel room to complete. */
        while (!s.stopping && io_uring_peek_cqe(&s.ring, &cqe) == 0) {
            uint64_t data = cqe->user_data;
            int res = cqe->res;
            unsigned flags = cqe->flags;
            io_uring_cqe_seen(&s.ring, cqe);
            dispatch(&s, data, res, flags);
        }
    }

    /* The process ends here, and its memory with it: the connections' state is not
     * freed, because the kernel cancels the ring's operations (which may read that
     * memory) asynchronously after the ring is closed. */
    io_uring_queue_exit(&s.ring);
    for (struct conn *c = s.conns; c != NULL; c = c->next)
        if (!c->close_sent)
            close(c->fd);
    close(s.listen_fd);
    close(s.signal_fd);
    return 0;
}
