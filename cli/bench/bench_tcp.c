/* sockit bench: the TCP (and Unix stream) transport. A worker's connections are
 * non-blocking descriptors, one I/O watcher each on the worker's sockit_loop, in
 * three modes:
 *   echo     keep `pipeline` messages in flight; check every byte that comes back;
 *   stream   write continuously, read back and count whatever returns;
 *   connect  per request: connect, send the message, read until EOF, close.
 * Requests are numbered per connection slot (k), so the open loop (--rate) can
 * compute when request k was due: latency counts from that moment, not from when
 * the generator got round to sending it (no coordinated omission). */
#include "bench.h"

#include <sockit_tls.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { IDLE, CONNECTING, TUNNELING, HANDSHAKING, OPEN };

typedef struct tcp_loop tcp_loop;

typedef struct conn {
    int fd;
    sockit *sock; /* --tls: the TLS socket that owns fd; NULL: plain */
    unsigned char state;
    bool want_out; /* the watcher asks for WRITE */
    sockit_io *io; /* while fd >= 0 */
    tcp_loop *L;
    uint32_t index;      /* in this worker */
    uint64_t seed;       /* where in the pattern this connection's stream starts */
    uint64_t out, in;    /* bytes on the current connection */
    uint64_t issued;     /* requests given to the current connection */
    uint64_t k_open;     /* slot request number of the current connection's first */
    uint64_t k_due;      /* open loop: requests scheduled on this slot so far */
    uint64_t k_done;     /* requests completed or lost on this slot */
    uint64_t started_ns; /* connect began (the exchange, in connect mode) */
    uint64_t retry_ns;   /* IDLE: reconnect from then on */
    uint32_t backoff_ms;
    uint32_t reply_len; /* connect mode: bytes of reply so far */
    bool reply_corrupt;
} conn;

struct tcp_loop {
    bench_worker *w;
    conn *conns;
    long n;
    uint64_t *sent_ns; /* closed loop: send time of request k at [index*depth + k%depth] */
    unsigned char *scratch;
    size_t scratch_len;
    long idle;            /* connections waiting to reconnect */
    uint64_t sweep_every; /* ns */
};

static const bench_config *cfg_of(bench_worker *w) { return w->shared->cfg; }

/* When request k of connection c was due (open loop) or sent (closed loop). */
static uint64_t origin_ns(bench_worker *w, tcp_loop *L, const conn *c, uint64_t k)
{
    const bench_config *cfg = cfg_of(w);
    if (w->rate > 0)
        return bench_due_ns(w->shared, k * (uint64_t)L->n + c->index, w->interval_ns);
    if (cfg->mode == BENCH_CONNECT)
        return c->started_ns;
    return L->sent_ns[(uint64_t)c->index * cfg->pipeline + k % cfg->pipeline];
}

/* The loop changes the kernel's interest only when it changes; so does this. */
static void set_events(conn *c, bool want_out)
{
    if (c->want_out == want_out)
        return;
    sockit_io_start(c->io, SOCKIT_EVENT_READ | (want_out ? SOCKIT_EVENT_WRITE : 0));
    c->want_out = want_out;
}

/* Requests on the current connection that are done: echoed whole (echo) or
 * written whole (stream). */
static uint64_t done_on_conn(const bench_config *cfg, const conn *c)
{
    return (cfg->mode == BENCH_STREAM ? c->out : c->in) / cfg->msg_bytes;
}

/* send(2) and recv(2), or the same through TLS: -1 with errno as the system calls
 * set it, so the callers do not tell the two apart. A TLS socket that would block
 * reading for a send (or writing for a recv) leaves WRITE watched: READ always is. */
static int errno_of(ssize_t code)
{
    if (code == SOCKIT_EWOULDBLOCK)
        return EAGAIN;
    return code > -4096 ? (int)-code : EPROTO;
}

static ssize_t conn_send(conn *c, const void *buf, size_t len)
{
    if (c->sock == NULL)
        return send(c->fd, buf, len, MSG_NOSIGNAL);
    ssize_t n = sockit_send(c->sock, buf, len, MSG_DONTWAIT);
    if (n >= 0)
        return n;
    errno = errno_of(n);
    return -1;
}

static ssize_t conn_recv(conn *c, void *buf, size_t len)
{
    if (c->sock == NULL)
        return recv(c->fd, buf, len, 0);
    ssize_t n = sockit_recv(c->sock, buf, len, MSG_DONTWAIT);
    if (n >= 0)
        return n;
    errno = errno_of(n);
    return -1;
}

static void close_conn(tcp_loop *L, conn *c, uint64_t now, bool retry_later)
{
    sockit_io_close(c->io); /* before the descriptor, whose number may come back */
    c->io = NULL;
    if (c->sock != NULL)
        sockit_close(c->sock); /* close_notify if it goes without waiting, and fd */
    else if (c->fd >= 0)
        close(c->fd);
    c->sock = NULL;
    c->fd = -1;
    c->state = IDLE;
    c->want_out = false;
    L->idle++;
    c->retry_ns = now;
    if (retry_later) {
        /* Refused or reset again and again: back off (10 ms doubling to 1 s) so
         * a dead server is not hammered by every connection at once. */
        c->backoff_ms = bench_backoff_ms(c->backoff_ms);
        c->retry_ns = now + (uint64_t)c->backoff_ms * 1000000u;
    }
}

/* The current connection failed: what it had in flight is lost. */
static void fail_conn(bench_worker *w, tcp_loop *L, conn *c, bench_error kind, int err,
                      uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    uint64_t lost;
    if (cfg->mode == BENCH_CONNECT)
        lost = 1;
    else if (w->rate > 0)
        lost = c->k_due - c->k_done; /* due while down too: they were never sent */
    else
        lost = c->issued - done_on_conn(cfg, c);
    c->k_done += lost;
    w->outstanding -= lost;
    if (err >= 0) /* < 0: counted already, with its reason */
        bench_count_error(w, kind, err);
    close_conn(L, c, now, kind != BENCH_ERR_TIMEOUT && kind != BENCH_ERR_CORRUPT);
}

/* Connect errors that mean "nobody is there": with no connection ever made, the
 * run stops at once instead of retrying for its whole duration. */
static void connect_failed(bench_worker *w, tcp_loop *L, conn *c, int err, uint64_t now)
{
    if (err == ECONNREFUSED || err == ENETUNREACH || err == EHOSTUNREACH || err == EADDRNOTAVAIL ||
        err == EACCES || err == EPERM)
        bench_give_up_if_unreached(w, err);
    fail_conn(w, L, c, BENCH_ERR_CONNECT, err, now);
}

/* Closed loop: top the connection up to `pipeline` requests in flight. */
static void top_up(bench_worker *w, tcp_loop *L, conn *c, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    if (w->rate > 0 || w->budget_spent)
        return;
    while (c->issued - done_on_conn(cfg, c) < cfg->pipeline) {
        if (!bench_claim(w->shared)) {
            w->budget_spent = true;
            return;
        }
        uint64_t k = c->k_open + c->issued;
        L->sent_ns[(uint64_t)c->index * cfg->pipeline + k % cfg->pipeline] = now;
        c->issued++;
        w->outstanding++;
    }
}

/* Stream mode: requests complete as they are written. */
static void stream_written(bench_worker *w, conn *c, uint64_t before, uint64_t now)
{
    uint64_t m = cfg_of(w)->msg_bytes;
    uint64_t whole = c->out / m - before / m;
    if (whole == 0)
        return;
    c->k_done += whole;
    w->outstanding -= whole;
    w->stats.requests += whole;
    w->stats.last_done_ns = now;
    c->backoff_ms = 0;
}

/* Stream mode writes at most this many times per wake-up, then lets level-triggered
 * WRITE bring it back: a server that drains as fast as it is fed would otherwise
 * keep one connection writing past the end of the run and starve the others. */
#define STREAM_WRITES_PER_WAKE 16

/* Writes what was issued and not yet written. -1 if the connection failed. */
static int flush(bench_worker *w, tcp_loop *L, conn *c, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    const bench_pattern *pat = w->shared->pattern;
    unsigned writes = 0;
    for (;;) {
        uint64_t target = c->issued * cfg->msg_bytes;
        if (c->out >= target) {
            if (cfg->mode == BENCH_STREAM && w->rate == 0 && !w->budget_spent) {
                top_up(w, L, c, now);
                if (c->out < c->issued * cfg->msg_bytes)
                    continue;
            }
            set_events(c, false);
            return 0;
        }
        uint64_t left = target - c->out;
        /* Stream mode writes one message per call: -m is its write size. */
        size_t cap = cfg->mode == BENCH_STREAM && cfg->msg_bytes < pat->window
                         ? cfg->msg_bytes - (size_t)(c->out % cfg->msg_bytes)
                         : pat->window;
        size_t len = left < cap ? (size_t)left : cap;
        ssize_t sent = conn_send(c, bench_pattern_at(pat, c->seed, c->out), len);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_events(c, true);
                return 0;
            }
            fail_conn(w, L, c, bench_error_of(errno), errno, now);
            return -1;
        }
        uint64_t before = c->out;
        c->out += (uint64_t)sent;
        w->stats.bytes_out += (uint64_t)sent;
        if (cfg->mode == BENCH_STREAM) {
            stream_written(w, c, before, now);
            if (++writes >= STREAM_WRITES_PER_WAKE) {
                set_events(c, true);
                return 0;
            }
        }
    }
}

/* Echo: bytes back must be the bytes sent, in order; whole messages complete. */
static int echo_received(bench_worker *w, tcp_loop *L, conn *c, size_t n, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    if (c->in + n > c->out ||
        memcmp(L->scratch, bench_pattern_at(w->shared->pattern, c->seed, c->in), n) != 0) {
        bench_count_error_why(w, BENCH_ERR_CORRUPT, "%s at byte %llu of a connection's stream",
                              c->in + n > c->out ? "more bytes back than sent" : "bytes differ",
                              (unsigned long long)c->in);
        fail_conn(w, L, c, BENCH_ERR_CORRUPT, -1, now);
        return -1;
    }
    uint64_t before = c->in / cfg->msg_bytes;
    c->in += n;
    uint64_t after = c->in / cfg->msg_bytes;
    for (uint64_t j = before; j < after; j++) {
        uint64_t k = c->k_open + j;
        uint64_t t0 = origin_ns(w, L, c, k);
        histogram_record(&w->stats.latency, now > t0 ? now - t0 : 0);
    }
    if (after > before) {
        c->k_done += after - before;
        w->outstanding -= after - before;
        w->stats.requests += after - before;
        w->stats.last_done_ns = now;
        c->backoff_ms = 0;
        top_up(w, L, c, now);
        return flush(w, L, c, now);
    }
    return 0;
}

static void exchange_done(bench_worker *w, tcp_loop *L, conn *c, uint64_t now);

/* Connect mode: the reply is compared with --expect as it arrives. */
static void reply_received(bench_worker *w, conn *c, size_t n, const unsigned char *data)
{
    const bench_config *cfg = cfg_of(w);
    if (cfg->expect != NULL && !c->reply_corrupt &&
        (c->reply_len + n > cfg->expect_len || memcmp(data, cfg->expect + c->reply_len, n) != 0))
        c->reply_corrupt = true;
    c->reply_len += (uint32_t)(n > UINT32_MAX - c->reply_len ? UINT32_MAX - c->reply_len : n);
}

static void on_readable(bench_worker *w, tcp_loop *L, conn *c, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    for (;;) {
        ssize_t n = conn_recv(c, L->scratch, L->scratch_len);
        if (n > 0) {
            w->stats.bytes_in += (uint64_t)n;
            if (cfg->mode == BENCH_ECHO) {
                if (echo_received(w, L, c, (size_t)n, now) < 0)
                    return;
            } else if (cfg->mode == BENCH_CONNECT) {
                reply_received(w, c, (size_t)n, L->scratch);
            }
            /* A short read most likely drained the socket: let the loop say when
             * there is more. Connect mode reads on: the EOF is most likely there. */
            /* TLS returns a record at a time, and what it decrypted ahead is not
             * the kernel's to report: read on while it holds some. (Reading on until
             * it would block would stamp replies that came meanwhile with this
             * wake-up's time: latencies of 0.) */
            if ((size_t)n < L->scratch_len && cfg->mode != BENCH_CONNECT &&
                (c->sock == NULL || sockit_pending(c->sock) == 0))
                return;
            continue;
        }
        if (n == 0) {
            if (cfg->mode == BENCH_CONNECT)
                exchange_done(w, L, c, now);
            else
                fail_conn(w, L, c, BENCH_ERR_CLOSED, 0, now);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            fail_conn(w, L, c, bench_error_of(errno), errno, now);
        else if (c->sock != NULL && sockit_tls_wants(c->sock) == SOCKIT_EVENT_WRITE)
            set_events(c, true);
        return;
    }
}

static void on_connected(bench_worker *w, tcp_loop *L, conn *c, bool connected, uint64_t now);
static void handshake(bench_worker *w, tcp_loop *L, conn *c, bool first, uint64_t now);
static void tunnel(bench_worker *w, tcp_loop *L, conn *c, uint64_t now);
static void opened(bench_worker *w, tcp_loop *L, conn *c, uint64_t now);
static void on_io(sockit_io *io, int events, void *user);

/* Opens the slot's next connection. */
static void start_conn(bench_worker *w, tcp_loop *L, conn *c, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    c->state = CONNECTING;
    L->idle--;
    c->started_ns = now;
    c->out = c->in = c->issued = 0;
    c->reply_len = 0;
    c->reply_corrupt = false;
    c->k_open = c->k_done;
    c->seed = bench_seed(w->shared->pattern, c->seed + 7919u);
    if (cfg->tls != NULL || cfg->proxy != NULL) {
        c->sock = sockit_socket(cfg->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK);
        c->fd = c->sock != NULL ? sockit_fileno(c->sock) : -1;
        if (c->fd < 0)
            errno = -sockit_errcode();
    } else {
        c->fd = socket(cfg->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (c->fd < 0) {
        fail_conn(w, L, c, BENCH_ERR_OTHER, errno, now); /* EMFILE: retried after a back-off */
        return;
    }
    if (cfg->mode == BENCH_ECHO && cfg->target.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    bench_bind_source(cfg, c->fd, w->first_conn + c->index);
    /* Writable says connected (or failed: SO_ERROR tells); then READ, and WRITE
     * only while a send is held back. */
    c->io = sockit_io_new(w->loop, c->fd, on_io, c);
    if (c->io == NULL || sockit_io_start(c->io, SOCKIT_EVENT_WRITE) < 0) {
        fail_conn(w, L, c, BENCH_ERR_OTHER, -sockit_errcode(), now);
        return;
    }
    c->want_out = true;
    if (connect(c->fd, (const struct sockaddr *)&cfg->target, cfg->target_len) == 0)
        on_connected(w, L, c, true, now); /* Unix sockets connect at once */
    else if (errno != EINPROGRESS && errno != EINTR && errno != EAGAIN)
        connect_failed(w, L, c, errno, now);
}

/* Connect mode: whether slot c has a request to start, claiming it. */
static bool exchange_wanted(bench_worker *w, conn *c)
{
    if (w->rate > 0)
        return c->k_due > c->k_done;
    if (w->budget_spent || !bench_claim(w->shared)) {
        w->budget_spent = true;
        return false;
    }
    w->outstanding++;
    return true;
}

static void exchange_done(bench_worker *w, tcp_loop *L, conn *c, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    if (c->reply_corrupt || (cfg->expect != NULL && c->reply_len != cfg->expect_len)) {
        bench_count_error_why(w, BENCH_ERR_CORRUPT, "a reply of %u bytes that is not --expect",
                              c->reply_len);
        fail_conn(w, L, c, BENCH_ERR_CORRUPT, -1, now);
        return;
    }
    if (c->reply_len == 0) {
        fail_conn(w, L, c, BENCH_ERR_CLOSED, 0, now);
        return;
    }
    uint64_t t0 = w->rate > 0 ? origin_ns(w, L, c, c->k_done) : c->started_ns;
    histogram_record(&w->stats.latency, now > t0 ? now - t0 : 0);
    w->stats.requests++;
    w->stats.last_done_ns = now;
    c->k_done++;
    w->outstanding--;
    c->backoff_ms = 0;
    close_conn(L, c, now, false);
    if (exchange_wanted(w, c))
        start_conn(w, L, c, now);
}

static void on_connected(bench_worker *w, tcp_loop *L, conn *c, bool connected, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    int err = 0;
    socklen_t len = sizeof err;
    /* The loop reports a failed connect as writable too: SO_ERROR says which. */
    if (!connected && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        connect_failed(w, L, c, err, now);
        return;
    }
    if (cfg->proxy != NULL) {
        c->state = TUNNELING;
        tunnel(w, L, c, now);
        return;
    }
    if (cfg->tls != NULL) {
        c->state = HANDSHAKING;
        handshake(w, L, c, true, now);
        return;
    }
    opened(w, L, c, now);
}

/* --proxy: the proxy's handshake, a step each time the socket is ready for it. */
static void tunnel(bench_worker *w, tcp_loop *L, conn *c, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    int rc = sockit_tunnel(c->sock, cfg->proxy, cfg->tunnel_host, cfg->tunnel_port);
    if (rc == SOCKIT_EWOULDBLOCK) {
        set_events(c, sockit_tunnel_wants(c->sock) == SOCKIT_EVENT_WRITE);
        return;
    }
    if (rc < 0) {
        bench_count_error_why(w, BENCH_ERR_CONNECT, "%s", sockit_errmsg());
        /* With no tunnel ever opened, the proxy's answer will not change on the next
         * try: the run ends, with its reason. */
        bench_give_up_if_unreached(w, EPROTO);
        fail_conn(w, L, c, BENCH_ERR_CONNECT, -1, now);
        return;
    }
    if (cfg->tls != NULL) {
        c->state = HANDSHAKING;
        handshake(w, L, c, true, now);
        return;
    }
    opened(w, L, c, now);
}

/* --tls: the handshake, a step each time the socket is ready for what TLS waits for. */
static void handshake(bench_worker *w, tcp_loop *L, conn *c, bool first, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    int rc =
        first ? sockit_tls_wrap(c->sock, cfg->tls, cfg->tls_name) : sockit_tls_handshake(c->sock);
    if (rc == SOCKIT_EWOULDBLOCK) {
        set_events(c, sockit_tls_wants(c->sock) == SOCKIT_EVENT_WRITE);
        return;
    }
    if (rc < 0) {
        /* A certificate that does not verify will not verify on the next try. */
        bench_count_error_why(w, BENCH_ERR_CONNECT, "%s", sockit_errmsg());
        if (rc == SOCKIT_ETLSVERIFY || rc == SOCKIT_ETLS)
            bench_give_up_if_unreached(w, EPROTO);
        fail_conn(w, L, c, BENCH_ERR_CONNECT, -1, now);
        return;
    }
    opened(w, L, c, now);
}

/* Connected (and, with --tls, the handshake done): the exchange starts. */
static void opened(bench_worker *w, tcp_loop *L, conn *c, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    c->state = OPEN;
    atomic_store_explicit(&w->shared->ever_connected, true, memory_order_relaxed);
    if (cfg->mode == BENCH_CONNECT) {
        /* The message is small: one send, or the exchange counts as failed. */
        ssize_t n = conn_send(c, cfg->message, cfg->message_len);
        if (n < 0 || (size_t)n != cfg->message_len) {
            int e = n < 0 ? errno : EAGAIN;
            fail_conn(w, L, c, bench_error_of(e), e, now);
            return;
        }
        w->stats.bytes_out += (uint64_t)n;
        set_events(c, false); /* now the reply, then the EOF */
        return;
    }
    if (w->rate > 0) {
        /* Requests that fell due while the slot was down and are already older
         * than --timeout would only time out again: they are lost. */
        uint64_t timeout_ns = (uint64_t)(cfg->timeout * 1e9);
        while (c->k_done < c->k_due && now - origin_ns(w, L, c, c->k_done) > timeout_ns) {
            c->k_done++;
            w->outstanding--;
            bench_count_error(w, BENCH_ERR_TIMEOUT, ETIMEDOUT);
        }
        c->k_open = c->k_done;
        c->issued = c->k_due - c->k_open;
    } else {
        top_up(w, L, c, now);
    }
    flush(w, L, c, now);
}

static void on_io(sockit_io *io, int events, void *user)
{
    (void)io;
    conn *c = user;
    tcp_loop *L = c->L;
    bench_worker *w = L->w;
    const bench_config *cfg = cfg_of(w);
    uint64_t now = bench_loop_now(w);
    if (cfg->mode == BENCH_STREAM && now >= w->shared->end_ns) {
        sockit_loop_stop(w->loop); /* nothing written after the window counts */
        return;
    }
    if (c->state == CONNECTING) {
        on_connected(w, L, c, false, now);
    } else if (c->state == TUNNELING) {
        tunnel(w, L, c, now);
    } else if (c->state == HANDSHAKING) {
        handshake(w, L, c, false, now);
    } else {
        /* An error or hang-up is reported as both: the recv or send meets it. */
        if (events & SOCKIT_EVENT_READ)
            on_readable(w, L, c, now);
        if (c->state == OPEN && (events & SOCKIT_EVENT_WRITE) && cfg->mode != BENCH_CONNECT)
            flush(w, L, c, now);
    }
    bench_settle(w);
}

/* Open loop: request g of this worker is due; it goes to slot g % n. */
static void tcp_issue_due(bench_worker *w, uint64_t g, uint64_t due, uint64_t now)
{
    (void)due; /* origin_ns computes it again from the slot's count */
    const bench_config *cfg = cfg_of(w);
    tcp_loop *L = w->state;
    conn *c = &L->conns[g % (uint64_t)L->n];
    c->k_due++;
    w->outstanding++;
    if (cfg->mode == BENCH_CONNECT) {
        if (c->state == IDLE && c->retry_ns <= now)
            start_conn(w, L, c, now);
    } else if (c->state == OPEN) {
        c->issued = c->k_due - c->k_open;
        if (!c->want_out) /* else WRITE will say when it can take more */
            flush(w, L, c, now);
    }
}

/* Timeouts, reconnects, and connect-mode slots whose back-off has passed. */
static uint64_t tcp_sweep(bench_worker *w, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    tcp_loop *L = w->state;
    uint64_t timeout_ns = (uint64_t)(cfg->timeout * 1e9);
    for (long i = 0; i < L->n; i++) {
        conn *c = &L->conns[i];
        if (c->state == IDLE) {
            if (c->retry_ns > now || w->draining)
                continue;
            if (cfg->mode != BENCH_CONNECT)
                start_conn(w, L, c, now);
            else if (c->k_due > c->k_done || (w->rate == 0 && exchange_wanted(w, c)))
                start_conn(w, L, c, now);
        } else if (c->state == CONNECTING || c->state == TUNNELING || c->state == HANDSHAKING) {
            if (now - c->started_ns > timeout_ns)
                connect_failed(w, L, c, ETIMEDOUT, now);
        } else if (cfg->mode == BENCH_CONNECT) {
            if (now - c->started_ns > timeout_ns)
                fail_conn(w, L, c, BENCH_ERR_TIMEOUT, ETIMEDOUT, now);
        } else if (cfg->mode == BENCH_ECHO && c->k_done < c->k_open + c->issued) {
            uint64_t t0 = origin_ns(w, L, c, c->k_done);
            if (now > t0 && now - t0 > timeout_ns)
                fail_conn(w, L, c, BENCH_ERR_TIMEOUT, ETIMEDOUT, now);
        }
    }
    /* Often while connections wait to reconnect, else a few times per timeout. */
    return L->idle > 0 && L->sweep_every > 10000000u ? 10000000u : L->sweep_every;
}

static long tcp_connecting(bench_worker *w)
{
    const tcp_loop *L = w->state;
    long n = 0;
    for (long i = 0; i < L->n; i++)
        n += L->conns[i].state == CONNECTING || L->conns[i].state == TUNNELING ||
             L->conns[i].state == HANDSHAKING;
    return n;
}

static int tcp_start(bench_worker *w, uint64_t now)
{
    const bench_config *cfg = cfg_of(w);
    bench_shared *sh = w->shared;
    tcp_loop *L = calloc(1, sizeof *L);
    w->state = L;
    if (L == NULL) {
        bench_count_error(w, BENCH_ERR_OTHER, ENOMEM);
        return -1;
    }
    L->w = w;
    L->n = w->conns;
    L->conns = calloc((size_t)L->n, sizeof *L->conns);
    L->scratch_len = sh->pattern->window;
    L->scratch = malloc(L->scratch_len);
    L->sent_ns = calloc((size_t)L->n * cfg->pipeline, sizeof *L->sent_ns);
    if (L->conns == NULL || L->scratch == NULL || L->sent_ns == NULL) {
        bench_count_error(w, BENCH_ERR_OTHER, ENOMEM);
        return -1;
    }
    L->sweep_every = (uint64_t)(cfg->timeout * 1e9 / 4);
    if (L->sweep_every > 50000000u)
        L->sweep_every = 50000000u;
    w->first_sweep_ns = L->sweep_every;
    L->idle = L->n;
    for (long i = 0; i < L->n; i++) {
        conn *c = &L->conns[i];
        c->fd = -1;
        c->L = L;
        c->index = (uint32_t)i;
        c->seed = bench_seed(sh->pattern, (uint64_t)(w->first_conn + i) * 40503u);
        c->state = IDLE;
    }
    for (long i = 0; i < L->n; i++) {
        conn *c = &L->conns[i];
        if (cfg->mode != BENCH_CONNECT || (w->rate == 0 && exchange_wanted(w, c)))
            start_conn(w, L, c, now);
    }
    return 0;
}

static void tcp_cleanup(bench_worker *w)
{
    tcp_loop *L = w->state;
    if (L == NULL)
        return;
    for (long i = 0; L->conns != NULL && i < L->n; i++) {
        sockit_io_close(L->conns[i].io);
        if (L->conns[i].sock != NULL)
            sockit_close(L->conns[i].sock);
        else if (L->conns[i].fd >= 0)
            close(L->conns[i].fd);
    }
    free(L->conns);
    free(L->scratch);
    free(L->sent_ns);
    free(L);
    w->state = NULL;
}

const bench_transport bench_tcp_transport = {
    .start = tcp_start,
    .issue_due = tcp_issue_due,
    .sweep = tcp_sweep,
    .connecting = tcp_connecting,
    .cleanup = tcp_cleanup,
};
