/* Accepting on the loop. The listener is level-triggered: while the backlog holds
 * connections it stays readable, so draining it in one callback costs one wait for
 * a whole burst, and stopping the watcher is all it takes to pause.
 *
 * Out of descriptors (EMFILE/ENFILE), the waiting clients are told at once rather
 * than left in the backlog: a spare descriptor kept for this is given up, each
 * pending connection is accepted and closed with it (its client reads end of
 * stream), and the spare is taken back, as the library's servers do. The backlog
 * is then empty and the listener quiet, so nothing spins. Only if that fails too
 * does accepting pause for a back-off. */
#include "accepter.h"

#include "netlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EMFILE_BACKOFF 100  /* ms without accepting when even shedding fails */
#define SHED_MAX       4096 /* one pass at most, so a flood cannot hold the loop */

/* A connection in its TLS handshake: watched for what TLS waits for, and timed. */
typedef struct handshake handshake;
struct handshake {
    accepter *a;
    sockit *s;
    sockit_io *io;
    sockit_timer *timer;
    sockit_addr peer;
    handshake *prev, *next;
};

struct accepter {
    sockit_loop *loop;
    sockit *listener;
    sockit_io *io;
    sockit_timer *backoff; /* running while short of descriptors */
    long count, max;
    bool short_of_fds; /* said once per shortage, not once per retry */
    int spare;         /* /dev/null, given up to shed the backlog; -1 while out */
    long shed;         /* clients closed unserved during this shortage */
    accepter_fn cb;
    void *user;
    sockit_tls_ctx *tls; /* NULL: plain */
    gate *gate;          /* NULL: everyone comes in */
    double tls_timeout;
    handshake *handshakes;
};

static void watch(accepter *a)
{
    bool on = a->count < a->max && !sockit_timer_active(a->backoff);
    sockit_io_start(a->io, on ? SOCKIT_EVENT_READ : 0);
}

/* Unlinks h and frees its watchers; the socket is the caller's. */
static void handshake_free(handshake *h)
{
    accepter *a = h->a;
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        a->handshakes = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    sockit_io_close(h->io);
    sockit_timer_close(h->timer);
    free(h);
}

/* A handshake that will not finish: said, closed, not counted. */
static void handshake_failed(handshake *h, const char *why)
{
    accepter *a = h->a;
    netlog_warn("%s", why);
    sockit_close(h->s);
    handshake_free(h);
    accepter_release(a);
}

/* The handshake is done: the connection goes to the callback, blocking as an
 * accepted one is. */
static void handshake_done(handshake *h)
{
    accepter *a = h->a;
    sockit *s = h->s;
    sockit_addr peer = h->peer;
    handshake_free(h); /* its watcher goes first: the callback watches the same fd */
    sockit_setblocking(s, true);
    a->cb(s, &peer, a->user);
}

/* One step of h's handshake: done, waiting again, or failed. */
static void handshake_step(handshake *h, int rc)
{
    if (rc == 0) {
        handshake_done(h);
    } else if (rc == SOCKIT_EWOULDBLOCK) {
        int want = sockit_tls_wants(h->s);
        sockit_io_start(h->io, want != 0 ? want : SOCKIT_EVENT_READ);
    } else {
        handshake_failed(h, sockit_errmsg());
    }
}

static void on_handshake_io(sockit_io *io, int events, void *user)
{
    (void)io;
    (void)events;
    handshake *h = user;
    handshake_step(h, sockit_tls_handshake(h->s));
}

static void on_handshake_timeout(sockit_timer *t, void *user)
{
    (void)t;
    handshake *h = user;
    char name[CLI_PEER_NAME_MAX], why[CLI_PEER_NAME_MAX + 128];
    snprintf(why, sizeof why, "tls handshake with %s: not done within %g s, closed",
             cli_peer_name(h->s, &h->peer, name, sizeof name), h->a->tls_timeout);
    handshake_failed(h, why);
}

/* Starts the server handshake of c on the loop. */
static void handshake_start(accepter *a, sockit *c, const sockit_addr *peer)
{
    handshake *h = calloc(1, sizeof *h);
    if (h != NULL) {
        h->io = sockit_io_new_socket(a->loop, c, on_handshake_io, h);
        h->timer = sockit_timer_new(a->loop, on_handshake_timeout, h);
    }
    if (h == NULL || h->io == NULL || h->timer == NULL) {
        netlog_warn("out of memory for a connection");
        if (h != NULL) {
            sockit_io_close(h->io);
            sockit_timer_close(h->timer);
            free(h);
        }
        sockit_close(c);
        accepter_release(a);
        return;
    }
    h->a = a;
    h->s = c;
    h->peer = *peer;
    h->next = a->handshakes;
    if (a->handshakes != NULL)
        a->handshakes->prev = h;
    a->handshakes = h;
    sockit_timer_start(h->timer, a->tls_timeout, 0);
    sockit_setblocking(c, false);
    handshake_step(h, sockit_tls_wrap(c, a->tls, NULL));
}

/* Closes every pending connection with the spare descriptor; false if not even
 * one could be accepted (no spare, or the shortage is system-wide). */
static bool shed_backlog(accepter *a)
{
    if (a->spare < 0)
        return false;
    close(a->spare);
    a->spare = -1;
    long n = 0;
    sockit *c;
    while (n < SHED_MAX && (c = sockit_accept(a->listener, NULL)) != NULL) {
        sockit_close(c);
        n++;
    }
    a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    a->shed += n;
    return n > 0 || sockit_errcode() == SOCKIT_EWOULDBLOCK;
}

static void on_listener(sockit_io *io, int events, void *user)
{
    (void)io;
    (void)events;
    accepter *a = user;
    while (a->count < a->max) {
        sockit_addr peer;
        sockit *c = sockit_accept(a->listener, &peer);
        if (c == NULL) {
            int code = sockit_errcode();
            if (code == -EMFILE || code == -ENFILE) {
                if (!a->short_of_fds)
                    netlog_warn("%s: clients that cannot be served are closed until "
                                "descriptors free up",
                                sockit_errmsg());
                a->short_of_fds = true;
                if (!shed_backlog(a))
                    sockit_timer_start(a->backoff, EMFILE_BACKOFF / 1000.0, 0);
            }
            /* EAGAIN: the backlog is empty. Anything else (ECONNABORTED and the
             * like) is a client that is gone: the next readiness goes on. */
            break;
        }
        if (a->short_of_fds && a->shed > 0)
            netlog_warn("descriptors free again: %ld clients were closed unserved", a->shed);
        a->short_of_fds = false;
        a->shed = 0;
        if (a->gate != NULL && !gate_admit(a->gate, &peer, sockit_loop_now(a->loop))) {
            gate_refuse(c);
            continue;
        }
        a->count++;
        if (a->tls != NULL)
            handshake_start(a, c, &peer);
        else
            a->cb(c, &peer, a->user);
    }
    watch(a);
}

static void on_backoff(sockit_timer *t, void *user)
{
    (void)t;
    watch(user);
}

accepter *accepter_new(sockit_loop *loop, sockit *listener, long max, accepter_fn cb, void *user)
{
    accepter *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    *a = (accepter){.loop = loop, .listener = listener, .max = max, .cb = cb, .user = user};
    a->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sockit_setblocking(listener, false);
    a->io = sockit_io_new_socket(loop, listener, on_listener, a);
    a->backoff = sockit_timer_new(loop, on_backoff, a);
    if (a->io == NULL || a->backoff == NULL) {
        accepter_close(a);
        return NULL;
    }
    watch(a);
    return a;
}

void accepter_release(accepter *a)
{
    if (a->count-- == a->max)
        watch(a);
}

void accepter_tls(accepter *a, sockit_tls_ctx *ctx, double timeout)
{
    a->tls = ctx;
    a->tls_timeout = timeout;
}

void accepter_gate(accepter *a, gate *g) { a->gate = g; }

void accepter_close(accepter *a)
{
    if (a == NULL)
        return;
    while (a->handshakes != NULL) {
        sockit *s = a->handshakes->s;
        handshake_free(a->handshakes);
        sockit_close(s);
    }
    sockit_io_close(a->io);
    sockit_timer_close(a->backoff);
    if (a->spare >= 0)
        close(a->spare);
    free(a);
}
