/* Socket options: the raw get/set pair, an int shorthand, and the named helpers for
 * the options people actually set. Every failure message names the option. */
#include "internal.h"

#include <errno.h>
#include <netinet/tcp.h>

static const struct {
    int level, name;
    const char *text;
} option_names[] = {
    {SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"},
    {SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT"},
    {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"},
    {SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST"},
    {SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"},
    {SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"},
    {SOL_SOCKET, SO_LINGER, "SO_LINGER"},
    {SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT"},
    {SOL_SOCKET, SO_SNDLOWAT, "SO_SNDLOWAT"},
    {SOL_SOCKET, SO_RCVTIMEO, "SO_RCVTIMEO"},
    {SOL_SOCKET, SO_SNDTIMEO, "SO_SNDTIMEO"},
    {SOL_SOCKET, SO_ERROR, "SO_ERROR"},
    {SOL_SOCKET, SO_TYPE, "SO_TYPE"},
    {SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY"},
    {SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE"},
    {IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"},
    {IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"},
    {IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"},
    {IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT"},
    {IPPROTO_TCP, TCP_QUICKACK, "TCP_QUICKACK"},
    {IPPROTO_IP, IP_TTL, "IP_TTL"},
    {IPPROTO_IP, IP_TOS, "IP_TOS"},
    {IPPROTO_IP, IP_MULTICAST_TTL, "IP_MULTICAST_TTL"},
    {IPPROTO_IP, IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP"},
    {IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY"},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS"},
    {IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS"},
    {IPPROTO_IPV6, IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP"},
};

/* Enough for "option 2147483647 at level -2147483648". */
#define OPTION_NAME_MAX 48

static const char *option_name(char *buf, size_t size, int level, int name)
{
    for (size_t i = 0; i < sizeof option_names / sizeof option_names[0]; i++)
        if (option_names[i].level == level && option_names[i].name == name)
            return option_names[i].text;
    snprintf(buf, size, "option %d at level %d", name, level);
    return buf;
}

int sockit_setsockopt(sockit *s, int level, int name, const void *value, socklen_t len)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "setsockopt");
    if (setsockopt(s->fd, level, name, value, len) == 0)
        return 0;
    int err = errno;
    char buf[OPTION_NAME_MAX];
    return sockit__failf(-err, "setsockopt %s", option_name(buf, sizeof buf, level, name));
}

int sockit_getsockopt(const sockit *s, int level, int name, void *value, socklen_t *len)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "getsockopt");
    char buf[OPTION_NAME_MAX];
    if (len == NULL)
        return sockit__failf(-EINVAL, "getsockopt %s: no length",
                             option_name(buf, sizeof buf, level, name));
    if (getsockopt(s->fd, level, name, value, len) == 0)
        return 0;
    int err = errno;
    return sockit__failf(-err, "getsockopt %s", option_name(buf, sizeof buf, level, name));
}

int sockit_setsockopt_int(sockit *s, int level, int name, int value)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "setsockopt");
    if (setsockopt(s->fd, level, name, &value, sizeof value) == 0)
        return 0;
    int err = errno;
    char buf[OPTION_NAME_MAX];
    return sockit__failf(-err, "setsockopt %s=%d", option_name(buf, sizeof buf, level, name),
                         value);
}

int sockit_getsockopt_int(const sockit *s, int level, int name, int *value)
{
    if (value == NULL)
        return sockit__fail(-EINVAL, "getsockopt");
    /* Some options (IP_TOS, IP_MULTICAST_TTL) may answer in fewer bytes than an int;
     * starting from 0 keeps the unwritten high bytes from being garbage. */
    int v = 0;
    socklen_t len = sizeof v;
    int rc = sockit_getsockopt(s, level, name, &v, &len);
    if (rc < 0)
        return rc;
    *value = v;
    return 0;
}

int sockit_set_reuseaddr(sockit *s, bool on)
{
    return sockit_setsockopt_int(s, SOL_SOCKET, SO_REUSEADDR, on);
}

int sockit_set_reuseport(sockit *s, bool on)
{
    return sockit_setsockopt_int(s, SOL_SOCKET, SO_REUSEPORT, on);
}

int sockit_set_keepalive(sockit *s, bool on)
{
    return sockit_setsockopt_int(s, SOL_SOCKET, SO_KEEPALIVE, on);
}

int sockit_set_broadcast(sockit *s, bool on)
{
    return sockit_setsockopt_int(s, SOL_SOCKET, SO_BROADCAST, on);
}

int sockit_set_nodelay(sockit *s, bool on)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "setsockopt");
    /* The kernel would answer a Unix or UDP socket with a bare EOPNOTSUPP/ENOPROTOOPT;
     * saying why is worth the check. */
    if (s->type != SOCK_STREAM || (s->family != AF_INET && s->family != AF_INET6))
        return sockit__failf(-EOPNOTSUPP, "setsockopt TCP_NODELAY=%d (not a TCP socket)", on);
    return sockit_setsockopt_int(s, IPPROTO_TCP, TCP_NODELAY, on);
}

int sockit_set_v6only(sockit *s, bool on)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "setsockopt");
    if (s->family != AF_INET6)
        return sockit__failf(-EAFNOSUPPORT, "setsockopt IPV6_V6ONLY=%d (not an AF_INET6 socket)",
                             on);
    return sockit_setsockopt_int(s, IPPROTO_IPV6, IPV6_V6ONLY, on);
}

/* The kernel reads a negative size as a huge unsigned one and clamps it to the
 * system maximum, so a sign bug in the caller would silently max the buffer. */
static int set_bufsize(sockit *s, int name, const char *text, int bytes)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "setsockopt");
    if (bytes < 0)
        return sockit__failf(-EINVAL, "setsockopt %s=%d", text, bytes);
    return sockit_setsockopt_int(s, SOL_SOCKET, name, bytes);
}

int sockit_set_rcvbuf(sockit *s, int bytes)
{
    return set_bufsize(s, SO_RCVBUF, "SO_RCVBUF", bytes);
}

int sockit_set_sndbuf(sockit *s, int bytes)
{
    return set_bufsize(s, SO_SNDBUF, "SO_SNDBUF", bytes);
}

int sockit_set_linger(sockit *s, bool on, int seconds)
{
    if (s == NULL)
        return sockit__fail(-EBADF, "setsockopt");
    if (on && seconds < 0)
        return sockit__failf(-EINVAL, "setsockopt SO_LINGER=on,%ds", seconds);
    struct linger l = {.l_onoff = on, .l_linger = on ? seconds : 0};
    if (setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0)
        return 0;
    int err = errno;
    return sockit__failf(-err, "setsockopt SO_LINGER=%s,%ds", on ? "on" : "off", seconds);
}
