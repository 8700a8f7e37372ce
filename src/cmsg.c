/* Control messages: building them, walking them, and the three that servers ask for
 * (credentials, timestamps, packet info). Offsets into the control buffer are kept
 * as CMSG_SPACE multiples, so every header lands where the kernel's macros expect. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* CMSG_DATA's offset from its header, without the macro's cast of a const pointer. */
#define CMSG_DATA_OFFSET CMSG_LEN(0)
/* The alignment every control message starts on (CMSG_ALIGN's unit). */
#define CMSG_UNIT (CMSG_SPACE(1) - CMSG_SPACE(0))

int sockit_cmsg_add(void *control, size_t capacity, size_t *used, int level, int type,
                    const void *data, size_t len)
{
    if (control == NULL || used == NULL || (data == NULL && len > 0))
        return sockit__failf(-EINVAL, "cmsg_add: needs a control buffer, *used and the data");
    size_t at = *used;
    if (at % CMSG_UNIT != 0)
        return sockit__failf(-EINVAL,
                             "cmsg_add: *used is %zu, not where a control message can start "
                             "(a multiple of %zu)",
                             at, (size_t)CMSG_UNIT);
    size_t need = len <= capacity ? CMSG_SPACE(len) : capacity + 1; /* no wrap for huge len */
    if (at > capacity || need > capacity - at)
        return sockit__failf(-ENOBUFS,
                             "cmsg_add: a %zu-byte control message needs %zu bytes, %zu are free",
                             len, need, at > capacity ? 0 : capacity - at);
    char *p = (char *)control + at;
    memset(p, 0, need);
    struct cmsghdr hdr = {.cmsg_len = CMSG_LEN(len), .cmsg_level = level, .cmsg_type = type};
    memcpy(p, &hdr, sizeof hdr);
    if (len > 0)
        memcpy(p + CMSG_DATA_OFFSET, data, len);
    *used = at + need;
    return 0;
}

bool sockit_cmsg_next(const sockit_msg *m, size_t *cursor, sockit_cmsg *out)
{
    if (m == NULL || cursor == NULL || out == NULL || m->control == NULL)
        return false;
    size_t at = *cursor;
    if (at > m->controllen || m->controllen - at < sizeof(struct cmsghdr))
        return false;
    const char *p = (const char *)m->control + at;
    struct cmsghdr hdr;
    memcpy(&hdr, p, sizeof hdr);
    /* A header that claims more than the buffer holds (a truncated one) ends the walk. */
    if (hdr.cmsg_len < CMSG_DATA_OFFSET || hdr.cmsg_len > m->controllen - at)
        return false;
    out->level = hdr.cmsg_level;
    out->type = hdr.cmsg_type;
    out->data = p + CMSG_DATA_OFFSET;
    out->len = hdr.cmsg_len - CMSG_DATA_OFFSET;
    *cursor = at + CMSG_SPACE(out->len);
    return true;
}

/* The first control message of level and type whose data holds at least len bytes. */
static const void *find(const sockit_msg *m, int level, int type, size_t len)
{
    size_t cursor = 0;
    sockit_cmsg c;
    while (sockit_cmsg_next(m, &cursor, &c))
        if (c.level == level && c.type == type && c.len >= len)
            return c.data;
    return NULL;
}

static int none_found(const char *what)
{
    return sockit__failf(-ENOENT, "cmsg: the message carries no %s", what);
}

/* ---- credentials ------------------------------------------------------------- */

int sockit_set_passcred(sockit *s, bool on)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "set_passcred");
    if (s->family != AF_UNIX)
        return sockit__failf(-EOPNOTSUPP, "set_passcred: credentials pass only over AF_UNIX");
    return sockit_setsockopt_int(s, SOL_SOCKET, SO_PASSCRED, on);
}

int sockit_cmsg_creds(const sockit_msg *m, sockit_creds *out)
{
    if (m == NULL || out == NULL)
        return sockit__failf(-EINVAL, "cmsg_creds: needs a message and an out pointer");
    const void *data = find(m, SOL_SOCKET, SCM_CREDENTIALS, sizeof(struct ucred));
    if (data == NULL)
        return none_found("credentials (SCM_CREDENTIALS)");
    struct ucred u;
    memcpy(&u, data, sizeof u);
    *out = (sockit_creds){.pid = u.pid, .uid = u.uid, .gid = u.gid};
    return 0;
}

int sockit_cmsg_add_creds(void *control, size_t capacity, size_t *used, const sockit_creds *creds)
{
    struct ucred u = {.pid = getpid(), .uid = geteuid(), .gid = getegid()};
    if (creds != NULL)
        u = (struct ucred){.pid = creds->pid, .uid = creds->uid, .gid = creds->gid};
    return sockit_cmsg_add(control, capacity, used, SOL_SOCKET, SCM_CREDENTIALS, &u, sizeof u);
}

/* ---- timestamps -------------------------------------------------------------- */

int sockit_set_timestamps(sockit *s, bool on)
{
    return sockit_setsockopt_int(s, SOL_SOCKET, SO_TIMESTAMPNS, on);
}

int sockit_cmsg_timestamp(const sockit_msg *m, struct timespec *out)
{
    if (m == NULL || out == NULL)
        return sockit__failf(-EINVAL, "cmsg_timestamp: needs a message and an out pointer");
    const void *data = find(m, SOL_SOCKET, SCM_TIMESTAMPNS, sizeof(struct timespec));
    if (data != NULL) {
        memcpy(out, data, sizeof *out);
        return 0;
    }
    data = find(m, SOL_SOCKET, SCM_TIMESTAMP, sizeof(struct timeval));
    if (data == NULL)
        return none_found("timestamp (SCM_TIMESTAMPNS or SCM_TIMESTAMP)");
    struct timeval tv;
    memcpy(&tv, data, sizeof tv);
    *out = (struct timespec){.tv_sec = tv.tv_sec, .tv_nsec = tv.tv_usec * 1000};
    return 0;
}

/* ---- packet info ------------------------------------------------------------- */

int sockit_set_recv_pktinfo(sockit *s, bool on)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "set_recv_pktinfo");
    if (s->type != SOCK_DGRAM || (s->family != AF_INET && s->family != AF_INET6))
        return sockit__failf(-EOPNOTSUPP,
                             "set_recv_pktinfo: packet info is for UDP (IPv4 or IPv6) sockets");
    if (s->family == AF_INET)
        return sockit_setsockopt_int(s, IPPROTO_IP, IP_PKTINFO, on);
    int rc = sockit_setsockopt_int(s, IPPROTO_IPV6, IPV6_RECVPKTINFO, on);
    if (rc < 0)
        return rc;
    /* IPv4 datagrams reaching a dual-stack socket report through the IPv4 option. */
    int v6only = 1;
    if (sockit_getsockopt_int(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only) == 0 && !v6only)
        return sockit_setsockopt_int(s, IPPROTO_IP, IP_PKTINFO, on);
    return 0;
}

int sockit_cmsg_pktinfo(const sockit_msg *m, sockit_addr *local, unsigned *ifindex)
{
    if (m == NULL)
        return sockit__failf(-EINVAL, "cmsg_pktinfo: no message");
    const void *data = find(m, IPPROTO_IPV6, IPV6_PKTINFO, sizeof(struct in6_pktinfo));
    if (data != NULL) {
        struct in6_pktinfo pi;
        memcpy(&pi, data, sizeof pi);
        if (local != NULL) {
            memset(local, 0, sizeof *local);
            local->u.in6.sin6_family = AF_INET6;
            local->u.in6.sin6_addr = pi.ipi6_addr;
            /* A link-local destination means nothing without its interface. */
            if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
                local->u.in6.sin6_scope_id = pi.ipi6_ifindex;
            local->len = sizeof local->u.in6;
        }
        if (ifindex != NULL)
            *ifindex = (unsigned)pi.ipi6_ifindex;
        return 0;
    }
    data = find(m, IPPROTO_IP, IP_PKTINFO, sizeof(struct in_pktinfo));
    if (data == NULL)
        return none_found("packet info (IP_PKTINFO or IPV6_PKTINFO)");
    struct in_pktinfo pi;
    memcpy(&pi, data, sizeof pi);
    if (local != NULL) {
        memset(local, 0, sizeof *local);
        /* The sender's address of this message says which family the socket speaks: a
         * dual-stack socket names IPv4 peers as ::ffff:a.b.c.d, and so its own end. */
        if (m->addr.len > 0 && m->addr.u.sa.sa_family == AF_INET6) {
            local->u.in6.sin6_family = AF_INET6;
            local->u.in6.sin6_addr.s6_addr[10] = 0xff;
            local->u.in6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&local->u.in6.sin6_addr.s6_addr[12], &pi.ipi_addr, 4);
            local->len = sizeof local->u.in6;
        } else {
            local->u.in4.sin_family = AF_INET;
            local->u.in4.sin_addr = pi.ipi_addr;
            local->len = sizeof local->u.in4;
        }
    }
    if (ifindex != NULL)
        *ifindex = (unsigned)pi.ipi_ifindex;
    return 0;
}

int sockit_cmsg_add_pktinfo(void *control, size_t capacity, size_t *used, const sockit_addr *source,
                            unsigned ifindex)
{
    if (source == NULL || source->len == 0)
        return sockit__failf(SOCKIT_EBADADDR, "cmsg_add_pktinfo: no source address");
    int family = source->u.sa.sa_family;
    if (family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&source->u.in6.sin6_addr)) {
        struct in6_pktinfo pi = {.ipi6_addr = source->u.in6.sin6_addr,
                                 .ipi6_ifindex = (int)ifindex};
        return sockit_cmsg_add(control, capacity, used, IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof pi);
    }
    struct in_pktinfo pi = {.ipi_ifindex = (int)ifindex};
    if (family == AF_INET6)
        memcpy(&pi.ipi_spec_dst, &source->u.in6.sin6_addr.s6_addr[12], 4);
    else if (family == AF_INET)
        pi.ipi_spec_dst = source->u.in4.sin_addr;
    else
        return sockit__failf(SOCKIT_EBADADDR, "cmsg_add_pktinfo: the source is not an IP address");
    return sockit_cmsg_add(control, capacity, used, IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
}
