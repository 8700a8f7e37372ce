/* sockit_sendmsg / sockit_recvmsg and the control-message helpers: buffers gather and
 * scatter, truncation of data and of control data is reported with no descriptor
 * leaked, and the three common control messages (credentials, timestamps, packet
 * info) do what a server needs them for. */
#include "harness.h"

#include <fcntl.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sockit_tls.h"
#include "sys.h"

typedef union {
    struct cmsghdr align;
    char bytes[512];
} control_buf;

static sockit *udp_bound(int family, const char *host, int *port)
{
    sockit *s = sockit_socket(family, SOCK_DGRAM);
    assert_sock(s);
    assert_ok(sockit_bind(s, host, 0));
    sockit_addr a;
    assert_ok(sockit_getsockname(s, &a));
    *port = sockit_addr_port(&a);
    return s;
}

static void addr_of(sockit_addr *a, const char *host, int port)
{
    assert_ok(sockit_addr_ip(a, host, port));
}

static void expect_text(const sockit_addr *a, const char *text)
{
    char buf[SOCKIT_ADDRSTRLEN];
    assert_true(sockit_addr_format(a, buf, sizeof buf) > 0);
    assert_string_equal(buf, text);
}

static void test_sendmsg_gathers_and_recvmsg_scatters_a_datagram(void **state)
{
    (void)state;
    int rport, sport;
    sockit *r = udp_bound(AF_INET, "127.0.0.1", &rport);
    sockit *s = udp_bound(AF_INET, "127.0.0.1", &sport);
    char a[] = "Hello ", b[] = "UDP ", c[] = "server!";
    struct iovec out[3] = {{a, 6}, {b, 4}, {c, 7}};
    sockit_msg m = {.iov = out, .iovcnt = 3};
    addr_of(&m.addr, "127.0.0.1", rport);
    assert_int_equal(sockit_sendmsg(s, &m, 0), 17);

    char x[5], y[32];
    struct iovec in[2] = {{x, sizeof x}, {y, sizeof y}};
    sockit_msg got = {.iov = in, .iovcnt = 2};
    assert_int_equal(sockit_recvmsg(r, &got, 0), 17);
    assert_memory_equal(x, "Hello", 5);
    assert_memory_equal(y, " UDP server!", 12);
    assert_int_equal(got.controllen, 0);
    assert_int_equal(got.flags & (MSG_TRUNC | MSG_CTRUNC), 0);
    assert_int_equal(sockit_addr_port(&got.addr), sport);
    sockit_close(r);
    sockit_close(s);
}

static void test_recvmsg_reports_a_datagram_bigger_than_the_buffers(void **state)
{
    (void)state;
    int rport, sport;
    sockit *r = udp_bound(AF_INET, "127.0.0.1", &rport);
    sockit *s = udp_bound(AF_INET, "127.0.0.1", &sport);
    assert_int_equal(sockit_sendto(s, "0123456789", 10, 0, "127.0.0.1", rport), 10);
    char x[3], y[3];
    struct iovec in[2] = {{x, 3}, {y, 3}};
    sockit_msg got = {.iov = in, .iovcnt = 2};
    assert_code(sockit_recvmsg(r, &got, 0), SOCKIT_ETRUNCATED);
    assert_non_null(strstr(sockit_errmsg(), "datagram of 10 bytes, buffers of 6"));
    assert_memory_equal(x, "012", 3);
    assert_memory_equal(y, "345", 3);
    assert_true(got.flags & MSG_TRUNC);
    assert_int_equal(sockit_addr_port(&got.addr), sport);
    /* The rest of that datagram is gone; the next call waits for the next one. */
    assert_ok(sockit_settimeout(r, 0.05));
    assert_code(sockit_recvmsg(r, &got, 0), SOCKIT_ETIMEOUT);
    sockit_close(r);
    sockit_close(s);
}

/* Descriptors sent with sendmsg arrive usable and close-on-exec through recvmsg. */
static void test_rights_cross_a_unix_socket_with_sendmsg(void **state)
{
    (void)state;
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);

    control_buf ctl;
    size_t used = 0;
    assert_ok(sockit_cmsg_add(ctl.bytes, sizeof ctl.bytes, &used, SOL_SOCKET, SCM_RIGHTS, pipefd,
                              sizeof pipefd));
    assert_int_equal(used, CMSG_SPACE(sizeof pipefd));
    char data[] = "F";
    struct iovec iov = {data, 1};
    sockit_msg m = {.iov = &iov, .iovcnt = 1, .control = ctl.bytes, .controllen = used};
    assert_int_equal(sockit_sendmsg(p[0], &m, 0), 1);
    close(pipefd[0]);
    close(pipefd[1]);

    control_buf in;
    char buf[4];
    struct iovec iov_in = {buf, sizeof buf};
    sockit_msg got = {
        .iov = &iov_in, .iovcnt = 1, .control = in.bytes, .controllen = sizeof in.bytes};
    assert_int_equal(sockit_recvmsg(p[1], &got, 0), 1);
    size_t cursor = 0;
    sockit_cmsg c;
    assert_true(sockit_cmsg_next(&got, &cursor, &c));
    assert_int_equal(c.level, SOL_SOCKET);
    assert_int_equal(c.type, SCM_RIGHTS);
    assert_int_equal(c.len, 2 * sizeof(int));
    int fds[2];
    memcpy(fds, c.data, sizeof fds);
    assert_false(sockit_cmsg_next(&got, &cursor, &c));
    for (int i = 0; i < 2; i++)
        assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(fds[1], "ok", 2), 2);
    char back[2];
    assert_int_equal(read(fds[0], back, 2), 2);
    assert_memory_equal(back, "ok", 2);
    close(fds[0]);
    close(fds[1]);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

/* Control room for one descriptor, three sent: SOCKIT_ECTRUNCATED, the one that got
 * through closed (the fixture counts descriptors), its slot -1. */
static void test_recvmsg_reports_cut_control_data_and_closes_what_came(void **state)
{
    (void)state;
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    int three[3];
    for (int i = 0; i < 3; i++) {
        three[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(three[i] >= 0);
    }
    control_buf ctl;
    size_t used = 0;
    assert_ok(sockit_cmsg_add(ctl.bytes, sizeof ctl.bytes, &used, SOL_SOCKET, SCM_RIGHTS, three,
                              sizeof three));
    char data[] = "F";
    struct iovec iov = {data, 1};
    sockit_msg m = {.iov = &iov, .iovcnt = 1, .control = ctl.bytes, .controllen = used};
    assert_int_equal(sockit_sendmsg(p[0], &m, 0), 1);
    for (int i = 0; i < 3; i++)
        close(three[i]);

    control_buf in;
    memset(&in, 0, sizeof in);
    char buf[4];
    struct iovec iov_in = {buf, sizeof buf};
    sockit_msg got = {
        .iov = &iov_in, .iovcnt = 1, .control = in.bytes, .controllen = CMSG_SPACE(sizeof(int))};
    assert_code(sockit_recvmsg(p[1], &got, 0), SOCKIT_ECTRUNCATED);
    assert_non_null(strstr(sockit_errmsg(), "control data larger than"));
    assert_true(got.flags & MSG_CTRUNC);
    assert_int_equal(buf[0], 'F');
    size_t cursor = 0;
    sockit_cmsg c;
    assert_true(sockit_cmsg_next(&got, &cursor, &c));
    assert_int_equal(c.type, SCM_RIGHTS);
    /* As many as the room holds (CMSG_SPACE rounds up), fewer than were sent. */
    assert_true(c.len >= sizeof(int) && c.len < sizeof three);
    for (size_t off = 0; off < c.len; off += sizeof(int)) {
        int fd;
        memcpy(&fd, (const char *)c.data + off, sizeof fd);
        assert_int_equal(fd, -1);
    }
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_credentials_name_the_sending_process(void **state)
{
    (void)state;
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    assert_ok(sockit_set_passcred(p[1], true));
    char data[] = "who";
    struct iovec iov = {data, 3};
    /* Not attached by the sender: the kernel adds them for a receiver that asked. */
    sockit_msg m = {.iov = &iov, .iovcnt = 1};
    assert_int_equal(sockit_sendmsg(p[0], &m, 0), 3);
    control_buf in;
    char buf[8];
    struct iovec iov_in = {buf, sizeof buf};
    sockit_msg got = {
        .iov = &iov_in, .iovcnt = 1, .control = in.bytes, .controllen = sizeof in.bytes};
    assert_int_equal(sockit_recvmsg(p[1], &got, 0), 3);
    sockit_creds cr;
    assert_ok(sockit_cmsg_creds(&got, &cr));
    assert_int_equal(cr.pid, getpid());
    assert_int_equal(cr.uid, geteuid());
    assert_int_equal(cr.gid, getegid());

    /* Attached explicitly (this process's own). */
    control_buf ctl;
    size_t used = 0;
    assert_ok(sockit_cmsg_add_creds(ctl.bytes, sizeof ctl.bytes, &used, NULL));
    m.control = ctl.bytes;
    m.controllen = used;
    assert_int_equal(sockit_sendmsg(p[0], &m, 0), 3);
    got.controllen = sizeof in.bytes;
    assert_int_equal(sockit_recvmsg(p[1], &got, 0), 3);
    assert_ok(sockit_cmsg_creds(&got, &cr));
    assert_int_equal(cr.pid, getpid());

    /* Not a Unix socket: refused, not silently ignored. */
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    assert_code(sockit_set_passcred(u, true), -EOPNOTSUPP);
    assert_code(sockit_set_passcred(NULL, true), -EBADF);
    sockit_close(u);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

static void test_timestamps_say_when_the_kernel_received_it(void **state)
{
    (void)state;
    int rport, sport;
    sockit *r = udp_bound(AF_INET, "127.0.0.1", &rport);
    sockit *s = udp_bound(AF_INET, "127.0.0.1", &sport);
    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    control_buf in;
    sockit_msg got = {.iov = &iov, .iovcnt = 1, .control = in.bytes, .controllen = sizeof in.bytes};
    /* Not asked for: none. */
    assert_int_equal(sockit_sendto(s, "t0", 2, 0, "127.0.0.1", rport), 2);
    assert_int_equal(sockit_recvmsg(r, &got, 0), 2);
    struct timespec ts;
    assert_code(sockit_cmsg_timestamp(&got, &ts), -ENOENT);

    assert_ok(sockit_set_timestamps(r, true));
    struct timespec before, after;
    clock_gettime(CLOCK_REALTIME, &before);
    assert_int_equal(sockit_sendto(s, "t1", 2, 0, "127.0.0.1", rport), 2);
    got.controllen = sizeof in.bytes;
    assert_int_equal(sockit_recvmsg(r, &got, 0), 2);
    clock_gettime(CLOCK_REALTIME, &after);
    assert_ok(sockit_cmsg_timestamp(&got, &ts));
    double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    /* Within the send..receive window, with a millisecond for clock granularity. */
    assert_true(t >= (double)before.tv_sec + (double)before.tv_nsec / 1e9 - 0.001);
    assert_true(t <= (double)after.tv_sec + (double)after.tv_nsec / 1e9 + 0.001);
    assert_code(sockit_cmsg_timestamp(NULL, &ts), -EINVAL);
    sockit_close(r);
    sockit_close(s);
}

/* A server bound to the wildcard answers from the address the client asked. The
 * client sends to 127.0.0.3 from 127.0.0.1: without packet info the kernel would
 * answer from 127.0.0.1 (its route to the client), which is the control case. */
static void reply_from(sockit *server, int server_port, bool with_pktinfo, const char *asked,
                       const char *client_host, const char *expect_from)
{
    int cport;
    sockit *client = udp_bound(
        sockit_family(server) == AF_INET6 && strchr(client_host, ':') ? AF_INET6 : AF_INET,
        client_host, &cport);
    assert_int_equal(sockit_sendto(client, "ask", 3, 0, asked, server_port), 3);

    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    control_buf in;
    sockit_msg got = {.iov = &iov, .iovcnt = 1, .control = in.bytes, .controllen = sizeof in.bytes};
    assert_int_equal(sockit_recvmsg(server, &got, 0), 3);
    sockit_addr local;
    unsigned ifindex = 0;
    assert_ok(sockit_cmsg_pktinfo(&got, &local, &ifindex));
    assert_int_equal(ifindex, if_nametoindex("lo"));
    assert_int_equal(sockit_addr_port(&local), 0);

    control_buf ctl;
    size_t used = 0;
    char answer[] = "yes";
    struct iovec out = {answer, 3};
    sockit_msg reply = {.iov = &out, .iovcnt = 1, .addr = got.addr};
    if (with_pktinfo) {
        assert_ok(sockit_cmsg_add_pktinfo(ctl.bytes, sizeof ctl.bytes, &used, &local, 0));
        reply.control = ctl.bytes;
        reply.controllen = used;
    }
    assert_int_equal(sockit_sendmsg(server, &reply, 0), 3);
    sockit_addr from;
    assert_ok(sockit_settimeout(client, 5));
    assert_int_equal(sockit_recvfrom(client, buf, sizeof buf, 0, &from), 3);
    sockit_addr_set_port(&from, 0);
    expect_text(&from, expect_from);
    sockit_close(client);
}

static void test_pktinfo_lets_a_wildcard_server_answer_from_the_asked_address(void **state)
{
    (void)state;
    int port;
    sockit *server = udp_bound(AF_INET, "0.0.0.0", &port);
    assert_ok(sockit_set_recv_pktinfo(server, true));
    reply_from(server, port, true, "127.0.0.3", "127.0.0.1", "127.0.0.3:0");
    reply_from(server, port, false, "127.0.0.3", "127.0.0.1", "127.0.0.1:0");
    sockit_close(server);
}

static void test_pktinfo_works_for_ipv6_and_for_ipv4_on_a_dual_stack_socket(void **state)
{
    (void)state;
    sockit *server = sockit_socket(AF_INET6, SOCK_DGRAM);
    assert_sock(server);
    assert_ok(sockit_set_v6only(server, false));
    assert_ok(sockit_bind(server, "::", 0));
    sockit_addr a;
    assert_ok(sockit_getsockname(server, &a));
    int port = sockit_addr_port(&a);
    assert_ok(sockit_set_recv_pktinfo(server, true));
    reply_from(server, port, true, "::1", "::1", "[::1]:0");
    /* IPv4 through the dual-stack socket: the local address is IPv4-mapped and
     * answering from it works. */
    reply_from(server, port, true, "127.0.0.3", "127.0.0.1", "127.0.0.3:0");
    sockit_close(server);
}

static void test_pktinfo_refuses_what_it_cannot_serve(void **state)
{
    (void)state;
    sockit *tcp = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(tcp);
    assert_code(sockit_set_recv_pktinfo(tcp, true), -EOPNOTSUPP);
    sockit_close(tcp);
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_DGRAM, p));
    assert_code(sockit_set_recv_pktinfo(p[0], true), -EOPNOTSUPP);
    sockit_close(p[0]);
    sockit_close(p[1]);
    assert_code(sockit_set_recv_pktinfo(NULL, true), -EBADF);

    control_buf ctl;
    size_t used = 0;
    sockit_addr unix_addr, empty = {0};
    assert_ok(sockit_addr_unix(&unix_addr, "/tmp/x.sock"));
    assert_code(sockit_cmsg_add_pktinfo(ctl.bytes, sizeof ctl.bytes, &used, &unix_addr, 0),
                SOCKIT_EBADADDR);
    assert_code(sockit_cmsg_add_pktinfo(ctl.bytes, sizeof ctl.bytes, &used, &empty, 0),
                SOCKIT_EBADADDR);
    assert_code(sockit_cmsg_add_pktinfo(ctl.bytes, sizeof ctl.bytes, &used, NULL, 0),
                SOCKIT_EBADADDR);
    assert_int_equal(used, 0);
    sockit_msg none = {0};
    assert_code(sockit_cmsg_pktinfo(&none, NULL, NULL), -ENOENT);
    assert_code(sockit_cmsg_pktinfo(NULL, NULL, NULL), -EINVAL);
}

/* On TCP: gathers, reports the peer, and bytes readline read ahead come first. */
static void test_stream_sendmsg_recvmsg_and_read_ahead(void **state)
{
    (void)state;
    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    sockit *c = sockit_create_connection("127.0.0.1", port, 5, NULL);
    assert_sock(c);
    sockit *a = sockit_accept(l, NULL);
    assert_sock(a);
    char p1[] = "line\n", p2[] = "rest";
    struct iovec out[2] = {{p1, 5}, {p2, 4}};
    sockit_msg m = {.iov = out, .iovcnt = 2};
    assert_int_equal(sockit_sendmsg(c, &m, 0), 9);
    char line[16];
    assert_int_equal(sockit_readline(a, line, sizeof line), 5);
    char x[2], y[8];
    struct iovec in[2] = {{x, 2}, {y, sizeof y}};
    control_buf ctl;
    sockit_msg got = {.iov = in, .iovcnt = 2, .control = ctl.bytes, .controllen = sizeof ctl.bytes};
    /* readline read "rest" ahead with its line; it comes first, without control. */
    assert_int_equal(sockit_recvmsg(a, &got, MSG_PEEK), 4);
    assert_int_equal(sockit_recvmsg(a, &got, 0), 4);
    assert_memory_equal(x, "re", 2);
    assert_memory_equal(y, "st", 2);
    assert_int_equal(got.controllen, 0);
    sockit_addr mine;
    assert_ok(sockit_getsockname(c, &mine));
    assert_true(sockit_addr_equal(&got.addr, &mine));

    /* The peer closes: 0, as recv. Then sending to it fails without SIGPIPE. */
    sockit_close(c);
    got.controllen = sizeof ctl.bytes;
    assert_int_equal(sockit_recvmsg(a, &got, 0), 0);
    ssize_t rc = 0;
    for (int i = 0; i < 100 && rc >= 0; i++)
        rc = sockit_sendmsg(a, &m, 0);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    sockit_close(a);
    sockit_close(l);
}

static void test_recvmsg_waits_with_the_socket_timeout_and_dontwait(void **state)
{
    (void)state;
    int port;
    sockit *r = udp_bound(AF_INET, "127.0.0.1", &port);
    char buf[4];
    struct iovec iov = {buf, sizeof buf};
    sockit_msg got = {.iov = &iov, .iovcnt = 1};
    /* Blocking mode, and still at once. */
    double t0 = harness_now();
    assert_code(sockit_recvmsg(r, &got, MSG_DONTWAIT), SOCKIT_EWOULDBLOCK);
    assert_true(harness_now() - t0 < 1.0);
    assert_ok(sockit_settimeout(r, 0.05));
    assert_code(sockit_recvmsg(r, &got, 0), SOCKIT_ETIMEOUT);
    sockit_close(r);
}

/* Interrupted calls are retried: two EINTRs injected before the real recvmsg. */
static void test_recvmsg_and_sendmsg_retry_interrupted_calls(void **state)
{
    (void)state;
    int rport, sport;
    sockit *r = udp_bound(AF_INET, "127.0.0.1", &rport);
    sockit *s = udp_bound(AF_INET, "127.0.0.1", &sport);
    char data[] = "eintr";
    struct iovec iov = {data, 5};
    sockit_msg m = {.iov = &iov, .iovcnt = 1};
    addr_of(&m.addr, "127.0.0.1", rport);
    harness_inject(HARNESS_OP(SOCKIT__SYS_SENDMSG), EINTR, 2, 0);
    assert_int_equal(sockit_sendmsg(s, &m, 0), 5);
    assert_int_equal(harness_injected(), 2);
    char buf[8];
    struct iovec in = {buf, sizeof buf};
    sockit_msg got = {.iov = &in, .iovcnt = 1};
    harness_inject(HARNESS_OP(SOCKIT__SYS_RECVMSG), EINTR, 2, 0);
    assert_int_equal(sockit_recvmsg(r, &got, 0), 5);
    assert_int_equal(harness_injected(), 2);
    assert_memory_equal(buf, "eintr", 5);
    sockit_close(r);
    sockit_close(s);
}

static void test_msg_calls_refuse_bad_arguments(void **state)
{
    (void)state;
    int port;
    sockit *s = udp_bound(AF_INET, "127.0.0.1", &port);
    char buf[4];
    struct iovec iov = {buf, sizeof buf};
    sockit_msg m = {.iov = &iov, .iovcnt = 1};
    assert_code(sockit_sendmsg(NULL, &m, 0), -EBADF);
    assert_code(sockit_recvmsg(NULL, &m, 0), -EBADF);
    assert_code(sockit_sendmsg(s, NULL, 0), -EINVAL);
    assert_code(sockit_recvmsg(s, NULL, 0), -EINVAL);
    sockit_msg many = {.iov = &iov, .iovcnt = SOCKIT_IOV_MAX + 1};
    assert_code(sockit_sendmsg(s, &many, 0), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "at most 1024"));
    sockit_msg no_array = {.iov = NULL, .iovcnt = 2};
    assert_code(sockit_recvmsg(s, &no_array, 0), -EINVAL);
    sockit_msg no_control = {.iov = &iov, .iovcnt = 1, .controllen = 8};
    assert_code(sockit_sendmsg(s, &no_control, 0), -EINVAL);
    /* No destination on an unconnected datagram socket: the kernel's answer. */
    assert_code(sockit_sendmsg(s, &m, 0), -EDESTADDRREQ);
    /* A destination nobody serves: sent (UDP), then the refusal comes back. */
    sockit_close(s);
}

static void test_cmsg_add_and_next_keep_to_their_buffer(void **state)
{
    (void)state;
    control_buf ctl;
    size_t used = 0;
    int one = 1;
    assert_code(sockit_cmsg_add(ctl.bytes, CMSG_SPACE(sizeof one) - 1, &used, SOL_SOCKET,
                                SCM_RIGHTS, &one, sizeof one),
                -ENOBUFS);
    assert_int_equal(used, 0);
    assert_ok(sockit_cmsg_add(ctl.bytes, sizeof ctl.bytes, &used, 1, 2, "abc", 3));
    assert_ok(sockit_cmsg_add(ctl.bytes, sizeof ctl.bytes, &used, 4, 5, NULL, 0));
    assert_int_equal(used, CMSG_SPACE(3) + CMSG_SPACE(0));
    size_t odd = 3;
    assert_code(sockit_cmsg_add(ctl.bytes, sizeof ctl.bytes, &odd, 1, 2, "x", 1), -EINVAL);
    assert_code(sockit_cmsg_add(NULL, 8, &used, 1, 2, "x", 1), -EINVAL);
    assert_code(sockit_cmsg_add(ctl.bytes, 8, &used, 1, 2, NULL, 1), -EINVAL);

    sockit_msg m = {.control = ctl.bytes, .controllen = used};
    size_t cursor = 0;
    sockit_cmsg c;
    assert_true(sockit_cmsg_next(&m, &cursor, &c));
    assert_int_equal(c.level, 1);
    assert_int_equal(c.type, 2);
    assert_int_equal(c.len, 3);
    assert_memory_equal(c.data, "abc", 3);
    assert_true(sockit_cmsg_next(&m, &cursor, &c));
    assert_int_equal(c.level, 4);
    assert_int_equal(c.len, 0);
    assert_false(sockit_cmsg_next(&m, &cursor, &c));
    /* A header claiming more than the buffer holds ends the walk, never reads past. */
    struct cmsghdr liar = {.cmsg_len = 4096, .cmsg_level = 1, .cmsg_type = 1};
    memcpy(ctl.bytes, &liar, sizeof liar);
    cursor = 0;
    assert_false(sockit_cmsg_next(&m, &cursor, &c));
    assert_false(sockit_cmsg_next(NULL, &cursor, &c));
}

static void test_msg_calls_refuse_a_tls_socket(void **state)
{
    (void)state;
    if (!sockit_has_tls())
        skip();
    sockit *p[2];
    assert_ok(sockit_socketpair(AF_UNIX, SOCK_STREAM, p));
    sockit_tls_ctx *ctx = sockit_tls_ctx_new(SOCKIT_TLS_CLIENT);
    assert_non_null(ctx);
    assert_ok(sockit_tls_ctx_set_verify(ctx, SOCKIT_TLS_VERIFY_NONE));
    assert_ok(sockit_setblocking(p[0], false));
    /* Nobody answers the handshake; the socket is a TLS one all the same. */
    int rc = sockit_tls_wrap(p[0], ctx, NULL);
    assert_true(rc == 0 || rc == SOCKIT_EWOULDBLOCK);
    assert_true(sockit_is_tls(p[0]));
    char buf[4] = "abc";
    struct iovec iov = {buf, 3};
    sockit_msg m = {.iov = &iov, .iovcnt = 1};
    assert_code(sockit_sendmsg(p[0], &m, 0), -EOPNOTSUPP);
    assert_code(sockit_recvmsg(p[0], &m, 0), -EOPNOTSUPP);
    sockit_tls_ctx_free(ctx);
    sockit_close(p[0]);
    sockit_close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_sendmsg_gathers_and_recvmsg_scatters_a_datagram),
        harness_test(test_recvmsg_reports_a_datagram_bigger_than_the_buffers),
        harness_test(test_rights_cross_a_unix_socket_with_sendmsg),
        harness_test(test_recvmsg_reports_cut_control_data_and_closes_what_came),
        harness_test(test_credentials_name_the_sending_process),
        harness_test(test_timestamps_say_when_the_kernel_received_it),
        harness_test(test_pktinfo_lets_a_wildcard_server_answer_from_the_asked_address),
        harness_test(test_pktinfo_works_for_ipv6_and_for_ipv4_on_a_dual_stack_socket),
        harness_test(test_pktinfo_refuses_what_it_cannot_serve),
        harness_test(test_stream_sendmsg_recvmsg_and_read_ahead),
        harness_test(test_recvmsg_waits_with_the_socket_timeout_and_dontwait),
        harness_fault_test(test_recvmsg_and_sendmsg_retry_interrupted_calls),
        harness_test(test_msg_calls_refuse_bad_arguments),
        harness_test(test_cmsg_add_and_next_keep_to_their_buffer),
        harness_test(test_msg_calls_refuse_a_tls_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
