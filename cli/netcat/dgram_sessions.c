/* listen -u -k on the loop (dgram_sessions.h): stdin, stdout and one socket, as in
 * dgram.c, plus the session table (sessions.h). One datagram is in flight each way:
 * a received one on its way to stdout (the socket is not read meanwhile), and a stdin
 * one on its way to every session, walked in arrival order from a cursor, so a send
 * that would block goes on from the same session once the socket is writable.
 * Expiry costs nothing per datagram: one timer is due when the session heard from
 * longest ago expires; a session that is heard from only moves to the tail of the
 * activity list, and a timer that finds the head still alive starts again for it.
 * Every callback ends in update(), which decides what to watch next. */
#include "dgram_sessions.h"

#include "dgram.h"
#include "hexdump.h"
#include "netio.h"
#include "netlog.h"
#include "sessions.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct hub {
    sockit *s;
    const relay_config *cfg;
    sessions *table;
    char in[DGRAM_MAX]; /* stdin, cut into datagrams */
    size_t in_len;
    bool stdin_eof;
    size_t cur_len;       /* the datagram being broadcast (at in[0]); 0 for none */
    uint64_t cur_seq;     /* its number; sessions with a later joined skip it */
    session *cursor;      /* the next session it goes to */
    bool blocked;         /* the socket would not take it: wait until writable */
    char out[DGRAM_RECV]; /* one received datagram on its way to stdout */
    size_t out_pos, out_len;
    bool stdout_gone;
    bool unnamed_seen;           /* a Unix sender without a name was said */
    long long full_drops;        /* datagrams of new peers dropped with -m reached */
    double full_said, rate_said; /* loop times of the last such messages; < 0 never */
    const char *why;             /* why the loop was stopped */
    bool failed;
    sockit_loop *loop;
    netio *in_io, *out_io;
    sockit_io *io;
    sockit_timer *expiry; /* the oldest session's end */
    sockit_timer *first;  /* -w */
    sockit_signal *sigint, *sigterm;
    unsigned long long hex_in, hex_out;
    long long bytes_in, bytes_out;
} hub;

static void end(hub *h, const char *why)
{
    if (h->why == NULL)
        h->why = why;
    sockit_loop_stop(h->loop);
}

static void end_session(hub *h, session *s, const char *reason)
{
    netlog_closed(s->name, reason);
    if (h->cursor == s)
        h->cursor = s->next;
    sessions_remove(h->table, s);
}

/* Ends the sessions whose peers were silent for -i, then sets the timer for the
 * next one. Only expired sessions are looked at, plus the one that is not. */
static void expire(hub *h)
{
    double idle = h->cfg->idle, now = sockit_loop_now(h->loop);
    session *s;
    while (idle >= 0 && (s = sessions_oldest(h->table)) != NULL && now - s->last >= idle - 1e-6)
        end_session(h, s, "idle");
    if (idle < 0 || (s = sessions_oldest(h->table)) == NULL) {
        sockit_timer_stop(h->expiry);
        return;
    }
    double left = s->last + idle - now;
    sockit_timer_start(h->expiry, left > 0 ? left : 0, 0);
}

/* Sends the current datagram to the sessions from the cursor on. Returns false
 * when the socket would block (the cursor stays on that session). */
static bool send_round(hub *h)
{
    while (h->cursor != NULL) {
        session *s = h->cursor;
        if (s->joined > h->cur_seq) { /* it came after this datagram was under way */
            h->cursor = s->next;
            continue;
        }
        ssize_t n = sockit_sendto_addr(h->s, h->in, h->cur_len, MSG_DONTWAIT, &s->addr);
        bool is_unix = sockit_addr_family(&s->addr) == AF_UNIX;
        if (n == SOCKIT_EWOULDBLOCK && !is_unix)
            return false; /* our send buffer is full: writable again soon */
        h->cursor = s->next;
        if (n == SOCKIT_EWOULDBLOCK) {
            /* A Unix peer whose queue is full (it does not read): the socket would
             * show writable at once, so waiting would spin. It loses the datagram,
             * as a UDP receiver that does not read would. */
            if (!s->warned)
                netlog_warn("%s: its receive queue is full; datagrams to it are dropped "
                            "while it does not read",
                            s->name);
            s->warned = true;
        } else if (n < 0) {
            netlog_warn("%s", sockit_errmsg());
            end_session(h, s, "error");
        } else {
            if (h->cfg->hexdump)
                hexdump(stderr, '>', &h->hex_out, h->in, h->cur_len);
            h->bytes_out += n;
        }
    }
    return true;
}

/* Broadcasts what stdin has, datagram after datagram, while there are sessions. */
static void broadcast(hub *h)
{
    for (;;) {
        if (h->cur_len == 0) {
            size_t len = dgram_next(h->in, h->in_len, sizeof h->in, h->stdin_eof);
            if (len == 0)
                break;
            /* A session past its time must not get it because the timer is late. */
            expire(h);
            if (sessions_count(h->table) == 0)
                break; /* held, with stdin, until someone sends */
            h->cur_len = len;
            h->cur_seq++;
            h->cursor = sessions_first(h->table);
        }
        h->blocked = !send_round(h);
        if (h->blocked)
            return;
        memmove(h->in, h->in + h->cur_len, h->in_len - h->cur_len);
        h->in_len -= h->cur_len;
        h->cur_len = 0;
    }
}

/* True (said at most once a second) when a drop should be said now. */
static bool say_now(hub *h, double *said)
{
    double now = sockit_loop_now(h->loop);
    if (*said >= 0 && now - *said < 1)
        return false;
    *said = now;
    return true;
}

/* A new peer's first datagram: its session, or NULL when it is dropped. */
static session *admit(hub *h, const sockit_addr *from)
{
    gate *g = h->cfg->gate;
    char name[CLI_PEER_NAME_MAX];
    cli_addr_text(from, name, sizeof name);
    if (sessions_count(h->table) >= (size_t)h->cfg->max_clients) {
        h->full_drops++;
        if (say_now(h, &h->full_said))
            netlog_full(name, h->cfg->max_clients, h->full_drops);
        return NULL;
    }
    access_ip ip;
    double now = sockit_loop_now(h->loop);
    if (g != NULL && g->rate != NULL && access_ip_of(from, &ip) &&
        !ratelimit_take(g->rate, &ip, now)) {
        char rate[64];
        snprintf(rate, sizeof rate, "%ld/%g", g->rate_n, g->rate_secs);
        if (say_now(h, &h->rate_said))
            netlog_denied(name, "rate", rate, true);
        return NULL;
    }
    session *s = sessions_add(h->table, from, now);
    if (s == NULL) {
        netlog_warn("out of memory for a session (%s)", name);
        return NULL;
    }
    memcpy(s->name, name, sizeof s->name);
    s->joined = h->cur_seq + 1;
    netlog_connected(s->name, true, NULL);
    if (!sockit_timer_active(h->expiry))
        expire(h);
    return s;
}

static void receive(hub *h)
{
    sockit_addr from;
    ssize_t n = sockit_recvfrom(h->s, h->out, sizeof h->out, MSG_DONTWAIT, &from);
    if (n == SOCKIT_EWOULDBLOCK)
        return;
    if (n < 0) {
        /* Truncated (a Unix datagram over 64 KiB) or an error the kernel queued:
         * one datagram lost, the others still served. */
        netlog_warn("%s%s", sockit_errmsg(), n == SOCKIT_ETRUNCATED ? " (dropped)" : "");
        return;
    }
    if (h->cfg->gate != NULL && !gate_admit_datagram(h->cfg->gate, &from))
        return;
    if (dgram_answerable(&from)) {
        session *s = sessions_find(h->table, &from);
        if (s != NULL)
            sessions_touch(h->table, s, sockit_loop_now(h->loop));
        else if (admit(h, &from) == NULL)
            return;
    } else if (!h->unnamed_seen) {
        netlog_connected("unix:(unnamed)", true, NULL);
        h->unnamed_seen = true;
    }
    sockit_timer_stop(h->first);
    if (h->cfg->hexdump)
        hexdump(stderr, '<', &h->hex_in, h->out, (size_t)n);
    h->out_pos = 0;
    h->out_len = (size_t)n;
    h->bytes_in += n;
}

/* After every event: what to watch. */
static void update(hub *h)
{
    if (h->why != NULL) {
        sockit_loop_stop(h->loop);
        return;
    }
    if (!h->blocked)
        broadcast(h);
    bool held = h->cur_len > 0 || dgram_next(h->in, h->in_len, sizeof h->in, h->stdin_eof) > 0;
    netio_want(h->in_io, !h->stdin_eof && !held && sessions_count(h->table) > 0);
    netio_want(h->out_io, h->out_len > 0);
    sockit_io_start(h->io, (h->out_len == 0 ? SOCKIT_EVENT_READ : 0) |
                               (h->blocked ? SOCKIT_EVENT_WRITE : 0));
}

static void on_stdin(void *user)
{
    hub *h = user;
    ssize_t n = netio_read_stdin(h->in + h->in_len, sizeof h->in - h->in_len);
    if (n > 0)
        h->in_len += (size_t)n;
    else if (n == 0)
        h->stdin_eof = true;
    update(h);
}

static void on_stdout(void *user)
{
    hub *h = user;
    ssize_t n = netio_write_stdout(h->out + h->out_pos, h->out_len - h->out_pos);
    if (n > 0)
        h->out_pos += (size_t)n;
    else if (n == 0) {
        h->stdout_gone = true;
        end(h, "stdout");
    }
    if (h->out_pos == h->out_len)
        h->out_pos = h->out_len = 0;
    update(h);
}

static void on_socket(sockit_io *io, int events, void *user)
{
    (void)io;
    hub *h = user;
    if (events & SOCKIT_EVENT_WRITE)
        h->blocked = false; /* update()'s broadcast() goes on from the cursor */
    if ((events & SOCKIT_EVENT_READ) && h->out_len == 0)
        receive(h);
    update(h);
}

static void on_expiry(sockit_timer *t, void *user)
{
    (void)t;
    hub *h = user;
    expire(h);
    update(h);
}

static void on_first(sockit_timer *t, void *user)
{
    (void)t;
    hub *h = user;
    h->failed = true;
    cli_fail("no datagram within %g s (-w)", h->cfg->wait);
    end(h, "timeout");
}

static void on_signal(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    (void)signum;
    (void)count;
    end(user, "signal");
}

/* Sets up the loop and its watchers; returns false (said) on failure. */
static bool open_loop(hub *h)
{
    h->loop = sockit_loop_new(NULL);
    if (h->loop == NULL)
        return false;
    h->in_io = netio_new(h->loop, STDIN_FILENO, SOCKIT_EVENT_READ, on_stdin, h);
    h->out_io = netio_new(h->loop, STDOUT_FILENO, SOCKIT_EVENT_WRITE, on_stdout, h);
    h->io = sockit_io_new_socket(h->loop, h->s, on_socket, h);
    h->expiry = sockit_timer_new(h->loop, on_expiry, h);
    h->first = sockit_timer_new(h->loop, on_first, h);
    h->sigint = sockit_signal_new(h->loop, on_signal, h);
    h->sigterm = sockit_signal_new(h->loop, on_signal, h);
    return h->in_io != NULL && h->out_io != NULL && h->io != NULL && h->expiry != NULL &&
           h->first != NULL && h->sigint != NULL && h->sigterm != NULL &&
           sockit_signal_start(h->sigint, SIGINT) == 0 &&
           sockit_signal_start(h->sigterm, SIGTERM) == 0;
}

static void close_loop(hub *h)
{
    netio_close(h->in_io);
    netio_close(h->out_io);
    sockit_io_close(h->io);
    sockit_timer_close(h->expiry);
    sockit_timer_close(h->first);
    sockit_signal_close(h->sigint);
    sockit_signal_close(h->sigterm);
    sockit_loop_close(h->loop);
}

int dgram_sessions_serve(sockit *s, const relay_config *cfg)
{
    hub *h = calloc(1, sizeof *h);
    sessions *table = sessions_new(cfg->max_clients > 0 ? (size_t)cfg->max_clients : 1);
    if (h == NULL || table == NULL) {
        free(h);
        sessions_free(table);
        sockit_close(s);
        return cli_fail("out of memory");
    }
    netio_init();
    sockit_setblocking(s, false);
    h->s = s;
    h->cfg = cfg;
    h->table = table;
    h->full_said = h->rate_said = -1;
    if (open_loop(h)) {
        if (cfg->wait >= 0)
            sockit_timer_start(h->first, cfg->wait, 0);
        update(h);
        if (sockit_loop_run(h->loop) < 0) {
            netlog_warn("%s", sockit_errmsg());
            h->failed = true;
        }
    } else {
        cli_fail_lib();
        h->failed = true;
    }
    const char *why = h->why != NULL ? h->why : "error";
    session *left;
    while ((left = sessions_first(h->table)) != NULL)
        end_session(h, left, why);
    close_loop(h);
    sockit_close(s);
    sessions_free(h->table);
    netlog_exit(why, h->bytes_in, h->bytes_out, -1);
    int status = h->failed ? CLI_FAIL : CLI_OK;
    free(h);
    return status;
}
