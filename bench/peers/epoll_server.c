/* The raw epoll bench peer: one thread, non-blocking sockets, level-triggered epoll,
 * the fewest system calls per message a server can make (epoll_wait, recv, send).
 * It is the floor every other peer is compared with.
 *
 * Usage: epoll_server [--mode echo|oneshot|sink] [--port PORT]
 * The peer convention of bench/README.md. echo sends every chunk back at once; what
 * the socket does not take waits in a buffer of that connection, and the connection
 * is not read again until it has gone out, so a client that does not read cannot
 * make the server grow. SIGTERM and SIGINT arrive through a signalfd in the same
 * epoll set, so no signal is lost between two epoll_wait calls. */
#include "peer_common.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define USAGE "usage: epoll_server [--mode echo|oneshot|sink] [--port PORT]"
/* Events taken per epoll_wait: enough that a busy loop rarely needs a second call. */
#define MAX_EVENTS 256
/* One read: big enough for bulk (sink, 1 MB echo) in few calls, shared by all. */
#define READ_SIZE (128 * 1024)

struct conn {
    int fd;
    char *pending; /* echo bytes the socket has not taken yet, NULL when none */
    size_t pending_off, pending_len;
    struct conn *prev, *next; /* every open connection, to close them at exit */
};

struct server {
    int epfd;
    int listen_fd;
    enum peer_mode mode;
    bool accept_paused; /* out of descriptors: resumes when a connection closes */
    struct conn *conns;
};

static char read_buf[READ_SIZE];
/* The epoll data of the two descriptors that are not connections. */
static struct conn listener_tag, signal_tag;

static void watch(struct server *s, int op, int fd, uint32_t events, struct conn *c)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(s->epfd, op, fd, &ev) < 0)
        peer_fail("epoll_ctl");
}

static void conn_close(struct server *s, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* Closing the only descriptor of the socket also takes it out of the epoll set. */
    close(c->fd);
    free(c->pending);
    free(c);
    if (s->accept_paused) {
        s->accept_paused = false;
        watch(s, EPOLL_CTL_MOD, s->listen_fd, EPOLLIN, &listener_tag);
    }
}

static void accept_all(struct server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection keeps the listener readable: stop watching it
                 * rather than spin, until a close frees a descriptor. */
                if (s->conns != NULL) {
                    s->accept_paused = true;
                    watch(s, EPOLL_CTL_MOD, s->listen_fd, 0, &listener_tag);
                }
            } else if (errno != EAGAIN) {
                perror("epoll_server: accept4");
            }
            return;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        if (s->mode == PEER_ECHO) {
            /* Replies go out at once, not held back by Nagle while a pipelined
             * client's ACK is delayed. */
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        c->next = s->conns;
        if (c->next)
            c->next->prev = c;
        s->conns = c;
        watch(s, EPOLL_CTL_ADD, fd, EPOLLIN, c);
    }
}

/* Sends the rest of an echo; when all is out, goes back to reading. */
static void echo_flush(struct server *s, struct conn *c)
{
    ssize_t n =
        send(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(s, c);
        return;
    }
    c->pending_off += (size_t)n;
    if (c->pending_off == c->pending_len) {
        free(c->pending);
        c->pending = NULL;
        watch(s, EPOLL_CTL_MOD, c->fd, EPOLLIN, c);
    }
}

static void echo(struct server *s, struct conn *c, size_t len)
{
    ssize_t n = send(c->fd, read_buf, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            conn_close(s, c);
            return;
        }
        n = 0;
    }
    if ((size_t)n == len)
        return;
    c->pending_len = len - (size_t)n;
    c->pending_off = 0;
    c->pending = malloc(c->pending_len);
    if (c->pending == NULL) {
        conn_close(s, c);
        return;
    }
    memcpy(c->pending, read_buf + n, c->pending_len);
    watch(s, EPOLL_CTL_MOD, c->fd, EPOLLOUT, c);
}

static void on_readable(struct server *s, struct conn *c)
{
    size_t size = s->mode == PEER_ONESHOT ? PEER_ONESHOT_READ : READ_SIZE;
    ssize_t n = recv(c->fd, read_buf, size, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(s, c);
        return;
    }
    switch (s->mode) {
    case PEER_ECHO:
        echo(s, c, (size_t)n);
        break;
    case PEER_ONESHOT:
        /* A fresh socket's send buffer always holds the short reply. */
        send(c->fd, PEER_REPLY, sizeof PEER_REPLY - 1, MSG_NOSIGNAL);
        conn_close(s, c);
        break;
    case PEER_SINK:
        break;
    }
}

int main(int argc, char **argv)
{
    struct peer_args args;
    peer_parse(argc, argv, "epoll_server", PEER_ALL_MODES, USAGE, &args);
    peer_prepare();

    struct server s = {.mode = args.mode};
    int signal_fd = peer_stop_signalfd(true);
    s.listen_fd = peer_socket(SOCK_STREAM, true, args.port);
    s.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s.epfd < 0)
        peer_fail("epoll_create1");
    watch(&s, EPOLL_CTL_ADD, s.listen_fd, EPOLLIN, &listener_tag);
    watch(&s, EPOLL_CTL_ADD, signal_fd, EPOLLIN, &signal_tag);
    peer_announce(peer_bound_port(s.listen_fd));

    static struct epoll_event events[MAX_EVENTS];
    bool stopping = false;
    while (!stopping) {
        int n = epoll_wait(s.epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            peer_fail("epoll_wait");
        }
        /* Only the connection an event belongs to is ever closed while handling it,
         * and each descriptor appears once per batch, so no pointer below is stale. */
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == &listener_tag)
                accept_all(&s);
            else if (c == &signal_tag)
                stopping = true;
            else if (c->pending != NULL)
                echo_flush(&s, c);
            else
                on_readable(&s, c);
        }
    }

    while (s.conns != NULL)
        conn_close(&s, s.conns);
    close(s.listen_fd);
    close(s.epfd);
    close(signal_fd);
    return 0;
}
