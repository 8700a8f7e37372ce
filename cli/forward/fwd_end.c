/* Opening a forwarding session's side (fwd_end.h). */
#include "fwd_end.h"

#include "child.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct pending_open {
    fwd_end *e;
    fwd_end_fn done;
    void *user;
} pending_open;

static int fail_errno(const fwd_addr *a, const char *what, int err)
{
    cli_fail("forward %s: %s: %s", a->text, what, strerror(err));
    return -1;
}

/* A stream over fd, paused: nothing is read before the relay has both sides
 * (a socket reads whatever its callbacks are, and its bytes would be lost). */
static sockit_stream *paused_stream(sockit_loop *loop, int fd, bool owned)
{
    sockit_stream *st = sockit_stream_new_fd(loop, fd, owned, NULL, NULL);
    sockit_stream_pause(st);
    return st;
}

/* A stream over fd, or over a pump when the loop cannot watch fd (a regular file,
 * /dev/null). reading: the stream is read, else only written. owned: fd is
 * closed at the end, or on failure. */
static sockit_stream *fd_stream(const fwd_open_opts *o, const fwd_addr *a, int fd, bool owned,
                                bool reading, fwd_pump **pump)
{
    sockit_stream *st = paused_stream(o->loop, fd, owned);
    if (st != NULL || sockit_errcode() != -EPERM) {
        if (st == NULL) {
            cli_fail("forward %s: %s", a->text, sockit_errmsg());
            if (owned)
                close(fd);
        }
        return st;
    }
    int loop_fd;
    *pump = fwd_pump_start(fd, owned, reading, &loop_fd);
    if (*pump == NULL) {
        int err = errno;
        if (owned)
            close(fd);
        fail_errno(a, "a thread for it", err);
        return NULL;
    }
    st = paused_stream(o->loop, loop_fd, true);
    if (st == NULL) {
        cli_fail("forward %s: %s", a->text, sockit_errmsg());
        close(loop_fd);
        fwd_pump_finish(*pump, true);
        *pump = NULL;
    }
    return st;
}

static int open_stdio(const fwd_open_opts *o, const fwd_addr *a, fwd_end *e)
{
    e->in = fd_stream(o, a, 0, false, true, &e->pump[0]);
    if (e->in == NULL)
        return -1;
    e->out = fd_stream(o, a, 1, false, false, &e->pump[1]);
    if (e->out == NULL) {
        fwd_end_release(e, true);
        return -1;
    }
    snprintf(e->name, sizeof e->name, "stdio");
    return 0;
}

/* file: is read; create: only written (the relay's side without an in). A FIFO or
 * a terminal is watched by the loop like a pipe (O_NONBLOCK: opening a FIFO does
 * not wait for its other end); a regular file goes through a pump. */
static int open_file(const fwd_open_opts *o, const fwd_addr *a, fwd_end *e)
{
    bool create = a->kind == FWD_CREATE;
    int fd = create ? open(a->value, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0666)
                    : open(a->value, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return fail_errno(a, create ? "create" : "open", errno);
    sockit_stream *st = fd_stream(o, a, fd, true, !create, &e->pump[0]);
    if (st == NULL)
        return -1;
    if (create) {
        e->out = st;
    } else if (e->pump[0] != NULL) {
        e->in = e->out = st; /* the pump discards what comes for the file */
    } else {
        /* Bytes sent to a file that is read go nowhere: a pump into /dev/null. */
        e->in = st;
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        e->out = null < 0 ? NULL : fd_stream(o, a, null, true, false, &e->pump[1]);
        if (e->out == NULL) {
            if (null < 0)
                fail_errno(a, "/dev/null", errno);
            fwd_end_release(e, true);
            return -1;
        }
    }
    snprintf(e->name, sizeof e->name, "%s", a->text);
    return 0;
}

static int open_command(const fwd_open_opts *o, const fwd_addr *a, fwd_end *e)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return fail_errno(a, "socketpair", errno);
    int rc = child_start(a->value, a->kind == FWD_SYSTEM, sv[1], &e->pid);
    close(sv[1]);
    if (rc < 0) {
        close(sv[0]);
        return -1;
    }
    e->in = e->out = paused_stream(o->loop, sv[0], true);
    if (e->in == NULL) {
        cli_fail("forward %s: %s", a->text, sockit_errmsg());
        close(sv[0]);
        child_kill(e->pid, SIGTERM);
        return -1;
    }
    if (o->verbose)
        cli_line("running '%s' (pid %ld)", a->value, (long)e->pid);
    snprintf(e->name, sizeof e->name, "%s", a->text);
    return 0;
}

/* udp: a connected socket, so the kernel keeps other senders out and an ICMP
 * port-unreachable comes back as ECONNREFUSED. Resolved here, blocking. */
static int open_udp(const fwd_open_opts *o, const fwd_addr *a, fwd_end *e)
{
    char port[8];
    snprintf(port, sizeof port, "%d", a->hp.port);
    sockit_addrinfo ai;
    sockit *s = NULL;
    if (sockit_getaddrinfo(a->hp.host, port, AF_UNSPEC, SOCK_DGRAM, 0, &ai, 1) < 0 ||
        (s = sockit_socket(ai.family, SOCK_DGRAM)) == NULL ||
        sockit_connect_addr(s, &ai.addr) < 0 ||
        (e->dg = sockit_datagram_new(o->loop, s, NULL, NULL)) == NULL) {
        cli_fail("forward %s: %s", a->text, sockit_errmsg());
        sockit_close(s);
        return -1;
    }
    sockit_datagram_pause(e->dg); /* until the relay takes it */
    snprintf(e->name, sizeof e->name, "%s", a->text);
    return 0;
}

static void first_datagram(sockit_datagram *d, const char *data, size_t len,
                           const sockit_addr *from, bool truncated, void *user);
static void waiting_closed(sockit_datagram *d, void *user);
static const sockit_datagram_callbacks waiting_callbacks = {.on_datagram = first_datagram,
                                                            .on_close = waiting_closed};
static const sockit_datagram_callbacks no_callbacks = {0};

static void first_datagram(sockit_datagram *d, const char *data, size_t len,
                           const sockit_addr *from, bool truncated, void *user)
{
    (void)truncated;
    pending_open *p = user;
    fwd_end *e = p->e;
    if (from == NULL || from->len == 0)
        return; /* an unnamed sender cannot be answered: wait for one that can */
    e->first = malloc(len > 0 ? len : 1);
    if (e->first == NULL)
        return; /* dropped, as the kernel drops what it has no room for */
    memcpy(e->first, data, len);
    e->first_len = len;
    if (sockit_datagram_connect(d, from) < 0) {
        cli_fail("forward %s: %s", e->addr->text, sockit_errmsg());
        free(e->first);
        e->first = NULL;
        return;
    }
    cli_addr_text(from, e->name, sizeof e->name);
    sockit_datagram_pause(d);
    sockit_datagram_set_callbacks(d, &no_callbacks);
    sockit_datagram_set_user(d, NULL);
    fwd_end_fn done = p->done;
    void *done_user = p->user;
    free(p);
    done(e, true, done_user);
}

static void waiting_closed(sockit_datagram *d, void *user)
{
    (void)d;
    free(user); /* closed while it waited: its pending open goes with it */
}

int fwd_end_wait_datagram(const fwd_open_opts *o, const fwd_addr *a, sockit *bound, fwd_end *e,
                          fwd_end_fn done, void *user)
{
    memset(e, 0, sizeof *e);
    e->addr = a;
    snprintf(e->name, sizeof e->name, "%s", a->text);
    pending_open *p = malloc(sizeof *p);
    if (p == NULL) {
        sockit_close(bound);
        return fail_errno(a, "waiting", ENOMEM);
    }
    *p = (pending_open){.e = e, .done = done, .user = user};
    e->dg = sockit_datagram_new(o->loop, bound, &waiting_callbacks, p);
    if (e->dg == NULL) {
        free(p);
        cli_fail("forward %s: %s", a->text, sockit_errmsg());
        sockit_close(bound);
        return -1;
    }
    return 1;
}

static void connected(sockit_connector *c, sockit_stream *st, int code, void *user)
{
    (void)c;
    pending_open *p = user;
    fwd_end *e = p->e;
    fwd_end_fn done = p->done;
    void *done_user = p->user;
    free(p);
    if (code != 0) {
        if (code != -ECANCELED)
            cli_fail("forward %s: %s", e->addr->text, sockit_errmsg());
        done(e, false, done_user);
        return;
    }
    sockit_stream_pause(st); /* until the other side is there */
    e->in = e->out = st;
    done(e, true, done_user);
}

int fwd_end_open(const fwd_open_opts *o, const fwd_addr *a, fwd_end *e, fwd_end_fn done, void *user,
                 sockit_connector **pending)
{
    memset(e, 0, sizeof *e);
    e->addr = a;
    switch (a->kind) {
    case FWD_STDIO:
        return open_stdio(o, a, e);
    case FWD_FILE:
    case FWD_CREATE:
        return open_file(o, a, e);
    case FWD_EXEC:
    case FWD_SYSTEM:
        return open_command(o, a, e);
    case FWD_UDP:
        return open_udp(o, a, e);
    default:
        break;
    }
    pending_open *p = malloc(sizeof *p);
    if (p == NULL)
        return fail_errno(a, "connect", ENOMEM);
    *p = (pending_open){.e = e, .done = done, .user = user};
    snprintf(e->name, sizeof e->name, "%s", a->text);
    int port = a->hp.is_unix ? 0 : a->hp.port;
    if (a->kind == FWD_TLS)
        *pending = sockit_stream_connect_tls(o->loop, a->hp.host, port, o->connect_timeout, NULL,
                                             o->tls, NULL, connected, p);
    else
        *pending = sockit_stream_connect(o->loop, a->hp.host, port, o->connect_timeout, NULL, NULL,
                                         connected, p);
    if (*pending == NULL) {
        free(p);
        cli_fail("forward %s: %s", a->text, sockit_errmsg());
        return -1;
    }
    return 1;
}

void fwd_end_accepted(fwd_end *e, const fwd_addr *a, sockit_stream *st, const char *peer)
{
    memset(e, 0, sizeof *e);
    e->addr = a;
    e->in = e->out = st;
    snprintf(e->name, sizeof e->name, "%s", peer);
}

bool fwd_end_release(fwd_end *e, bool streams_too)
{
    free(e->first);
    e->first = NULL;
    if (streams_too && e->dg != NULL)
        sockit_datagram_close(e->dg);
    e->dg = NULL;
    if (streams_too) {
        if (e->in != NULL)
            sockit_stream_abort(e->in);
        if (e->out != NULL && e->out != e->in)
            sockit_stream_abort(e->out);
    }
    e->in = e->out = NULL;
    bool ok = true;
    for (int i = 0; i < 2; i++) {
        int err = fwd_pump_finish(e->pump[i], streams_too);
        e->pump[i] = NULL;
        if (err != 0) {
            cli_fail("forward %s: %s: %s", e->addr->text,
                     e->addr->kind == FWD_CREATE || i == 1 ? "write" : "read", strerror(err));
            ok = false;
        }
    }
    if (e->pid > 0) {
        if (child_wait(e->pid, 0) >= 0 || errno == ECHILD)
            e->pid = 0; /* it had ended */
        else
            child_kill(e->pid, SIGTERM); /* the caller waits for it (e->pid stays) */
    }
    return ok;
}
