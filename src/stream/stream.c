/* A stream's life: adopting a socket or a descriptor, the watcher's events, closing
 * (drained, lingering, aborted), the one error, and the deferred calls that run
 * on_close and the write-done calls from the loop, never from inside the call that
 * caused them. */
#include "stream_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_LOW   ((size_t)16 * 1024)
#define STREAM_HIGH  ((size_t)64 * 1024)
#define STREAM_LIMIT ((size_t)16 * 1024 * 1024)

static void on_io(sockit_io *io, int events, void *arg)
{
    (void)io;
    sockit_stream *st = arg;
    if ((events & SOCKIT_EVENT_READ) && !st->ended)
        sockit__stream_readable(st);
    if ((events & SOCKIT_EVENT_WRITE) && !st->ended)
        sockit__stream_flush(st);
}

static bool wants_reading(const sockit_stream *st)
{
    if (st->paused || st->eof || st->closing)
        return false;
    /* A descriptor that is not a socket (a terminal on fd 1) is read only by a stream
     * that asked for its bytes. */
    return st->is_socket || (st->cb != NULL && st->cb->on_data != NULL);
}

void sockit__stream_update_io(sockit_stream *st)
{
    if (st->ended)
        return;
    int want = (wants_reading(st) ? SOCKIT_EVENT_READ : 0) |
               (st->wq_head != NULL ? SOCKIT_EVENT_WRITE : 0);
    if (sockit_io_events(st->io) == want)
        return;
    int rc = sockit_io_start(st->io, want);
    if (rc < 0)
        sockit__stream_fail(st, rc, "watch");
}

sockit_stream *sockit__stream_make(sockit_loop *loop, int fd, bool is_socket, bool owned,
                                   const sockit_stream_callbacks *cb, void *user)
{
    sockit_stream *st = sockit__calloc(1, sizeof *st);
    if (st == NULL) {
        sockit__failf(-ENOMEM, "stream_new (fd %d)", fd);
        return NULL;
    }
    st->loop = loop;
    st->cb = cb;
    st->user = user;
    st->fd = fd;
    st->refs = 1;
    st->is_socket = is_socket;
    st->owned = owned;
    st->low = STREAM_LOW;
    st->high = STREAM_HIGH;
    st->limit = STREAM_LIMIT;
    st->last_active = loop->now;
    st->io = sockit_io_new(loop, fd, on_io, st);
    if (st->io == NULL) {
        sockit__free(st);
        return NULL;
    }
    int want = wants_reading(st) ? SOCKIT_EVENT_READ : 0;
    int rc = want != 0 ? sockit_io_start(st->io, want) : 0;
    if (rc < 0) {
        sockit__failf(rc, "stream_new (fd %d): %s", fd,
                      rc == -EPERM ? "the loop cannot watch it (a regular file is always "
                                     "ready: read it directly)"
                                   : sockit_strerror(rc));
        sockit_io_close(st->io);
        sockit__free(st);
        return NULL;
    }
    return st;
}

sockit_stream *sockit_stream_new(sockit_loop *loop, sockit *s, const sockit_stream_callbacks *cb,
                                 void *user)
{
    if (loop == NULL || s == NULL) {
        sockit__failf(-EINVAL, "stream_new: %s", loop == NULL ? "no loop" : "no socket");
        return NULL;
    }
    if (s->type != SOCK_STREAM) {
        sockit__failf(-EINVAL, "stream_new (fd %d): not a stream socket", s->fd);
        return NULL;
    }
    bool was_blocking = s->timeout != 0.0;
    if (was_blocking) {
        int rc = sockit__set_nonblock(s->fd, true);
        if (rc < 0) {
            sockit__failf(rc, "stream_new (fd %d): O_NONBLOCK", s->fd);
            return NULL;
        }
    }
    sockit_stream *st = sockit__stream_make(loop, s->fd, true, true, cb, user);
    if (st != NULL) {
        size_t ahead = s->rbuf.end - s->rbuf.start;
        if (ahead > 0 && sockit__stream_keep(st, s->rbuf.data + s->rbuf.start, ahead) < 0) {
            sockit_io_close(st->io);
            sockit__free(st);
            st = NULL;
        } else if (ahead > 0) {
            sockit__stream_deliver_soon(st);
        }
    }
    if (st == NULL) {
        if (was_blocking)
            sockit__set_nonblock(s->fd, false);
        return NULL;
    }
    socklen_t len = sizeof st->peer;
    if (getpeername(s->fd, (struct sockaddr *)&st->peer, &len) == 0 && len <= sizeof st->peer)
        st->peer_len = len;
    /* The stream has the descriptor now; the object goes. */
    sockit__rbuf_free(s);
    sockit__free(s);
    return st;
}

sockit_stream *sockit_stream_new_fd(sockit_loop *loop, int fd, bool owned,
                                    const sockit_stream_callbacks *cb, void *user)
{
    if (loop == NULL) {
        sockit__failf(-EINVAL, "stream_new_fd: no loop");
        return NULL;
    }
    int flags = fd < 0 ? -1 : fcntl(fd, F_GETFL);
    if (flags < 0) {
        sockit__failf(-EBADF, "stream_new_fd: descriptor %d", fd);
        return NULL;
    }
    int type = 0;
    socklen_t tlen = sizeof type;
    bool is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0;
    if (is_socket && type != SOCK_STREAM) {
        sockit__failf(-EINVAL, "stream_new_fd (fd %d): not a stream socket", fd);
        return NULL;
    }
    bool was_blocking = (flags & O_NONBLOCK) == 0;
    if (was_blocking && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        sockit__failf(-errno, "stream_new_fd (fd %d): O_NONBLOCK", fd);
        return NULL;
    }
    sockit_stream *st = sockit__stream_make(loop, fd, is_socket, owned, cb, user);
    if (st == NULL) {
        if (was_blocking)
            fcntl(fd, F_SETFL, flags);
        return NULL;
    }
    st->restore_blocking = was_blocking && !owned;
    if (is_socket) {
        socklen_t len = sizeof st->peer;
        if (getpeername(fd, (struct sockaddr *)&st->peer, &len) == 0 && len <= sizeof st->peer)
            st->peer_len = len;
    }
    return st;
}

void sockit__stream_name(const sockit_stream *st, char *buf, size_t size)
{
    if (st->peer_len > 0) {
        sockit_addr a = {.len = st->peer_len};
        memcpy(&a.u, &st->peer, st->peer_len);
        if (sockit_addr_format(&a, buf, size) > 0)
            return;
    }
    snprintf(buf, size, "fd %d", st->fd);
}

int sockit__stream_defer(sockit_stream *st, sockit_call_fn fn)
{
    st->refs++;
    int rc = sockit_loop_call_soon(st->loop, fn, st);
    if (rc < 0)
        st->refs--;
    return rc;
}

void sockit__stream_unref(sockit_stream *st)
{
    if (--st->refs > 0)
        return;
    sockit__free(st->pend);
    sockit__free(st);
}

static void run_on_close(sockit_loop *loop, void *arg)
{
    (void)loop;
    sockit_stream *st = arg;
    sockit__stream_run_done(st);
    if (st->cb != NULL && st->cb->on_close != NULL)
        st->cb->on_close(st, st->user);
    sockit__stream_unref(st); /* the deferred call's */
    sockit__stream_unref(st); /* the stream's own */
}

void sockit__stream_end(sockit_stream *st, int status, bool reset)
{
    if (st->ended)
        return;
    st->ended = st->closing = true;
    sockit__stream_drop_queue(st, status);
    sockit_io_close(st->io);
    st->io = NULL;
    sockit_timer_close(st->timer);
    st->timer = NULL;
    if (st->owned) {
        if (reset && st->is_socket) {
            /* A zero linger makes close send RST and drop what the kernel holds. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(st->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(st->fd);
    } else if (st->restore_blocking) {
        int flags = fcntl(st->fd, F_GETFL);
        if (flags >= 0)
            fcntl(st->fd, F_SETFL, flags & ~O_NONBLOCK);
    }
    st->fd = -1;
    if (st->listener != NULL)
        sockit__listener_stream_ended(st->listener, st);
    if (sockit__stream_defer(st, run_on_close) < 0) {
        /* No memory for the deferred call: on_close runs now rather than never. */
        st->refs++;
        run_on_close(st->loop, st);
    }
}

void sockit__stream_fail(sockit_stream *st, int code, const char *op)
{
    if (st->ended)
        return;
    char name[SOCKIT_ADDRSTRLEN + 8];
    sockit__stream_name(st, name, sizeof name);
    if (code == SOCKIT_ETIMEOUT)
        sockit__failf(code, "%s %s: no bytes in or out for %.3g s", op, name,
                      (double)st->idle_ns / 1e9);
    else
        sockit__failf(code, "%s (peer %s)", op, name);
    bool user_closed = st->closing;
    st->closing = true;
    if (!user_closed && st->cb != NULL && st->cb->on_error != NULL)
        st->cb->on_error(st, code, st->user);
    /* An idle client is told with an ordinary end of stream; anything else (a broken
     * connection, a protocol violation, a linger that ran out) is reset. */
    sockit__stream_end(st, code, code != SOCKIT_ETIMEOUT);
}

void sockit_stream_close(sockit_stream *st, double linger)
{
    if (st == NULL || st->closing)
        return;
    st->closing = true;
    if (st->wq_head == NULL) {
        sockit__stream_end(st, 0, false);
        return;
    }
    if (linger == 0.0 || linger != linger) {
        sockit__stream_end(st, -ECANCELED, true);
        return;
    }
    if (linger > 0)
        st->linger_at = st->loop->now + (int64_t)(linger * 1e9);
    sockit__stream_update_io(st);
    sockit__stream_arm_timer(st);
}

void sockit_stream_abort(sockit_stream *st)
{
    if (st == NULL || st->ended)
        return;
    st->closing = true;
    sockit__stream_end(st, -ECANCELED, true);
}

int sockit_stream_shutdown(sockit_stream *st)
{
    if (st == NULL || st->closing)
        return sockit__fail(-EPIPE, "stream_shutdown");
    if (!st->is_socket) {
        /* A pipe has one direction: ending its writing is ending it. */
        sockit_stream_close(st, -1);
        return 0;
    }
    if (st->shut_asked)
        return 0;
    st->shut_asked = true;
    if (st->wq_head == NULL)
        sockit__stream_flush(st);
    return 0;
}

void sockit_stream_pause(sockit_stream *st)
{
    if (st == NULL || st->paused)
        return;
    st->paused = true;
    sockit__stream_update_io(st);
}

void *sockit_stream_user(const sockit_stream *st) { return st != NULL ? st->user : NULL; }

void sockit_stream_set_user(sockit_stream *st, void *user)
{
    if (st != NULL)
        st->user = user;
}

void sockit_stream_set_callbacks(sockit_stream *st, const sockit_stream_callbacks *cb)
{
    if (st == NULL)
        return;
    st->cb = cb;
    sockit__stream_update_io(st);
}

sockit_loop *sockit_stream_loop(const sockit_stream *st) { return st != NULL ? st->loop : NULL; }

int sockit_stream_fd(const sockit_stream *st) { return st != NULL ? st->fd : -1; }

int sockit_stream_peer(const sockit_stream *st, sockit_addr *out)
{
    if (st == NULL || out == NULL)
        return sockit__fail(-EINVAL, "stream_peer");
    if (!st->is_socket)
        return sockit__failf(-ENOTSOCK, "stream_peer (fd %d): not a socket", st->fd);
    if (st->peer_len == 0)
        return sockit__failf(-ENOTCONN, "stream_peer (fd %d): no peer", st->fd);
    memset(out, 0, sizeof *out);
    memcpy(&out->u, &st->peer, st->peer_len);
    out->len = st->peer_len;
    return 0;
}
