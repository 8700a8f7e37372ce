/* A stream's life: adopting a socket or a descriptor, the watcher's events, closing
 * (drained, lingering, aborted) and the one error. The calls it defers to the loop
 * (on_close among them) are stream_defer.c's. */
#include "../abi.h"
#include "stream_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void sockit__stream_handle_ready(sockit__handle *h, int events)
{
    /* The handle is the stream's first member. */
    sockit_stream *st = (sockit_stream *)(void *)h;
    if ((events & SOCKIT_EVENT_READ) && !st->ended)
        sockit__stream_readable(st);
    if ((events & SOCKIT_EVENT_WRITE) && !st->ended)
        sockit__stream_flush(st);
}

static bool wants_reading(const sockit_stream *st)
{
    if (st->paused || st->eof || st->closing)
        return false;
    /* Raw bytes kept through a pause go out first, before more are received: on a
     * completion backend a receive runs until its cancel lands, so one started on
     * each resume would add to what is kept with every pause of a reader that
     * cannot keep up. */
    if (st->mode == SOCKIT__FRAME_RAW && !st->filtered && st->ext != NULL &&
        st->ext->pend_off < st->ext->pend_len)
        return false;
    /* A descriptor that is not a socket (a terminal on fd 1) is read only by a stream
     * that asked for its bytes. */
    return st->is_socket || (st->cb != NULL && st->cb->on_data != NULL);
}

/* On a completion backend: the receive runs while the stream reads (one that is
 * being cancelled is started again when its last completion comes), and a queue
 * with bytes goes on the list of sends for the next wait. */
static void ring_update(sockit_stream *st, int want)
{
    sockit_loop *loop = st->loop;
    sockit__backend *b = &loop->backend;
    sockit__handle_watch(loop, &st->h, want); /* what keeps the loop running */
    if ((want & SOCKIT_EVENT_READ) && !st->recv_on) {
        int rc = b->ops->recv(b, st->h.fd, sockit__tag(st, SOCKIT__TAG_STREAM_RECV));
        if (rc < 0) {
            sockit__stream_fail(st, rc, "recv");
            return;
        }
        st->recv_on = true;
        st->refs++;
        loop->ops_pending++;
    } else if (!(want & SOCKIT_EVENT_READ) && st->recv_on && !st->recv_stop) {
        /* A pause's cancel goes at once: the wait it would go with may first take
         * thousands of completions (each taken one lets the kernel receive the
         * next while the peer keeps sending), and all of them would be kept. */
        if (b->ops->cancel(b, sockit__tag(st, SOCKIT__TAG_STREAM_RECV), st->paused) == 0)
            st->recv_stop = true;
    }
    if ((want & SOCKIT_EVENT_WRITE) && !st->send_on && !st->send_listed) {
        if (loop->nsend == loop->send_cap) {
            size_t cap = loop->send_cap ? loop->send_cap * 2 : 64;
            sockit_stream **a = sockit__realloc(loop->send_list, cap * sizeof *a);
            if (a == NULL) {
                sockit__stream_fail(st, -ENOMEM, "send");
                return;
            }
            loop->send_list = a;
            loop->send_cap = cap;
        }
        loop->send_list[loop->nsend++] = st;
        st->send_listed = true;
        st->refs++;
    }
}

void sockit__stream_update_io(sockit_stream *st)
{
    if (st->ended)
        return;
    bool writing = st->ext != NULL && st->ext->wq_head != NULL;
    int want = (wants_reading(st) ? SOCKIT_EVENT_READ : 0) | (writing ? SOCKIT_EVENT_WRITE : 0);
    if (st->h.ring) {
        ring_update(st, want);
        return;
    }
    int rc = sockit__handle_watch(st->loop, &st->h, want);
    if (rc < 0)
        sockit__stream_fail(st, rc, "watch");
}

sockit__stream_ext *sockit__stream_ext_get(sockit_stream *st)
{
    if (st->ext != NULL)
        return st->ext;
    sockit__stream_ext *x = st->loop->spare_ext;
    if (x != NULL)
        st->loop->spare_ext = NULL;
    else
        x = sockit__calloc(1, sizeof *x);
    if (x == NULL) {
        sockit__failf(-ENOMEM, "stream (fd %d): buffers", st->h.fd);
        return NULL;
    }
    x->low = SOCKIT__STREAM_LOW;
    x->high = SOCKIT__STREAM_HIGH;
    x->limit = SOCKIT__STREAM_LIMIT;
    st->ext = x;
    return x;
}

void sockit__stream_ext_trim(sockit_stream *st)
{
    sockit__stream_ext *x = st->ext;
    if (x == NULL || st->delivering || x->pend_off < x->pend_len || x->wq_head != NULL ||
        x->done_head != NULL || x->custom_marks || x->linger != NULL || st->over_high ||
        x->filter != NULL)
        return;
    sockit__free(x->pend);
    sockit__stream_ext_release(st->loop, x);
    st->ext = NULL;
}

size_t sockit__stream_queued(const sockit_stream *st) { return st->ext ? st->ext->queued : 0; }

static void peer_keep(sockit_stream *st, const struct sockaddr *sa, socklen_t len)
{
    sockit__peer *p = &st->peer;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        *p = (sockit__peer){.family = AF_INET, .port = in->sin_port};
        memcpy(p->addr, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        *p = (sockit__peer){.family = AF_INET6, .port = in6->sin6_port};
        memcpy(p->addr, &in6->sin6_addr, 16);
    } else if (sa->sa_family == AF_UNIX) {
        *p = (sockit__peer){.family = AF_UNIX};
    }
}

void sockit__stream_set_peer(sockit_stream *st, const sockit_addr *a)
{
    if (a != NULL && a->len > 0)
        peer_keep(st, &a->u.sa, a->len);
}

static void peer_lookup(sockit_stream *st)
{
    sockit_addr a;
    socklen_t len = sizeof a.u;
    if (getpeername(st->h.fd, &a.u.sa, &len) == 0)
        peer_keep(st, &a.u.sa, len);
}

/* The kept peer as an address (a Unix peer: the family only). */
static bool peer_addr(const sockit_stream *st, sockit_addr *out)
{
    const sockit__peer *p = &st->peer;
    memset(out, 0, sizeof *out);
    if (p->family == AF_INET) {
        out->u.in4.sin_family = AF_INET;
        out->u.in4.sin_port = p->port;
        memcpy(&out->u.in4.sin_addr, p->addr, 4);
        out->len = sizeof out->u.in4;
    } else if (p->family == AF_INET6) {
        out->u.in6.sin6_family = AF_INET6;
        out->u.in6.sin6_port = p->port;
        memcpy(&out->u.in6.sin6_addr, p->addr, 16);
        out->len = sizeof out->u.in6;
    } else if (p->family == AF_UNIX) {
        out->u.un.sun_family = AF_UNIX;
        out->len = sizeof(sa_family_t);
    } else {
        return false;
    }
    return true;
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
    st->refs = 1;
    st->is_socket = is_socket;
    st->owned = owned;
    sockit__handle_init(loop, &st->h, fd, SOCKIT__HANDLE_STREAM);
    /* A socket goes through the backend's operations where it has them; anything
     * else (a pipe, a terminal) by readiness. */
    st->h.ring = is_socket && sockit__loop_completes(loop);
    int rc = sockit__stream_idle_set(st, 0);
    int want = wants_reading(st) ? SOCKIT_EVENT_READ : 0;
    if (rc == 0 && st->h.ring) {
        /* Nothing to register, so nothing to refuse: the receive starts once the
         * stream is the caller's (sockit__stream_update_io, from the first wait). */
        sockit__handle_watch(loop, &st->h, want);
        if (want != 0)
            sockit__stream_defer(st, SOCKIT__DEFER_START);
    } else if (rc == 0) {
        rc = sockit__handle_watch(loop, &st->h, want);
    }
    if (rc < 0) {
        sockit__failf(rc, "stream_new (fd %d): %s", fd,
                      rc == -EPERM ? "the loop cannot watch it (a regular file is always "
                                     "ready: read it directly)"
                                   : sockit_strerror(rc));
        sockit__stream_idle_remove(st);
        sockit__handle_close(loop, &st->h);
        sockit__free(st);
        return NULL;
    }
    return st;
}

/* Undoes sockit__stream_make for a stream nobody has seen yet (the descriptor stays
 * the caller's). A deferred start still holds it: the stream goes with that. */
static void unmake(sockit_stream *st)
{
    sockit__stream_idle_remove(st);
    sockit__handle_close(st->loop, &st->h);
    st->ended = st->closing = true;
    st->h.fd = -1;
    sockit__stream_unref(st);
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
    if (cb != NULL && sockit__table_check(cb, SOCKIT__BASE_STREAM_CALLBACKS, sizeof *cb,
                                          "stream_new: callbacks") < 0)
        return NULL;
    /* Its session lives in the socket's transport, which a stream does not take
     * over: TLS on a stream is sockit_stream_start_tls on a plain one. */
    if (s->transport != &sockit__plain_transport) {
        sockit__failf(-EINVAL,
                      "stream_new (fd %d): a TLS socket (make the stream from the plain "
                      "socket, then sockit_stream_start_tls)",
                      s->fd);
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
            unmake(st);
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
    peer_lookup(st);
    /* The stream has the descriptor now; the object goes. */
    sockit__free_parts(s);
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
    if (cb != NULL && sockit__table_check(cb, SOCKIT__BASE_STREAM_CALLBACKS, sizeof *cb,
                                          "stream_new_fd: callbacks") < 0)
        return NULL;
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
    if (is_socket)
        peer_lookup(st);
    return st;
}

void sockit__stream_name(const sockit_stream *st, char *buf, size_t size)
{
    sockit_addr a;
    if (st->peer.family != AF_UNIX && peer_addr(st, &a) && sockit_addr_format(&a, buf, size) > 0)
        return;
    if (st->peer.family == AF_UNIX)
        snprintf(buf, size, "unix peer (fd %d)", st->h.fd);
    else
        snprintf(buf, size, "fd %d", st->h.fd);
}

void sockit__stream_unref(sockit_stream *st)
{
    if (--st->refs > 0)
        return;
    /* The filter goes last: a callback it called may have ended the stream while
     * the filter still runs (on_wire delivering to on_data, which aborts). */
    if (st->filtered && st->ext != NULL && st->ext->filter != NULL)
        sockit__filter_free(st);
    if (st->ext != NULL)
        sockit__free(st->ext->pend);
    sockit__free(st->ext);
    sockit__free(st);
}

void sockit__stream_schedule_close(sockit_stream *st)
{
    st->close_waits = false;
    st->loop->on_close_pending++;
    sockit__stream_defer(st, SOCKIT__DEFER_CLOSE);
}

/* What is in flight on a completion backend is cancelled: its completions still
 * come, and on_close waits for the last (the kernel may still use a caller's bytes
 * until then). */
static bool cancel_in_flight(sockit_stream *st)
{
    sockit__backend *b = &st->loop->backend;
    if (st->recv_on && !st->recv_stop &&
        b->ops->cancel(b, sockit__tag(st, SOCKIT__TAG_STREAM_RECV), false) == 0)
        st->recv_stop = true;
    if (st->send_on)
        b->ops->cancel(b, sockit__tag(st, SOCKIT__TAG_STREAM_SEND), false);
    return st->recv_on || st->send_on;
}

void sockit__stream_end(sockit_stream *st, int status, bool reset)
{
    if (st->ended)
        return;
    st->ended = st->closing = true;
    sockit__stream_drop_queue(st, status);
    if (st->ext != NULL && st->ext->linger != NULL) {
        sockit_timer_close(st->ext->linger);
        st->ext->linger = NULL;
    }
    sockit__stream_idle_remove(st);
    int fd = st->h.fd;
    if (st->h.ring)
        cancel_in_flight(st);
    sockit__handle_close(st->loop, &st->h);
    if (st->owned) {
        if (reset && st->is_socket) {
            /* A zero linger makes close send RST and drop what the kernel holds. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        } else if (st->drop_unread && st->is_socket) {
            sockit__drop_unread(fd);
        }
        close(fd);
    } else if (st->restore_blocking) {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0)
            fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    }
    st->h.fd = -1;
    if (st->listener != NULL)
        sockit__listener_stream_ended(st->listener, st);
    if (st->h.ring && (st->recv_on || st->send_on)) {
        st->close_waits = true;
        return;
    }
    sockit__stream_schedule_close(st);
}

void sockit__stream_fail(sockit_stream *st, int code, const char *op)
{
    if (st->ended)
        return;
    char name[SOCKIT_ADDRSTRLEN + 8];
    sockit__stream_name(st, name, sizeof name);
    if (code == SOCKIT_ETIMEOUT)
        sockit__failf(code, "%s %s: no bytes in or out for %.3g s", op, name,
                      (double)sockit__stream_idle_ms(st) / 1e3);
    else
        sockit__failf(code, "%s (peer %s)", op, name);
    sockit__stream_fail_noted(st, code);
}

void sockit__stream_fail_noted(sockit_stream *st, int code)
{
    if (st->ended)
        return;
    bool user_closed = st->closing;
    st->closing = true;
    if (!user_closed && st->cb != NULL && st->cb->on_error != NULL)
        st->cb->on_error(st, code, st->user);
    /* An idle client is told with an ordinary end of stream; anything else (a broken
     * connection, a protocol violation, a linger that ran out) is reset. */
    sockit__stream_end(st, code, code != SOCKIT_ETIMEOUT);
}

void sockit__stream_fail_draining(sockit_stream *st, int code, double linger)
{
    if (st->ended)
        return;
    bool user_closed = st->closing;
    st->closing = true;
    st->drop_unread = true;
    if (!user_closed && st->cb != NULL && st->cb->on_error != NULL)
        st->cb->on_error(st, code, st->user);
    if (st->ended)
        return;
    if (st->ext == NULL || st->ext->wq_head == NULL) {
        sockit__stream_end(st, code, false);
        return;
    }
    st->ext->linger_at = st->loop->now + (int64_t)(linger * 1e9);
    sockit__stream_arm_linger(st);
    sockit__stream_update_io(st);
}

void sockit_stream_close(sockit_stream *st, double linger)
{
    if (st == NULL || st->closing)
        return;
    /* A filter's end of the user's side goes on the wire first (a linger of 0 drops
     * it with the rest). */
    if (st->filtered)
        sockit__filter_user_end(st);
    st->closing = true;
    if (st->ext == NULL || st->ext->wq_head == NULL) {
        sockit__stream_end(st, 0, false);
        return;
    }
    if (linger == 0.0 || linger != linger) {
        sockit__stream_end(st, -ECANCELED, true);
        return;
    }
    if (linger > 0) {
        st->ext->linger_at = st->loop->now + (int64_t)(linger > 1e9 ? 1e18 : linger * 1e9);
        sockit__stream_arm_linger(st);
    }
    sockit__stream_update_io(st);
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
    if (st->filtered)
        sockit__filter_user_end(st);
    st->shut_asked = true;
    if (st->ext == NULL || st->ext->wq_head == NULL)
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
    /* A table this library cannot serve whole is refused: the stream keeps its own,
     * and the message says why. */
    if (cb != NULL && sockit__table_check(cb, SOCKIT__BASE_STREAM_CALLBACKS, sizeof *cb,
                                          "stream_set_callbacks") < 0)
        return;
    st->cb = cb;
    sockit__stream_update_io(st);
}

sockit_loop *sockit_stream_loop(const sockit_stream *st) { return st != NULL ? st->loop : NULL; }

int sockit_stream_fd(const sockit_stream *st) { return st != NULL ? st->h.fd : -1; }

int sockit_stream_peer(const sockit_stream *st, sockit_addr *out)
{
    if (st == NULL || out == NULL)
        return sockit__fail(-EINVAL, "stream_peer");
    if (!st->is_socket)
        return sockit__failf(-ENOTSOCK, "stream_peer (fd %d): not a socket", st->h.fd);
    /* The kernel's answer while connected (a Unix peer's path, an IPv6 scope);
     * afterwards what was kept. */
    socklen_t len = sizeof out->u;
    if (st->h.fd >= 0 && getpeername(st->h.fd, &out->u.sa, &len) == 0) {
        out->len = len;
        return 0;
    }
    if (!peer_addr(st, out))
        return sockit__failf(-ENOTCONN, "stream_peer (fd %d): no peer", st->h.fd);
    return 0;
}
