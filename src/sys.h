/* The one layer every system call that moves bytes or makes connections, and every
 * allocation, goes through. Each wrapper is the system call itself, plus one branch
 * on a test hook, so tests (and the reliability suite) can inject what the kernel or
 * the allocator does rarely: EINTR, EAGAIN, short transfers, ENOMEM. Never
 * installed. */
#ifndef SOCKIT_SYS_H
#define SOCKIT_SYS_H

#include <poll.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef enum sockit__sysop {
    SOCKIT__SYS_SEND,
    SOCKIT__SYS_RECV,
    SOCKIT__SYS_SENDTO,
    SOCKIT__SYS_RECVFROM,
    SOCKIT__SYS_SENDMSG,
    SOCKIT__SYS_RECVMSG,
    SOCKIT__SYS_ACCEPT,
    SOCKIT__SYS_CONNECT,
    SOCKIT__SYS_SENDFILE,
    SOCKIT__SYS_POLL,
    SOCKIT__SYS_EPOLL_WAIT,
    SOCKIT__SYS_EPOLL_CTL,
    SOCKIT__SYS_ALLOC,
    SOCKIT__SYS_RING_SETUP, /* io_uring_setup: an injected error refuses the ring */
    SOCKIT__SYSOPS
} sockit__sysop;

/* Called before each operation (from any thread): returns 0 to let it happen, with
 * *len possibly lowered for a short transfer (send, recv and the like; the byte count
 * for ALLOC), or a positive errno to make it fail with that errno without running.
 * NULL, the default, injects nothing. Set it while no other thread uses sockit. */
typedef int (*sockit__fault_fn)(sockit__sysop op, size_t *len);
void sockit__set_fault_hook(sockit__fault_fn fn);
/* Test builds (SOCKIT_FAULT_INJECTION): installs the hook SOCKIT_FAULTS describes
 * (src/fault_env.c), at load time. */
void sockit__faults_from_environment(void);

ssize_t sockit__sys_send(int fd, const void *buf, size_t len, int flags);
ssize_t sockit__sys_recv(int fd, void *buf, size_t len, int flags);
ssize_t sockit__sys_sendto(int fd, const void *buf, size_t len, int flags,
                           const struct sockaddr *to, socklen_t tolen);
ssize_t sockit__sys_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                             socklen_t *fromlen);
ssize_t sockit__sys_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t sockit__sys_recvmsg(int fd, struct msghdr *msg, int flags);
int sockit__sys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int sockit__sys_connect(int fd, const struct sockaddr *addr, socklen_t len);
ssize_t sockit__sys_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
int sockit__sys_poll(struct pollfd *fds, nfds_t n, int timeout_ms);
int sockit__sys_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms);
/* epoll_pwait2 with no signal mask: a nanosecond timeout (NULL: without limit). The
 * hook sees it as SOCKIT__SYS_EPOLL_WAIT. */
struct timespec;
int sockit__sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int sockit__sys_epoll_pwait2(int epfd, struct epoll_event *events, int max,
                             const struct timespec *timeout);
/* The io_uring backend's wait asks here first, so an injected wait fault reaches it
 * too (the hook sees SOCKIT__SYS_EPOLL_WAIT, the backend's wait whatever the
 * mechanism). Returns 0, or -1 with errno set to the injected error. */
int sockit__sys_ring_wait_fault(void);
/* What the io_uring backend asks where no system call of its own is made: setting
 * up a ring (RING_SETUP), submitting a send (SEND: *len may be lowered for a short
 * send) and each receive or accept completion (RECV, ACCEPT: an injected error
 * replaces the kernel's result, the bytes are dropped). Returns 0 or a negative
 * code. */
int sockit__sys_ring_fault(sockit__sysop op, size_t *len);

/* malloc, calloc, realloc and free, through the hook (op ALLOC). */
void *sockit__malloc(size_t size);
void *sockit__calloc(size_t n, size_t size);
void *sockit__realloc(void *p, size_t size);
void sockit__free(void *p);

#endif /* SOCKIT_SYS_H */
