/* Multicast for UDP sockets: group membership (any-source and source-specific) and
 * the sending side's TTL/hops, loopback and interface. One call serves both families,
 * because the socket knows its own. Membership uses RFC 3678's protocol-independent
 * requests (MCAST_JOIN_GROUP and friends): they take an interface index for IPv4 and
 * IPv6 alike and carry a source as easily as none, so there is one path, not four. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>

/* An IPv6 literal with "%interface" fits; longer text is no numeric address. */
#define MC_TEXT_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 1)
/* "join group <text> source <text> on <text>", each part cut by the format. */
#define MC_CONTEXT_MAX 256

/* Where membership or sending happens: index 0 is the kernel's choice. An IPv4
 * interface named by one of its addresses keeps it: IP_MULTICAST_IF then sends from
 * that address, as the caller asked. */
typedef struct mc_iface {
    unsigned index;
    bool has_addr4;
    struct in_addr addr4;
} mc_iface;

static int level_of(const sockit *s) { return s->family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6; }

static int ip_version(int family) { return family == AF_INET ? 4 : 6; }

/* The kernel would take some of these options on a TCP socket and refuse others
 * with a bare EINVAL or ENOPROTOOPT; one answer for all, with the reason, is clearer. */
static int check_udp(const sockit *s, const char *context)
{
    if (s == NULL)
        return sockit__failf(-EBADF, "%s: no socket", context);
    if (s->type != SOCK_DGRAM || (s->family != AF_INET && s->family != AF_INET6))
        return sockit__failf(-EOPNOTSUPP, "%s (not a UDP socket)", context);
    return 0;
}

/* Parses a numeric IPv4 or IPv6 address into *out. An IPv6 text may end in
 * "%interface", which is split off into *scope (NULL when absent); copy holds the
 * pieces. Returns the family, or 0 when the text is no numeric address. */
static int parse_numeric(const char *text, char copy[MC_TEXT_MAX], struct sockaddr_storage *out,
                         const char **scope)
{
    memset(out, 0, sizeof *out);
    *scope = NULL;
    size_t n = strlen(text);
    if (n == 0 || n >= MC_TEXT_MAX)
        return 0;
    memcpy(copy, text, n + 1);
    struct sockaddr_in *in4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, copy, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        return AF_INET;
    }
    char *pct = strchr(copy, '%');
    if (pct != NULL) {
        *pct = '\0';
        *scope = pct + 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, copy, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return AF_INET6;
    }
    return 0;
}

static bool is_multicast(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return IN_MULTICAST(ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr));
    return IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static bool is_unspecified(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* Parses what must be a numeric address of s's family: a group (multicast) or a
 * source (unicast). */
static int parse_member_addr(const sockit *s, const char *context, bool group, const char *text,
                             char copy[MC_TEXT_MAX], struct sockaddr_storage *out,
                             const char **scope)
{
    const char *what = group ? "group" : "source";
    if (text == NULL)
        return sockit__failf(SOCKIT_EBADADDR, "%s: no %s", context, what);
    int family = parse_numeric(text, copy, out, scope);
    if (family == 0)
        return sockit__failf(SOCKIT_EBADADDR, "%s: %s '%s' is not a numeric IPv4 or IPv6 address",
                             context, what, text);
    if (family != s->family)
        return sockit__failf(-EAFNOSUPPORT, "%s: an IPv%d %s on an IPv%d socket", context,
                             ip_version(family), what, ip_version(s->family));
    if (group && !is_multicast(out))
        return sockit__failf(SOCKIT_EBADADDR, "%s: not a multicast address (%s)", context,
                             family == AF_INET ? "224.0.0.0/4" : "ff00::/8");
    if (!group && (is_multicast(out) || is_unspecified(out)))
        return sockit__failf(SOCKIT_EBADADDR, "%s: a source must be a unicast address", context);
    return 0;
}

static bool same_address(const struct sockaddr *sa, const struct sockaddr_storage *want)
{
    if (sa == NULL || sa->sa_family != want->ss_family)
        return false;
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)want)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
                  &((const struct sockaddr_in6 *)want)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* The index of the interface that holds addr, or 0. -errno if the list fails. */
static int index_of_address(const struct sockaddr_storage *addr, unsigned *index)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0)
        return -errno;
    *index = 0;
    for (const struct ifaddrs *i = list; i != NULL && *index == 0; i = i->ifa_next)
        if (same_address(i->ifa_addr, addr))
            *index = if_nametoindex(i->ifa_name);
    freeifaddrs(list);
    return 0;
}

/* Resolves an interface text: NULL, "" or "0" is the kernel's choice; decimal digits
 * an index; a numeric address (of either family) the interface holding it; anything
 * else a name. Every text that names no interface is -ENODEV. */
static int resolve_iface(const char *context, const char *text, mc_iface *out)
{
    memset(out, 0, sizeof *out);
    if (text == NULL || text[0] == '\0')
        return 0;
    size_t n = strspn(text, "0123456789");
    if (text[n] == '\0') {
        uint64_t v = 0;
        for (size_t i = 0; i < n && v <= UINT32_MAX; i++)
            v = v * 10 + (uint64_t)(text[i] - '0');
        char name[IF_NAMESIZE];
        if (v != 0 && (v > UINT32_MAX || if_indextoname((unsigned)v, name) == NULL))
            return sockit__failf(-ENODEV, "%s: no interface with index %s", context, text);
        out->index = (unsigned)v;
        return 0;
    }
    char copy[MC_TEXT_MAX];
    struct sockaddr_storage addr;
    const char *scope;
    if (parse_numeric(text, copy, &addr, &scope) != 0 && scope == NULL) {
        int rc = index_of_address(&addr, &out->index);
        if (rc < 0)
            return sockit__failf(rc, "%s: listing interfaces", context);
        if (out->index == 0)
            return sockit__failf(-ENODEV, "%s: no interface has address %s", context, text);
        if (addr.ss_family == AF_INET) {
            out->has_addr4 = true;
            out->addr4 = ((const struct sockaddr_in *)&addr)->sin_addr;
        }
        return 0;
    }
    out->index = strlen(text) < IF_NAMESIZE ? if_nametoindex(text) : 0;
    if (out->index == 0)
        return sockit__failf(-ENODEV, "%s: no interface named '%s'", context, text);
    return 0;
}

/* The interface of a membership: the argument, or an IPv6 group's "%scope". Both
 * given must agree. */
static int member_iface(const char *context, const char *interface, const char *scope,
                        mc_iface *out)
{
    bool given = interface != NULL && interface[0] != '\0';
    if (scope == NULL)
        return resolve_iface(context, interface, out);
    int rc = resolve_iface(context, scope, out);
    if (rc < 0 || !given)
        return rc;
    mc_iface other;
    rc = resolve_iface(context, interface, &other);
    if (rc < 0)
        return rc;
    if (other.index != out->index)
        return sockit__failf(-EINVAL, "%s: the group's scope '%s' and the interface disagree",
                             context, scope);
    return 0;
}

/* Linux delivers a group's datagrams to every socket bound to the port once any
 * socket on the host has joined that group (IP_MULTICAST_ALL defaults to on). Other
 * systems, and a caller who just left a group, expect only members to get them, so
 * a join turns the option off for this socket first. Returns the old value (-1: the
 * system has no such option) for restore_all_groups when the join fails. */
static int members_only(sockit *s)
{
#if defined(IP_MULTICAST_ALL) && defined(IPV6_MULTICAST_ALL)
    int name = s->family == AF_INET ? IP_MULTICAST_ALL : IPV6_MULTICAST_ALL;
    int old = 0;
    socklen_t len = sizeof old;
    if (getsockopt(s->fd, level_of(s), name, &old, &len) < 0)
        return -1;
    int off = 0;
    if (old != 0 && setsockopt(s->fd, level_of(s), name, &off, sizeof off) < 0)
        return -1;
    return old;
#else
    (void)s;
    return -1;
#endif
}

static void restore_all_groups(sockit *s, int old)
{
#if defined(IP_MULTICAST_ALL) && defined(IPV6_MULTICAST_ALL)
    int name = s->family == AF_INET ? IP_MULTICAST_ALL : IPV6_MULTICAST_ALL;
    if (old > 0)
        (void)setsockopt(s->fd, level_of(s), name, &old, sizeof old);
#else
    (void)s;
    (void)old;
#endif
}

/* The filter mode of s's membership of group on index: MCAST_INCLUDE (joined for
 * sources), MCAST_EXCLUDE (joined for any source), or -1 when it is not a member or
 * the system cannot say. */
static int filter_mode(const sockit *s, unsigned index, const struct sockaddr_storage *group)
{
    struct group_filter f;
    memset(&f, 0, sizeof f);
    f.gf_interface = index;
    f.gf_group = *group;
    socklen_t len = sizeof f;
    if (getsockopt(s->fd, level_of(s), MCAST_MSFILTER, &f, &len) < 0)
        return -1;
    return (int)f.gf_fmode;
}

/* Linux lets a source request on an any-source membership switch it silently to
 * "only these sources": a join of one source would drop every other sender, a
 * leave of one would drop them all. Both are refused here instead. */
static int check_source_request(const sockit *s, const char *context, bool join, unsigned index,
                                const struct sockaddr_storage *group)
{
    if (filter_mode(s, index, group) != MCAST_EXCLUDE)
        return 0;
    if (join)
        return sockit__failf(-EADDRINUSE, "%s: joined already for any source", context);
    return sockit__failf(-EADDRNOTAVAIL,
                         "%s: joined for any source, not for this one (leave the group)", context);
}

/* One membership change: name is MCAST_JOIN_GROUP, MCAST_LEAVE_GROUP,
 * MCAST_JOIN_SOURCE_GROUP or MCAST_LEAVE_SOURCE_GROUP (source NULL for the first two). */
static int membership(sockit *s, int name, const char *verb, const char *group, const char *source,
                      const char *interface)
{
    bool with_source = name == MCAST_JOIN_SOURCE_GROUP || name == MCAST_LEAVE_SOURCE_GROUP;
    char context[MC_CONTEXT_MAX];
    snprintf(context, sizeof context, "%s group %s%s%s%s%s", verb, group ? group : "(null)",
             with_source ? " source " : "", with_source ? (source ? source : "(null)") : "",
             interface && interface[0] ? " on " : "", interface ? interface : "");
    int rc = check_udp(s, context);
    if (rc < 0)
        return rc;
    char group_copy[MC_TEXT_MAX], source_copy[MC_TEXT_MAX];
    struct sockaddr_storage group_addr, source_addr;
    const char *scope, *source_scope;
    rc = parse_member_addr(s, context, true, group, group_copy, &group_addr, &scope);
    if (rc < 0)
        return rc;
    if (with_source) {
        rc = parse_member_addr(s, context, false, source, source_copy, &source_addr, &source_scope);
        if (rc < 0)
            return rc;
    }
    mc_iface iface;
    rc = member_iface(context, interface, scope, &iface);
    if (rc < 0)
        return rc;

    bool join = name == MCAST_JOIN_GROUP || name == MCAST_JOIN_SOURCE_GROUP;
    if (with_source) {
        rc = check_source_request(s, context, join, iface.index, &group_addr);
        if (rc < 0)
            return rc;
    }
    int old_all = join ? members_only(s) : -1;
    int set;
    if (with_source) {
        struct group_source_req req;
        memset(&req, 0, sizeof req);
        req.gsr_interface = iface.index;
        req.gsr_group = group_addr;
        req.gsr_source = source_addr;
        set = setsockopt(s->fd, level_of(s), name, &req, sizeof req);
    } else {
        struct group_req req;
        memset(&req, 0, sizeof req);
        req.gr_interface = iface.index;
        req.gr_group = group_addr;
        set = setsockopt(s->fd, level_of(s), name, &req, sizeof req);
    }
    if (set == 0)
        return 0;
    int err = errno;
    restore_all_groups(s, old_all);
    /* For a leave, the kernel says "no such membership" as EADDRNOTAVAIL while the
     * group has other sources or no sources at all, but EINVAL once the last source
     * went (or the membership is any-source): one answer for one condition. */
    if (name == MCAST_LEAVE_SOURCE_GROUP && err == EINVAL)
        return sockit__failf(-EADDRNOTAVAIL, "%s: not a member for this source", context);
    return sockit__failf(-err, "%s", context);
}

int sockit_join_group(sockit *s, const char *group, const char *interface)
{
    return membership(s, MCAST_JOIN_GROUP, "join", group, NULL, interface);
}

int sockit_leave_group(sockit *s, const char *group, const char *interface)
{
    return membership(s, MCAST_LEAVE_GROUP, "leave", group, NULL, interface);
}

int sockit_join_source_group(sockit *s, const char *group, const char *source,
                             const char *interface)
{
    return membership(s, MCAST_JOIN_SOURCE_GROUP, "join", group, source, interface);
}

int sockit_leave_source_group(sockit *s, const char *group, const char *source,
                              const char *interface)
{
    return membership(s, MCAST_LEAVE_SOURCE_GROUP, "leave", group, source, interface);
}

int sockit_set_multicast_ttl(sockit *s, int ttl)
{
    const char *text =
        s != NULL && s->family == AF_INET6 ? "IPV6_MULTICAST_HOPS" : "IP_MULTICAST_TTL";
    char context[MC_CONTEXT_MAX];
    snprintf(context, sizeof context, "setsockopt %s=%d", text, ttl);
    int rc = check_udp(s, context);
    if (rc < 0)
        return rc;
    /* The kernel reads -1 as "the default" and would accept it silently. */
    if (ttl < 0 || ttl > 255)
        return sockit__failf(-EINVAL, "%s (must be 0-255)", context);
    return sockit_setsockopt_int(
        s, level_of(s), s->family == AF_INET ? IP_MULTICAST_TTL : IPV6_MULTICAST_HOPS, ttl);
}

int sockit_set_multicast_loop(sockit *s, bool on)
{
    const char *text =
        s != NULL && s->family == AF_INET6 ? "IPV6_MULTICAST_LOOP" : "IP_MULTICAST_LOOP";
    char context[MC_CONTEXT_MAX];
    snprintf(context, sizeof context, "setsockopt %s=%d", text, on);
    int rc = check_udp(s, context);
    if (rc < 0)
        return rc;
    return sockit_setsockopt_int(
        s, level_of(s), s->family == AF_INET ? IP_MULTICAST_LOOP : IPV6_MULTICAST_LOOP, on);
}

int sockit_set_multicast_interface(sockit *s, const char *interface)
{
    const char *text = s != NULL && s->family == AF_INET6 ? "IPV6_MULTICAST_IF" : "IP_MULTICAST_IF";
    char context[MC_CONTEXT_MAX];
    snprintf(context, sizeof context, "setsockopt %s=%s", text,
             interface && interface[0] ? interface : "(any)");
    int rc = check_udp(s, context);
    if (rc < 0)
        return rc;
    mc_iface iface;
    rc = resolve_iface(context, interface, &iface);
    if (rc < 0)
        return rc;
    if (s->family == AF_INET) {
        struct ip_mreqn req;
        memset(&req, 0, sizeof req);
        req.imr_ifindex = (int)iface.index;
        if (iface.has_addr4)
            req.imr_address = iface.addr4;
        rc = setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_IF, &req, sizeof req);
    } else {
        int index = (int)iface.index;
        rc = setsockopt(s->fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof index);
    }
    if (rc == 0)
        return 0;
    int err = errno;
    return sockit__failf(-err, "%s", context);
}
