/* The system-call and allocation layer of sys.h: each wrapper asks the fault hook,
 * then makes the real call. */
#include "sys.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/sendfile.h>

static _Atomic(sockit__fault_fn) fault_hook;

void sockit__set_fault_hook(sockit__fault_fn fn) { atomic_store(&fault_hook, fn); }

#ifdef SOCKIT_FAULT_INJECTION
/* Here, not in fault_env.c: a static library's member that nothing refers to is
 * never linked in, and its constructor would never run. */
__attribute__((constructor)) static void load_faults(void) { sockit__faults_from_environment(); }
#endif

/* 0 to go on (with *len maybe lowered), or -1 with errno set to the injected one. */
static int ask(sockit__sysop op, size_t *len)
{
    sockit__fault_fn fn = atomic_load_explicit(&fault_hook, memory_order_relaxed);
    if (fn == NULL)
        return 0;
    size_t wanted = *len;
    int err = fn(op, len);
    if (*len > wanted)
        *len = wanted; /* a hook may shorten, never lengthen */
    if (err == 0)
        return 0;
    errno = err;
    return -1;
}

ssize_t sockit__sys_send(int fd, const void *buf, size_t len, int flags)
{
    return ask(SOCKIT__SYS_SEND, &len) < 0 ? -1 : send(fd, buf, len, flags);
}

ssize_t sockit__sys_recv(int fd, void *buf, size_t len, int flags)
{
    return ask(SOCKIT__SYS_RECV, &len) < 0 ? -1 : recv(fd, buf, len, flags);
}

ssize_t sockit__sys_sendto(int fd, const void *buf, size_t len, int flags,
                           const struct sockaddr *to, socklen_t tolen)
{
    /* A datagram is sent whole or not at all: only failures are injected. */
    size_t n = len;
    return ask(SOCKIT__SYS_SENDTO, &n) < 0 ? -1 : sendto(fd, buf, len, flags, to, tolen);
}

ssize_t sockit__sys_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                             socklen_t *fromlen)
{
    return ask(SOCKIT__SYS_RECVFROM, &len) < 0 ? -1 : recvfrom(fd, buf, len, flags, from, fromlen);
}

ssize_t sockit__sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    size_t n = 0;
    return ask(SOCKIT__SYS_SENDMSG, &n) < 0 ? -1 : sendmsg(fd, msg, flags);
}

ssize_t sockit__sys_recvmsg(int fd, struct msghdr *msg, int flags)
{
    size_t n = 0;
    return ask(SOCKIT__SYS_RECVMSG, &n) < 0 ? -1 : recvmsg(fd, msg, flags);
}

int sockit__sys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    size_t n = 0;
    return ask(SOCKIT__SYS_ACCEPT, &n) < 0 ? -1 : accept4(fd, addr, len, flags);
}

int sockit__sys_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    size_t n = 0;
    if (ask(SOCKIT__SYS_CONNECT, &n) == 0)
        return connect(fd, addr, len);
    if (errno != EINTR)
        return -1;
    /* A real EINTR means the kernel has started the connection and goes on with it:
     * an injected one starts it too, and only then reports the interruption. */
    if (connect(fd, addr, len) < 0 && errno != EINPROGRESS)
        return -1;
    errno = EINTR;
    return -1;
}

ssize_t sockit__sys_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    return ask(SOCKIT__SYS_SENDFILE, &count) < 0 ? -1 : sendfile(out_fd, in_fd, offset, count);
}

int sockit__sys_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
    size_t z = 0;
    return ask(SOCKIT__SYS_POLL, &z) < 0 ? -1 : poll(fds, n, timeout_ms);
}

int sockit__sys_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms)
{
    size_t z = 0;
    return ask(SOCKIT__SYS_EPOLL_WAIT, &z) < 0 ? -1 : epoll_wait(epfd, events, max, timeout_ms);
}

int sockit__sys_ring_wait_fault(void)
{
    size_t z = 0;
    return ask(SOCKIT__SYS_EPOLL_WAIT, &z) < 0 ? -1 : 0;
}

int sockit__sys_ring_fault(sockit__sysop op, size_t *len) { return ask(op, len) < 0 ? -errno : 0; }

int sockit__sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    size_t z = 0;
    return ask(SOCKIT__SYS_EPOLL_CTL, &z) < 0 ? -1 : epoll_ctl(epfd, op, fd, event);
}

int sockit__sys_epoll_pwait2(int epfd, struct epoll_event *events, int max,
                             const struct timespec *timeout)
{
    size_t z = 0;
    return ask(SOCKIT__SYS_EPOLL_WAIT, &z) < 0 ? -1
                                               : epoll_pwait2(epfd, events, max, timeout, NULL);
}

/* The hook sees the size but cannot change what is allocated. */
void *sockit__malloc(size_t size)
{
    size_t seen = size;
    return ask(SOCKIT__SYS_ALLOC, &seen) < 0 ? NULL : malloc(size);
}

void *sockit__calloc(size_t n, size_t size)
{
    size_t seen = n * size;
    return ask(SOCKIT__SYS_ALLOC, &seen) < 0 ? NULL : calloc(n, size);
}

void *sockit__realloc(void *p, size_t size)
{
    size_t seen = size;
    return ask(SOCKIT__SYS_ALLOC, &seen) < 0 ? NULL : realloc(p, size);
}

void sockit__free(void *p) { free(p); }
