/* listen --broker and --chat: a hub, as ncat's. What a client sends goes to every
 * other client, in whole read chunks (--chat: whole lines, each prefixed with its
 * sender), so two senders' bytes never interleave mid-chunk. Each client has its
 * own output queue, bounded by BROKER_QUEUE: what its socket does not take at once
 * waits there, and a client whose queue would overflow is disconnected (said on
 * stderr and in --json) instead of slowing the others down or losing their bytes.
 * stdin and stdout are not used. */
#include "relay.h"

#include "accepter.h"
#include "hexdump.h"
#include "netlog.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define BROKER_QUEUE  (1024 * 1024) /* bytes waiting for one client, at most */
#define BROKER_READ   65536         /* one read from a client */
#define CHAT_LINE_MAX 16384         /* a partial line held per client; longer is cut */
#define CHAT_MSG      (BROKER_READ + CHAT_LINE_MAX + 2 * CLI_PEER_NAME_MAX)

typedef struct broker broker;
typedef struct client client;

struct client {
    broker *b;
    sockit *s;
    sockit_io *io;
    sockit_timer *idle; /* -i only */
    client *prev, *next;
    char *q; /* the output queue: bytes [qpos, qlen) wait for the socket */
    size_t qpos, qlen, qcap;
    char *line; /* --chat: the line being received, line_len bytes */
    size_t line_len;
    double active;
    int rd_need; /* what the next recv waits for: READ, or TLS's want after a */
    int wr_need; /* would-block (a TLS recv may wait for WRITE, a send for READ) */
    bool in_eof;
    char name[CLI_PEER_NAME_MAX];
};

struct broker {
    const relay_config *cfg;
    sockit_loop *loop;
    sockit_signal *sigint, *sigterm;
    accepter *acc;
    sockit_timer *first; /* -w */
    client *clients;
    char buf[BROKER_READ];
    char msg[CHAT_MSG]; /* --chat: prefixed lines on their way */
    size_t msg_len;
    unsigned long long hex_in;
    long long bytes_in, bytes_out;
    const char *why;
    bool failed;
};

static void end(broker *b, const char *why)
{
    if (b->why == NULL)
        b->why = why;
    sockit_loop_stop(b->loop);
}

static size_t queued(const client *c) { return c->qlen - c->qpos; }

static void watch(client *c)
{
    int ev = (c->in_eof ? 0 : c->rd_need) | (queued(c) > 0 ? c->wr_need : 0);
    sockit_io_start(c->io, ev);
}

/* After a would-block: what the socket must become for the call to go on. */
static int need_after_block(const sockit *s, int dflt)
{
    int want = sockit_tls_wants(s);
    return want != 0 ? want : dflt;
}

static void drop(client *c, const char *reason)
{
    broker *b = c->b;
    if (reason != NULL)
        netlog_closed(c->name, reason);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        b->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    sockit_io_close(c->io);
    sockit_timer_close(c->idle);
    sockit_close(c->s);
    free(c->q);
    free(c->line);
    free(c);
    accepter_release(b->acc);
}

/* Sends what c's queue holds, as much as the socket takes. Returns false if c was
 * dropped. */
static bool flush(client *c)
{
    while (queued(c) > 0) {
        /* After a TLS would-block the queue still starts with the same bytes, and
         * only grows: the retry is the same write, at least as long. */
        ssize_t n = sockit_send(c->s, c->q + c->qpos, queued(c), MSG_DONTWAIT);
        if (n == SOCKIT_EWOULDBLOCK) {
            c->wr_need = need_after_block(c->s, SOCKIT_EVENT_WRITE);
            break;
        }
        c->wr_need = SOCKIT_EVENT_WRITE;
        if (n < 0) {
            drop(c, n == -ECONNRESET || n == -EPIPE ? "reset" : "error");
            return false;
        }
        c->qpos += (size_t)n;
        c->b->bytes_out += n;
        c->active = sockit_loop_now(c->b->loop);
    }
    if (queued(c) == 0)
        c->qpos = c->qlen = 0;
    if (queued(c) == 0 && c->in_eof) {
        drop(c, "peer");
        return false;
    }
    watch(c);
    return true;
}

/* Queues len bytes for c, whole, or disconnects c if they do not fit. Returns
 * false if c was dropped. */
static bool enqueue(client *c, const char *data, size_t len)
{
    if (queued(c) + len > BROKER_QUEUE) {
        netlog_dropped(c->name, (long long)queued(c), BROKER_QUEUE);
        drop(c, NULL);
        return false;
    }
    if (c->qlen + len > c->qcap && c->qpos > 0) {
        memmove(c->q, c->q + c->qpos, queued(c));
        c->qlen -= c->qpos;
        c->qpos = 0;
    }
    if (c->qlen + len > c->qcap) {
        size_t cap = c->qcap ? c->qcap : BROKER_READ;
        while (cap < c->qlen + len)
            cap *= 2;
        char *q = realloc(c->q, cap);
        if (q == NULL) {
            netlog_warn("out of memory for %s's output queue (disconnected)", c->name);
            drop(c, NULL);
            return false;
        }
        c->q = q;
        c->qcap = cap;
    }
    memcpy(c->q + c->qlen, data, len);
    c->qlen += len;
    return true;
}

/* data to every client but from. A client with nothing queued is sent to at once:
 * only what its socket does not take is queued. */
static void deliver(broker *b, const client *from, const char *data, size_t len)
{
    for (client *c = b->clients, *next; c != NULL; c = next) {
        next = c->next;
        if (c == from)
            continue;
        size_t sent = 0;
        if (queued(c) == 0) {
            /* What a would-block leaves is queued whole, so the retry starts with the
             * same bytes (TLS's rule). */
            ssize_t n = sockit_send(c->s, data, len, MSG_DONTWAIT);
            c->wr_need = n == SOCKIT_EWOULDBLOCK ? need_after_block(c->s, SOCKIT_EVENT_WRITE)
                                                 : SOCKIT_EVENT_WRITE;
            if (n < 0 && n != SOCKIT_EWOULDBLOCK) {
                drop(c, n == -ECONNRESET || n == -EPIPE ? "reset" : "error");
                continue;
            }
            if (n > 0) {
                sent = (size_t)n;
                b->bytes_out += n;
                c->active = sockit_loop_now(b->loop);
            }
        }
        if (sent < len && enqueue(c, data + sent, len - sent))
            watch(c);
    }
}

static void chat_flush(broker *b, const client *from)
{
    if (b->msg_len > 0)
        deliver(b, from, b->msg, b->msg_len);
    b->msg_len = 0;
}

/* The line c has gathered, as "<name> line\n", into the message on its way. */
static void chat_line(client *c)
{
    broker *b = c->b;
    size_t name_len = strlen(c->name);
    if (b->msg_len + name_len + 3 + c->line_len + 1 > sizeof b->msg)
        chat_flush(b, c);
    char *m = b->msg + b->msg_len;
    m[0] = '<';
    memcpy(m + 1, c->name, name_len);
    memcpy(m + 1 + name_len, "> ", 2);
    memcpy(m + 3 + name_len, c->line, c->line_len);
    size_t n = 3 + name_len + c->line_len;
    if (c->line_len == 0 || c->line[c->line_len - 1] != '\n')
        m[n++] = '\n'; /* a line cut at CHAT_LINE_MAX, or the last one at EOF */
    b->msg_len += n;
    c->line_len = 0;
}

static void chat_in(client *c, const char *data, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(data + i, '\n', n - i);
        size_t seg = nl != NULL ? (size_t)(nl - (data + i)) + 1 : n - i;
        size_t room = CHAT_LINE_MAX - c->line_len;
        size_t take = seg < room ? seg : room;
        memcpy(c->line + c->line_len, data + i, take);
        c->line_len += take;
        i += take;
        if ((nl != NULL && take == seg) || c->line_len == CHAT_LINE_MAX)
            chat_line(c);
    }
    chat_flush(c->b, c);
}

static void on_readable(client *c)
{
    broker *b = c->b;
    ssize_t n = sockit_recv(c->s, b->buf, sizeof b->buf, MSG_DONTWAIT);
    int need = c->rd_need;
    c->rd_need =
        n == SOCKIT_EWOULDBLOCK ? need_after_block(c->s, SOCKIT_EVENT_READ) : SOCKIT_EVENT_READ;
    if (n > 0 && c->rd_need != need)
        watch(c); /* back from waiting for TLS's other direction */
    if (n == SOCKIT_EWOULDBLOCK) {
        if (c->rd_need != need)
            watch(c); /* TLS waits for the other direction */
        return;
    }
    if (n < 0) {
        drop(c, n == -ECONNRESET ? "reset" : "error");
        return;
    }
    if (n == 0) {
        c->in_eof = true;
        if (c->line_len > 0) {
            chat_line(c);
            chat_flush(b, c);
        }
        flush(c); /* closes it once its queue is empty */
        return;
    }
    if (b->cfg->hexdump)
        hexdump(stderr, '<', &b->hex_in, b->buf, (size_t)n);
    b->bytes_in += n;
    c->active = sockit_loop_now(b->loop);
    if (b->cfg->broker == RELAY_CHAT)
        chat_in(c, b->buf, (size_t)n);
    else
        deliver(b, c, b->buf, (size_t)n);
}

static void on_client(sockit_io *io, int events, void *user)
{
    (void)io;
    client *c = user;
    if (queued(c) > 0 && (events & c->wr_need) && !flush(c))
        return;
    if (!c->in_eof && (events & c->rd_need))
        on_readable(c);
}

static void idle_schedule(client *c)
{
    double left = c->active + c->b->cfg->idle - sockit_loop_now(c->b->loop);
    sockit_timer_start(c->idle, left > 0 ? left : 0, 0);
}

static void on_idle(sockit_timer *t, void *user)
{
    (void)t;
    client *c = user;
    if (sockit_loop_now(c->b->loop) - c->active >= c->b->cfg->idle - 1e-6)
        drop(c, "idle");
    else
        idle_schedule(c); /* bytes moved since: what is left of -i */
}

static void on_accept(sockit *s, const sockit_addr *addr, void *user)
{
    broker *b = user;
    client *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->io = sockit_io_new_socket(b->loop, s, on_client, c);
    if (c != NULL && b->cfg->idle >= 0)
        c->idle = sockit_timer_new(b->loop, on_idle, c);
    if (c != NULL && b->cfg->broker == RELAY_CHAT)
        c->line = malloc(CHAT_LINE_MAX);
    if (c == NULL || c->io == NULL || (b->cfg->idle >= 0 && c->idle == NULL) ||
        (b->cfg->broker == RELAY_CHAT && c->line == NULL)) {
        netlog_warn("out of memory for a connection");
        if (c != NULL) {
            sockit_io_close(c->io);
            sockit_timer_close(c->idle);
            free(c->line);
        }
        free(c);
        sockit_close(s);
        accepter_release(b->acc);
        return;
    }
    c->b = b;
    c->s = s;
    c->rd_need = SOCKIT_EVENT_READ;
    c->wr_need = SOCKIT_EVENT_WRITE;
    /* A chunk the socket took only in part is finished by the next write: Nagle
     * would hold that tail for the receiver's delayed ACK (40 ms a chunk). Unix
     * sockets refuse the option, which is fine. */
    sockit_setsockopt_int(s, IPPROTO_TCP, TCP_NODELAY, 1);
    c->active = sockit_loop_now(b->loop);
    cli_peer_name(s, addr, c->name, sizeof c->name);
    c->next = b->clients;
    if (b->clients != NULL)
        b->clients->prev = c;
    b->clients = c;
    sockit_timer_stop(b->first);
    netlog_connected(c->name, true, s);
    if (c->idle != NULL)
        idle_schedule(c);
    watch(c);
}

static void on_signal(sockit_signal *w, int signum, int count, void *user)
{
    (void)w;
    (void)signum;
    (void)count;
    end(user, "signal");
}

static void on_first_timeout(sockit_timer *t, void *user)
{
    (void)t;
    broker *b = user;
    b->failed = true;
    cli_fail("no client within %g s (-w)", b->cfg->wait);
    end(b, "timeout");
}

static bool start(broker *b, sockit *listener)
{
    b->loop = sockit_loop_new(NULL);
    if (b->loop == NULL)
        return false;
    b->sigint = sockit_signal_new(b->loop, on_signal, b);
    b->sigterm = sockit_signal_new(b->loop, on_signal, b);
    b->first = sockit_timer_new(b->loop, on_first_timeout, b);
    b->acc = accepter_new(b->loop, listener, b->cfg->max_clients, on_accept, b);
    if (b->acc != NULL && b->cfg->tls != NULL)
        accepter_tls(b->acc, b->cfg->tls, b->cfg->tls_timeout);
    if (b->acc != NULL)
        accepter_gate(b->acc, b->cfg->gate);
    if (b->sigint == NULL || b->sigterm == NULL || b->first == NULL || b->acc == NULL ||
        sockit_signal_start(b->sigint, SIGINT) < 0 || sockit_signal_start(b->sigterm, SIGTERM) < 0)
        return false;
    if (b->cfg->wait >= 0)
        sockit_timer_start(b->first, b->cfg->wait, 0);
    return true;
}

int broker_serve(sockit *listener, const relay_config *cfg)
{
    broker *b = calloc(1, sizeof *b);
    if (b == NULL)
        return cli_fail("out of memory");
    b->cfg = cfg;
    signal(SIGPIPE, SIG_IGN);
    if (!start(b, listener)) {
        cli_fail_lib();
        b->failed = true;
        b->why = "error";
    } else if (sockit_loop_run(b->loop) < 0) {
        netlog_warn("%s", sockit_errmsg());
        b->failed = true;
        b->why = "error";
    }
    const char *why = b->why != NULL ? b->why : "done";
    while (b->clients != NULL)
        drop(b->clients, why);
    netlog_exit(why, b->bytes_in, b->bytes_out, -1);
    accepter_close(b->acc);
    sockit_timer_close(b->first);
    sockit_signal_close(b->sigint);
    sockit_signal_close(b->sigterm);
    sockit_loop_close(b->loop);
    int status = b->failed ? CLI_FAIL : CLI_OK;
    free(b);
    return status;
}
