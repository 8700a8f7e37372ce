/* Multicast and broadcast on a network the test makes for itself. At start the
 * process moves into a new network namespace of its own (unshare), which the kernel
 * destroys with the process however it ends, so nothing is left to clean up, and
 * makes a veth pair there: mc0 carries the test's traffic, and its other end mc1 is
 * "the wire", where a packet socket sees what really left mc0. Loopback copies are
 * how this host's members get a group's datagrams, so "loop off" is meaningful: the
 * datagram still appears on the wire, but no member here gets it.
 *
 * Without root or the ip command the tests that need the network skip, saying why;
 * the argument checks run anyway. */
#include "harness.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GROUP4  "239.255.77.1"
#define GROUP6  "ff12::5ec:1"
#define SSM4    "232.1.2.3"
#define SSM6    "ff32::8000:5ec"
#define HOST4_A "10.200.0.1"
#define HOST4_B "10.200.0.2"
#define HOST6_A "fd00:5ec::1"
#define HOST6_B "fd00:5ec::2"
/* Any multicast MAC frame, IPv4 or IPv6, as a packet socket's protocol. */
#define ALL_PROTOCOLS 0x0003

static bool net4, net6;
static char no_net[256] = "the network namespace was not set up";

static const char *group_of(int family) { return family == AF_INET ? GROUP4 : GROUP6; }
static const char *host_a(int family) { return family == AF_INET ? HOST4_A : HOST6_A; }

static void need_net(int family)
{
    if ((family == AF_INET && net4) || (family == AF_INET6 && net6))
        return;
    print_message("skipped: no IPv%d test network: %s\n", family == AF_INET ? 4 : 6, no_net);
    skip();
}

/* ---- the network ------------------------------------------------------------------ */

static bool run(const char *cmd)
{
    int status = system(cmd);
    if (status == 0)
        return true;
    snprintf(no_net, sizeof no_net, "'%s' failed (status %d)", cmd, status);
    return false;
}

/* IPv6 multicast needs the route ff00::/8 that addrconf adds once mc0 has its
 * carrier, which comes a moment after "up": wait (at most 5 s) until a send works. */
static bool ipv6_route_ready(void)
{
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int index = (int)if_nametoindex("mc0");
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(9)};
    inet_pton(AF_INET6, "ff12::5ec:ffff", &to.sin6_addr);
    bool ok = setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof index) == 0;
    for (int i = 0; ok && i < 250; i++) {
        if (sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof to) == 1)
            break;
        if (i == 249)
            ok = false;
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    }
    close(fd);
    return ok;
}

static void make_network(void)
{
    if (geteuid() != 0) {
        snprintf(no_net, sizeof no_net, "not root (a network namespace needs CAP_SYS_ADMIN)");
        return;
    }
    if (system("command -v ip >/dev/null 2>&1") != 0) {
        snprintf(no_net, sizeof no_net, "no 'ip' command (iproute2)");
        return;
    }
    if (unshare(CLONE_NEWNET) < 0) {
        snprintf(no_net, sizeof no_net, "unshare(CLONE_NEWNET): %s", strerror(errno));
        return;
    }
    static const char *const setup4[] = {
        "ip link set lo up",
        "ip link add mc0 type veth peer name mc1",
        "ip link set mc1 up",
        "ip link set mc0 up",
        "ip addr add " HOST4_A "/24 brd + dev mc0",
        "ip addr add " HOST4_B "/24 dev mc0",
    };
    for (size_t i = 0; i < sizeof setup4 / sizeof setup4[0]; i++)
        if (!run(setup4[i]))
            return;
    net4 = true;
    net6 = run("ip -6 addr add " HOST6_A "/64 dev mc0 nodad") &&
           run("ip -6 addr add " HOST6_B "/64 dev mc0 nodad") && ipv6_route_ready();
    if (!net6)
        fprintf(stderr, "test_multicast: no IPv6 test network: %s\n", no_net);
}

/* ---- sockets ----------------------------------------------------------------------- */

static unsigned mc0_index(void) { return if_nametoindex("mc0"); }

/* A member-to-be bound to every address on port (0: a free one, read back into
 * *port); SO_REUSEADDR lets a second receiver share the port. */
static sockit *receiver(int family, int *port)
{
    sockit *s = sockit_socket(family, SOCK_DGRAM);
    assert_sock(s);
    assert_ok(sockit_set_reuseaddr(s, true));
    assert_ok(sockit_bind(s, NULL, *port));
    sockit_addr me;
    assert_ok(sockit_getsockname(s, &me));
    *port = sockit_addr_port(&me);
    return s;
}

/* A sender bound to host (so the source address is known) sending by mc0. */
static sockit *sender(int family, const char *host)
{
    sockit *s = sockit_socket(family, SOCK_DGRAM);
    assert_sock(s);
    assert_ok(sockit_bind(s, host, 0));
    assert_ok(sockit_set_multicast_interface(s, "mc0"));
    return s;
}

static void send_to(sockit *s, const char *text, const char *host, int port)
{
    assert_int_equal(sockit_sendto(s, text, strlen(text), 0, host, port), (ssize_t)strlen(text));
}

/* The next datagram r gets is text, from the address sender is bound to. */
static void expect_datagram(sockit *r, const char *text, const sockit *from_socket)
{
    char buf[256];
    sockit_addr from, want;
    assert_ok(sockit_settimeout(r, 5.0));
    ssize_t n = sockit_recvfrom(r, buf, sizeof buf - 1, 0, &from);
    assert_ok(n);
    buf[n] = '\0';
    assert_string_equal(buf, text);
    assert_ok(sockit_getsockname(from_socket, &want));
    assert_true(sockit_addr_equal(&from, &want));
}

/* Nothing arrives at r within 300 ms. */
static void expect_nothing(sockit *r)
{
    char buf[256];
    assert_ok(sockit_settimeout(r, 0.3));
    assert_code(sockit_recvfrom(r, buf, sizeof buf, 0, NULL), SOCKIT_ETIMEOUT);
}

/* A packet socket on mc1: every IP packet that left mc0. */
static int wire_open(void)
{
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ALL_PROTOCOLS));
    assert_true(fd >= 0);
    struct sockaddr_ll ll = {.sll_family = AF_PACKET,
                             .sll_protocol = htons(ALL_PROTOCOLS),
                             .sll_ifindex = (int)if_nametoindex("mc1")};
    assert_int_equal(bind(fd, (struct sockaddr *)&ll, sizeof ll), 0);
    struct timeval tv = {.tv_usec = 100 * 1000};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    return fd;
}

/* Waits (at most 5 s) for the packet carrying text to cross the wire; returns its
 * IPv4 TTL or IPv6 hop limit, and copies its source address into source (if not
 * NULL) as text. */
static int wire_expect(int fd, const char *text, char source[INET6_ADDRSTRLEN])
{
    double until = harness_now() + 5.0;
    unsigned char pkt[2048];
    while (harness_now() < until) {
        ssize_t n = recv(fd, pkt, sizeof pkt, 0);
        if (n < 20 || memmem(pkt, (size_t)n, text, strlen(text)) == NULL)
            continue;
        bool v4 = (pkt[0] >> 4) == 4;
        if (source != NULL)
            inet_ntop(v4 ? AF_INET : AF_INET6, pkt + (v4 ? 12 : 8), source, INET6_ADDRSTRLEN);
        return v4 ? pkt[8] : pkt[7];
    }
    fail_msg("'%s' never appeared on the wire", text);
    return -1;
}

static int get_int(const sockit *s, int level, int name)
{
    int v = -12345;
    assert_ok(sockit_getsockopt_int(s, level, name, &v));
    return v;
}

/* ---- groups -------------------------------------------------------------------------- */

/* Both receivers, joined by different spellings of mc0, get the one datagram
 * a third socket sent, once each. */
static void two_receivers(int family, const char *iface_a, const char *iface_b)
{
    need_net(family);
    int port = 0;
    sockit *a = receiver(family, &port);
    sockit *b = receiver(family, &port);
    assert_ok(sockit_join_group(a, group_of(family), iface_a));
    assert_ok(sockit_join_group(b, group_of(family), iface_b));
    sockit *c = sender(family, host_a(family));
    send_to(c, "hello group", group_of(family), port);
    expect_datagram(a, "hello group", c);
    expect_datagram(b, "hello group", c);
    expect_nothing(a);
    expect_nothing(b);
    sockit_close(a);
    sockit_close(b);
    sockit_close(c);
}

static void test_two_ipv4_receivers_each_get_the_datagram_once(void **state)
{
    (void)state;
    two_receivers(AF_INET, "mc0", HOST4_A);
}

static void test_two_ipv6_receivers_each_get_the_datagram_once(void **state)
{
    (void)state;
    char index[16];
    snprintf(index, sizeof index, "%u", mc0_index());
    two_receivers(AF_INET6, "mc0", index);
}

static void test_ipv6_group_may_name_its_interface_as_scope(void **state)
{
    (void)state;
    need_net(AF_INET6);
    int port = 0;
    sockit *a = receiver(AF_INET6, &port);
    assert_ok(sockit_join_group(a, GROUP6 "%mc0", NULL));
    assert_ok(sockit_join_group(a, "ff12::5ec:2%mc0", "mc0"));
    assert_code(sockit_join_group(a, "ff12::5ec:3%mc0", "lo"), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "disagree"));
    sockit *c = sender(AF_INET6, HOST6_A);
    send_to(c, "scoped", GROUP6, port);
    expect_datagram(a, "scoped", c);
    sockit_close(a);
    sockit_close(c);
}

static void leave_stops_one(int family)
{
    need_net(family);
    int port = 0;
    sockit *a = receiver(family, &port);
    sockit *b = receiver(family, &port);
    assert_ok(sockit_join_group(a, group_of(family), "mc0"));
    assert_ok(sockit_join_group(b, group_of(family), "mc0"));
    sockit *c = sender(family, host_a(family));
    send_to(c, "both", group_of(family), port);
    expect_datagram(a, "both", c);
    expect_datagram(b, "both", c);

    assert_ok(sockit_leave_group(b, group_of(family), "mc0"));
    send_to(c, "only a", group_of(family), port);
    expect_datagram(a, "only a", c);
    expect_nothing(b);
    assert_code(sockit_leave_group(b, group_of(family), "mc0"), -EADDRNOTAVAIL);

    assert_ok(sockit_join_group(b, group_of(family), "mc0"));
    send_to(c, "b again", group_of(family), port);
    expect_datagram(a, "b again", c);
    expect_datagram(b, "b again", c);
    sockit_close(a);
    sockit_close(b);
    sockit_close(c);
}

static void test_after_leaving_a_receiver_gets_nothing_while_the_other_still_does(void **state)
{
    (void)state;
    leave_stops_one(AF_INET);
    leave_stops_one(AF_INET6);
}

static void loop_off(int family)
{
    need_net(family);
    int loop = family == AF_INET ? IP_MULTICAST_LOOP : IPV6_MULTICAST_LOOP;
    int level = family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
    int port = 0;
    sockit *a = receiver(family, &port);
    assert_ok(sockit_join_group(a, group_of(family), "mc0"));
    sockit *c = sender(family, host_a(family));
    int wire = wire_open();
    assert_int_not_equal(get_int(c, level, loop), 0);

    assert_ok(sockit_set_multicast_loop(c, false));
    assert_int_equal(get_int(c, level, loop), 0);
    send_to(c, "loop off", group_of(family), port);
    wire_expect(wire, "loop off", NULL);
    expect_nothing(a);

    assert_ok(sockit_set_multicast_loop(c, true));
    assert_int_not_equal(get_int(c, level, loop), 0);
    send_to(c, "loop on", group_of(family), port);
    wire_expect(wire, "loop on", NULL);
    expect_datagram(a, "loop on", c);
    close(wire);
    sockit_close(a);
    sockit_close(c);
}

static void test_loop_off_sends_on_the_wire_but_not_to_this_hosts_members(void **state)
{
    (void)state;
    loop_off(AF_INET);
    loop_off(AF_INET6);
}

static void ttl_applies(int family)
{
    int level = family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
    int name = family == AF_INET ? IP_MULTICAST_TTL : IPV6_MULTICAST_HOPS;
    sockit *c = sockit_socket(family, SOCK_DGRAM);
    if (c == NULL && family == AF_INET6 && sockit_errcode() == -EAFNOSUPPORT)
        return;
    assert_sock(c);
    assert_int_equal(get_int(c, level, name), 1);
    static const int values[] = {0, 7, 255, 1};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        assert_ok(sockit_set_multicast_ttl(c, values[i]));
        assert_int_equal(get_int(c, level, name), values[i]);
    }
    assert_code(sockit_set_multicast_ttl(c, 256), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "0-255"));
    assert_code(sockit_set_multicast_ttl(c, -1), -EINVAL);
    assert_int_equal(get_int(c, level, name), 1);
    sockit_close(c);
}

static void test_ttl_and_hops_read_back_and_stay_in_0_to_255(void **state)
{
    (void)state;
    ttl_applies(AF_INET);
    ttl_applies(AF_INET6);
}

static void ttl_on_the_wire(int family)
{
    need_net(family);
    sockit *c = sender(family, host_a(family));
    int wire = wire_open();
    send_to(c, "default ttl", group_of(family), 9);
    assert_int_equal(wire_expect(wire, "default ttl", NULL), 1);
    assert_ok(sockit_set_multicast_ttl(c, 7));
    send_to(c, "ttl seven", group_of(family), 9);
    assert_int_equal(wire_expect(wire, "ttl seven", NULL), 7);
    close(wire);
    sockit_close(c);
}

static void test_ttl_and_hops_are_what_the_packets_carry(void **state)
{
    (void)state;
    ttl_on_the_wire(AF_INET);
    ttl_on_the_wire(AF_INET6);
}

/* This namespace has no route to a group: a datagram to one leaves only by the
 * interface the socket chose. */
static void test_multicast_interface_chooses_the_way_out_and_resets(void **state)
{
    (void)state;
    need_net(AF_INET);
    sockit *c = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(c);
    assert_code(sockit_sendto(c, "x", 1, 0, GROUP4, 9), -ENETUNREACH);
    assert_ok(sockit_set_multicast_interface(c, "mc0"));
    assert_int_equal(sockit_sendto(c, "x", 1, 0, GROUP4, 9), 1);
    assert_ok(sockit_set_multicast_interface(c, NULL));
    assert_code(sockit_sendto(c, "x", 1, 0, GROUP4, 9), -ENETUNREACH);

    /* By address: IPv4 sends from it, and reads the address back. */
    assert_ok(sockit_set_multicast_interface(c, HOST4_B));
    struct in_addr got = {0};
    socklen_t len = sizeof got;
    assert_ok(sockit_getsockopt(c, IPPROTO_IP, IP_MULTICAST_IF, &got, &len));
    char text[INET_ADDRSTRLEN];
    assert_string_equal(inet_ntop(AF_INET, &got, text, sizeof text), HOST4_B);
    int wire = wire_open();
    assert_int_equal(sockit_sendto(c, "from b", 6, 0, GROUP4, 9), 6);
    char source[INET6_ADDRSTRLEN];
    wire_expect(wire, "from b", source);
    assert_string_equal(source, HOST4_B);
    close(wire);
    sockit_close(c);

    need_net(AF_INET6);
    sockit *c6 = sockit_socket(AF_INET6, SOCK_DGRAM);
    assert_sock(c6);
    char index[16];
    snprintf(index, sizeof index, "%u", mc0_index());
    assert_ok(sockit_set_multicast_interface(c6, index));
    assert_int_equal(get_int(c6, IPPROTO_IPV6, IPV6_MULTICAST_IF), (int)mc0_index());
    assert_ok(sockit_set_multicast_interface(c6, ""));
    assert_int_equal(get_int(c6, IPPROTO_IPV6, IPV6_MULTICAST_IF), 0);
    assert_ok(sockit_set_multicast_interface(c6, HOST6_A));
    assert_int_equal(get_int(c6, IPPROTO_IPV6, IPV6_MULTICAST_IF), (int)mc0_index());
    sockit_close(c6);
}

static void source_specific(int family)
{
    need_net(family);
    const char *group = family == AF_INET ? SSM4 : SSM6;
    const char *src_a = host_a(family), *src_b = family == AF_INET ? HOST4_B : HOST6_B;
    int port = 0;
    sockit *only_a = receiver(family, &port);
    sockit *any = receiver(family, &port);
    assert_ok(sockit_join_source_group(only_a, group, src_a, "mc0"));
    assert_ok(sockit_join_group(any, group, "mc0"));
    sockit *ca = sender(family, src_a);
    sockit *cb = sender(family, src_b);

    /* A source request on an any-source membership would narrow it: refused. */
    assert_code(sockit_join_source_group(any, group, src_a, "mc0"), -EADDRINUSE);
    assert_non_null(strstr(sockit_errmsg(), "any source"));
    assert_code(sockit_leave_source_group(any, group, src_a, "mc0"), -EADDRNOTAVAIL);
    assert_non_null(strstr(sockit_errmsg(), "any source"));

    send_to(cb, "from b", group, port);
    expect_datagram(any, "from b", cb);
    send_to(ca, "from a", group, port);
    expect_datagram(any, "from a", ca);
    expect_datagram(only_a, "from a", ca);
    expect_nothing(only_a);

    /* Leaving what one is not a member of is one answer, however the kernel puts it. */
    assert_code(sockit_leave_source_group(only_a, group, src_b, "mc0"), -EADDRNOTAVAIL);
    assert_ok(sockit_leave_source_group(only_a, group, src_a, "mc0"));
    assert_code(sockit_leave_source_group(only_a, group, src_a, "mc0"), -EADDRNOTAVAIL);
    assert_non_null(strstr(sockit_errmsg(), "not a member"));
    send_to(ca, "left", group, port);
    expect_datagram(any, "left", ca);
    expect_nothing(only_a);
    sockit_close(only_a);
    sockit_close(any);
    sockit_close(ca);
    sockit_close(cb);
}

static void test_source_specific_member_gets_only_its_sources_datagrams(void **state)
{
    (void)state;
    source_specific(AF_INET);
    source_specific(AF_INET6);
}

/* Linux's IP_MULTICAST_ALL would hand a socket other sockets' groups; a join turns
 * it off, and a join the kernel refuses leaves it as the caller had it. */
static void test_join_turns_multicast_all_off_and_a_refused_join_keeps_it(void **state)
{
    (void)state;
    need_net(AF_INET);
    sockit *a = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(a);
    assert_int_equal(get_int(a, IPPROTO_IP, IP_MULTICAST_ALL), 1);
    assert_ok(sockit_join_group(a, GROUP4, "mc0"));
    assert_int_equal(get_int(a, IPPROTO_IP, IP_MULTICAST_ALL), 0);
    assert_ok(sockit_setsockopt_int(a, IPPROTO_IP, IP_MULTICAST_ALL, 1));
    assert_code(sockit_join_group(a, GROUP4, "mc0"), -EADDRINUSE);
    assert_non_null(strstr(sockit_errmsg(), "join group " GROUP4 " on mc0"));
    assert_int_equal(get_int(a, IPPROTO_IP, IP_MULTICAST_ALL), 1);
    sockit_close(a);
}

/* ---- broadcast ------------------------------------------------------------------------ */

static void test_broadcast_needs_the_option_and_reaches_both_receivers(void **state)
{
    (void)state;
    need_net(AF_INET);
    int port = 0;
    sockit *a = receiver(AF_INET, &port);
    sockit *b = receiver(AF_INET, &port);
    sockit *c = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(c);
    assert_ok(sockit_bind(c, HOST4_A, 0));
    assert_code(sockit_sendto(c, "x", 1, 0, "10.200.0.255", port), -EACCES);
    assert_ok(sockit_set_broadcast(c, true));

    send_to(c, "subnet", "10.200.0.255", port);
    expect_datagram(a, "subnet", c);
    expect_datagram(b, "subnet", c);
    /* 255.255.255.255 has no route here; a sender bound to an interface's address
     * sends it out by that interface. */
    send_to(c, "everyone", "255.255.255.255", port);
    expect_datagram(a, "everyone", c);
    expect_datagram(b, "everyone", c);
    expect_nothing(a);
    expect_nothing(b);
    sockit_close(a);
    sockit_close(b);
    sockit_close(c);
}

/* ---- refusals (no network needed) ------------------------------------------------------ */

static void test_group_must_be_a_numeric_multicast_address_of_the_sockets_family(void **state)
{
    (void)state;
    sockit *u4 = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u4);
    assert_code(sockit_join_group(u4, "10.0.0.1", NULL), SOCKIT_EBADADDR);
    assert_non_null(strstr(sockit_errmsg(), "not a multicast address (224.0.0.0/4)"));
    assert_non_null(strstr(sockit_errmsg(), "join group 10.0.0.1"));
    assert_code(sockit_join_group(u4, "localhost", NULL), SOCKIT_EBADADDR);
    assert_non_null(strstr(sockit_errmsg(), "not a numeric"));
    assert_code(sockit_join_group(u4, "", NULL), SOCKIT_EBADADDR);
    assert_code(sockit_join_group(u4, NULL, NULL), SOCKIT_EBADADDR);
    assert_code(sockit_leave_group(u4, "224.0.0", NULL), SOCKIT_EBADADDR);
    assert_code(sockit_join_group(u4, GROUP6, NULL), -EAFNOSUPPORT);
    assert_non_null(strstr(sockit_errmsg(), "an IPv6 group on an IPv4 socket"));
    /* Refused before the kernel: the socket's IP_MULTICAST_ALL is untouched. */
    assert_int_equal(get_int(u4, IPPROTO_IP, IP_MULTICAST_ALL), 1);
    sockit_close(u4);

    sockit *u6 = sockit_socket(AF_INET6, SOCK_DGRAM);
    if (u6 == NULL && sockit_errcode() == -EAFNOSUPPORT)
        return;
    assert_sock(u6);
    assert_code(sockit_join_group(u6, "fe80::1", NULL), SOCKIT_EBADADDR);
    assert_non_null(strstr(sockit_errmsg(), "not a multicast address (ff00::/8)"));
    assert_code(sockit_join_group(u6, GROUP4, NULL), -EAFNOSUPPORT);
    assert_non_null(strstr(sockit_errmsg(), "an IPv4 group on an IPv6 socket"));
    assert_code(sockit_join_group(u6, "ff12::1%nosuch0", NULL), -ENODEV);
    sockit_close(u6);
}

static void test_source_must_be_a_unicast_address_of_the_sockets_family(void **state)
{
    (void)state;
    sockit *u4 = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u4);
    assert_code(sockit_join_source_group(u4, SSM4, NULL, NULL), SOCKIT_EBADADDR);
    assert_non_null(strstr(sockit_errmsg(), "no source"));
    assert_code(sockit_join_source_group(u4, SSM4, GROUP4, NULL), SOCKIT_EBADADDR);
    assert_non_null(strstr(sockit_errmsg(), "unicast"));
    assert_code(sockit_join_source_group(u4, SSM4, "0.0.0.0", NULL), SOCKIT_EBADADDR);
    assert_code(sockit_join_source_group(u4, SSM4, "::1", NULL), -EAFNOSUPPORT);
    assert_code(sockit_join_source_group(u4, "10.0.0.1", "10.0.0.2", NULL), SOCKIT_EBADADDR);
    assert_code(sockit_leave_source_group(u4, SSM4, "example.com", NULL), SOCKIT_EBADADDR);
    sockit_close(u4);
}

static void test_unknown_interfaces_are_enodev(void **state)
{
    (void)state;
    sockit *u4 = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u4);
    assert_code(sockit_join_group(u4, GROUP4, "nosuch0"), -ENODEV);
    assert_non_null(strstr(sockit_errmsg(), "no interface named 'nosuch0'"));
    assert_code(sockit_join_group(u4, GROUP4, "99999"), -ENODEV);
    assert_non_null(strstr(sockit_errmsg(), "no interface with index 99999"));
    assert_code(sockit_join_group(u4, GROUP4, "99999999999999999999"), -ENODEV);
    assert_code(sockit_join_group(u4, GROUP4, "192.0.2.77"), -ENODEV);
    assert_non_null(strstr(sockit_errmsg(), "no interface has address 192.0.2.77"));
    assert_code(sockit_join_group(u4, GROUP4, "a-name-longer-than-ifnamsiz"), -ENODEV);
    assert_code(sockit_leave_group(u4, GROUP4, "nosuch0"), -ENODEV);
    assert_code(sockit_join_source_group(u4, SSM4, "192.0.2.1", "nosuch0"), -ENODEV);
    assert_code(sockit_set_multicast_interface(u4, "nosuch0"), -ENODEV);
    assert_code(sockit_set_multicast_interface(u4, "99999"), -ENODEV);
    assert_non_null(strstr(sockit_errmsg(), "IP_MULTICAST_IF=99999"));
    sockit_close(u4);
}

static void test_only_udp_sockets_and_a_null_socket_is_ebadf(void **state)
{
    (void)state;
    sockit *tcp = sockit_socket(AF_INET, SOCK_STREAM);
    sockit *unix_dgram = sockit_socket(AF_UNIX, SOCK_DGRAM);
    assert_sock(tcp);
    assert_sock(unix_dgram);
    sockit *refused[] = {tcp, unix_dgram};
    for (size_t i = 0; i < 2; i++) {
        sockit *s = refused[i];
        assert_code(sockit_join_group(s, GROUP4, NULL), -EOPNOTSUPP);
        assert_non_null(strstr(sockit_errmsg(), "not a UDP socket"));
        assert_code(sockit_leave_group(s, GROUP4, NULL), -EOPNOTSUPP);
        assert_code(sockit_join_source_group(s, SSM4, HOST4_A, NULL), -EOPNOTSUPP);
        assert_code(sockit_leave_source_group(s, SSM4, HOST4_A, NULL), -EOPNOTSUPP);
        assert_code(sockit_set_multicast_ttl(s, 1), -EOPNOTSUPP);
        assert_code(sockit_set_multicast_loop(s, true), -EOPNOTSUPP);
        assert_code(sockit_set_multicast_interface(s, NULL), -EOPNOTSUPP);
    }
    sockit_close(tcp);
    sockit_close(unix_dgram);

    assert_code(sockit_join_group(NULL, GROUP4, NULL), -EBADF);
    assert_code(sockit_leave_group(NULL, GROUP4, NULL), -EBADF);
    assert_code(sockit_join_source_group(NULL, SSM4, HOST4_A, NULL), -EBADF);
    assert_code(sockit_leave_source_group(NULL, SSM4, HOST4_A, NULL), -EBADF);
    assert_code(sockit_set_multicast_ttl(NULL, 1), -EBADF);
    assert_code(sockit_set_multicast_loop(NULL, true), -EBADF);
    assert_code(sockit_set_multicast_interface(NULL, "mc0"), -EBADF);
}

int main(void)
{
    make_network();
    const struct CMUnitTest tests[] = {
        harness_test(test_two_ipv4_receivers_each_get_the_datagram_once),
        harness_test(test_two_ipv6_receivers_each_get_the_datagram_once),
        harness_test(test_ipv6_group_may_name_its_interface_as_scope),
        harness_test(test_after_leaving_a_receiver_gets_nothing_while_the_other_still_does),
        harness_test(test_loop_off_sends_on_the_wire_but_not_to_this_hosts_members),
        harness_test(test_ttl_and_hops_read_back_and_stay_in_0_to_255),
        harness_test(test_ttl_and_hops_are_what_the_packets_carry),
        harness_test(test_multicast_interface_chooses_the_way_out_and_resets),
        harness_test(test_source_specific_member_gets_only_its_sources_datagrams),
        harness_test(test_join_turns_multicast_all_off_and_a_refused_join_keeps_it),
        harness_test(test_broadcast_needs_the_option_and_reaches_both_receivers),
        harness_test(test_group_must_be_a_numeric_multicast_address_of_the_sockets_family),
        harness_test(test_source_must_be_a_unicast_address_of_the_sockets_family),
        harness_test(test_unknown_interfaces_are_enodev),
        harness_test(test_only_udp_sockets_and_a_null_socket_is_ebadf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
