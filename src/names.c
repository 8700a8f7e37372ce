/* Names: the reverse direction of resolve.c (getnameinfo, gethostbyaddr, getfqdn),
 * this host's name, and network interfaces by name and index. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

_Static_assert(IF_NAMESIZE == SOCKIT_IF_NAMESIZE, "SOCKIT_IF_NAMESIZE is the system's");
_Static_assert(NI_MAXHOST == SOCKIT_NI_MAXHOST, "SOCKIT_NI_MAXHOST is the system's");
_Static_assert(NI_MAXSERV == SOCKIT_NI_MAXSERV, "SOCKIT_NI_MAXSERV is the system's");

/* gethostbyaddr_r's scratch space grows by doubling on ERANGE up to this; a host
 * entry this large is a broken resolver, not a real host. */
#define HOSTENT_BUF_MAX (1u << 20)

/* Copies text into buf[size] whole, or leaves "" and fails: an answer is never cut. */
static int put(const char *op, const char *what, const char *text, char *buf, size_t size)
{
    size_t n = strlen(text);
    if (n >= size) {
        if (size > 0)
            buf[0] = '\0';
        return sockit__failf(-ENOSPC, "%s: %s '%s' needs %zu bytes, buffer has %zu", op, what, text,
                             n + 1, size);
    }
    memcpy(buf, text, n + 1);
    return (int)n;
}

int sockit_getnameinfo(const sockit_addr *addr, int flags, char *host, size_t hostlen, char *serv,
                       size_t servlen)
{
    if (host != NULL && hostlen > 0)
        host[0] = '\0';
    if (serv != NULL && servlen > 0)
        serv[0] = '\0';
    if (addr == NULL || addr->len == 0)
        return sockit__failf(SOCKIT_EBADADDR, "getnameinfo: no address");
    char text[SOCKIT_ADDRSTRLEN];
    sockit__addr_text(addr, text, sizeof text);
    int family = addr->u.sa.sa_family;
    if (family != AF_INET && family != AF_INET6)
        return sockit__failf(-EAFNOSUPPORT, "getnameinfo %s: not an IP address", text);
    if (host == NULL && serv == NULL)
        return sockit__failf(-EINVAL, "getnameinfo %s: neither host nor service asked for", text);
    /* Buffers of the largest size the resolver knows, so a short caller buffer is
     * told apart from a resolver failure (glibc's EAI_OVERFLOW names neither). */
    char h[NI_MAXHOST], s[NI_MAXSERV];
    int rc =
        getnameinfo(&addr->u.sa, addr->len, host != NULL ? h : NULL, host != NULL ? sizeof h : 0,
                    serv != NULL ? s : NULL, serv != NULL ? sizeof s : 0, flags);
    int err = errno;
    if (rc != 0)
        return sockit__failf(sockit__from_eai(rc, err), "getnameinfo %s (flags 0x%x)", text,
                             (unsigned)flags);
    if (host != NULL && (rc = put("getnameinfo", "host name", h, host, hostlen)) < 0)
        return rc;
    if (serv != NULL && (rc = put("getnameinfo", "service", s, serv, servlen)) < 0) {
        if (host != NULL && hostlen > 0)
            host[0] = '\0';
        return rc;
    }
    return 0;
}

/* gethostname into h[NI_MAXHOST], NUL-terminated even where the name filled it. */
static int host_name(char *h, size_t size)
{
    if (gethostname(h, size) < 0)
        return -errno;
    h[size - 1] = '\0';
    return 0;
}

int sockit_gethostname(char *buf, size_t size)
{
    if (buf == NULL)
        return sockit__failf(-EINVAL, "gethostname: no buffer");
    char h[NI_MAXHOST];
    int rc = host_name(h, sizeof h);
    if (rc < 0) {
        if (size > 0)
            buf[0] = '\0';
        return sockit__failf(rc, "gethostname");
    }
    return put("gethostname", "host name", h, buf, size);
}

/* h_errno of gethostbyaddr_r as a code: the EAI_* code of the same meaning. */
static int from_herrno(int h_err, int rc)
{
    switch (h_err) {
    case HOST_NOT_FOUND:
        return SOCKIT_EAI_NONAME;
    case TRY_AGAIN:
        return SOCKIT_EAI_AGAIN;
    case NO_RECOVERY:
        return SOCKIT_EAI_FAIL;
    case NO_DATA:
        return SOCKIT_EAI_NODATA;
    default: /* NETDB_INTERNAL: errno says */
        return rc > 0 ? -rc : SOCKIT_EAI_OTHER;
    }
}

static size_t count(char *const *list)
{
    size_t n = 0;
    while (list != NULL && list[n] != NULL)
        n++;
    return n;
}

/* Copies a struct hostent into one allocation: the result, its two pointer arrays,
 * then the strings. NULL when out of memory. */
static sockit_hostent *copy_hostent(const struct hostent *he)
{
    size_t naliases = count(he->h_aliases);
    size_t naddrs = 0;
    while (he->h_addr_list != NULL && he->h_addr_list[naddrs] != NULL)
        naddrs++;
    size_t text = strlen(he->h_name) + 1;
    for (size_t i = 0; i < naliases; i++)
        text += strlen(he->h_aliases[i]) + 1;
    text += naddrs * INET6_ADDRSTRLEN;
    size_t head = sizeof(sockit_hostent) + (naliases + 1 + naddrs + 1) * sizeof(char *);
    sockit_hostent *h = sockit__calloc(1, head + text);
    if (h == NULL)
        return NULL;
    h->aliases = (char **)(h + 1);
    h->addrs = h->aliases + naliases + 1;
    char *p = (char *)h + head;
    size_t n = strlen(he->h_name) + 1;
    h->name = memcpy(p, he->h_name, n);
    p += n;
    for (size_t i = 0; i < naliases; i++) {
        n = strlen(he->h_aliases[i]) + 1;
        h->aliases[i] = memcpy(p, he->h_aliases[i], n);
        p += n;
    }
    for (size_t i = 0; i < naddrs; i++) {
        if (inet_ntop(he->h_addrtype, he->h_addr_list[i], p, INET6_ADDRSTRLEN) == NULL)
            continue; /* an entry of another family: not an address we can name */
        h->addrs[h->naddrs++] = p;
        p += strlen(p) + 1;
    }
    h->naliases = naliases;
    return h;
}

/* The reverse lookup of a (IPv4 or IPv6) into *out. Returns 0 or a code; sets no
 * message, so getfqdn can swallow a failure as Python's does. */
static int reverse(const sockit_addr *a, sockit_hostent **out)
{
    const void *bytes = &a->u.in4.sin_addr;
    socklen_t len = sizeof a->u.in4.sin_addr;
    if (a->u.sa.sa_family == AF_INET6) {
        bytes = &a->u.in6.sin6_addr;
        len = sizeof a->u.in6.sin6_addr;
    }
    struct hostent he, *res = NULL;
    int h_err = 0, rc = ERANGE;
    char *buf = NULL;
    for (size_t size = 1024; rc == ERANGE && size <= HOSTENT_BUF_MAX; size *= 2) {
        char *bigger = sockit__realloc(buf, size);
        if (bigger == NULL) {
            sockit__free(buf);
            return -ENOMEM;
        }
        buf = bigger;
        rc = gethostbyaddr_r(bytes, len, a->u.sa.sa_family, &he, buf, size, &res, &h_err);
    }
    int code = 0;
    if (res == NULL)
        code = rc == ERANGE ? -ENOMEM : from_herrno(h_err, rc);
    else if ((*out = copy_hostent(res)) == NULL)
        code = -ENOMEM;
    else if ((*out)->naddrs == 0) {
        sockit__free(*out);
        *out = NULL;
        code = SOCKIT_EAI_NODATA;
    }
    sockit__free(buf);
    return code;
}

/* host as an address: a numeric one as it is, a name by its first address
 * (Python's setipaddr); getaddrinfo reads numeric forms, scope ids included,
 * without asking anyone. Returns 0 or a code, with no message. */
static int host_address(const char *host, sockit_addr *a)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM; /* one entry per address, not one per type */
    sockit_addrinfo ai;
    ssize_t n = sockit__resolve_now(host, NULL, &hints, &ai, 1);
    if (n < 0)
        return (int)n;
    *a = ai.addr;
    return 0;
}

int sockit_gethostbyaddr(const char *host, sockit_hostent **out)
{
    if (out != NULL)
        *out = NULL;
    if (host == NULL || out == NULL)
        return sockit__failf(-EINVAL, "gethostbyaddr: no %s", host == NULL ? "host" : "output");
    if (host[0] == '\0')
        return sockit__failf(SOCKIT_EBADADDR, "gethostbyaddr '': empty host");
    sockit_addr a;
    int rc = host_address(host, &a);
    if (rc < 0)
        return sockit__failf(rc, "gethostbyaddr %s", host);
    rc = reverse(&a, out);
    if (rc < 0) {
        char text[SOCKIT_ADDRSTRLEN];
        sockit__addr_text(&a, text, sizeof text);
        return sockit__failf(rc, "gethostbyaddr %s (%s)", host, text);
    }
    return 0;
}

void sockit_freehostent(sockit_hostent *h) { sockit__free(h); }

int sockit_getfqdn(const char *name, char *buf, size_t size)
{
    if (buf == NULL)
        return sockit__failf(-EINVAL, "getfqdn: no buffer");
    static const char space[] = " \t\n\r\v\f"; /* what Python's str.strip() removes */
    const char *start = name != NULL ? name + strspn(name, space) : "";
    size_t len = strlen(start);
    while (len > 0 && strchr(space, start[len - 1]) != NULL)
        len--;
    /* No host name is this long (DNS allows 253 bytes): it is its own answer. */
    char given[NI_MAXHOST];
    if (len >= sizeof given) {
        char *copy = sockit__malloc(len + 1);
        if (copy == NULL)
            return sockit__failf(-ENOMEM, "getfqdn");
        memcpy(copy, start, len);
        copy[len] = '\0';
        int rc = put("getfqdn", "name", copy, buf, size);
        sockit__free(copy);
        return rc;
    }
    memcpy(given, start, len);
    given[len] = '\0';
    if (len == 0 || strcmp(given, "0.0.0.0") == 0 || strcmp(given, "::") == 0) {
        int rc = host_name(given, sizeof given);
        if (rc < 0) {
            if (size > 0)
                buf[0] = '\0';
            return sockit__failf(rc, "getfqdn: gethostname");
        }
    }
    sockit_addr a;
    sockit_hostent *h = NULL;
    if (given[0] == '\0' || host_address(given, &a) < 0 || reverse(&a, &h) < 0)
        return put("getfqdn", "name", given, buf, size);
    const char *pick = h->name;
    for (size_t i = 0; strchr(pick, '.') == NULL && i < h->naliases; i++)
        if (strchr(h->aliases[i], '.') != NULL)
            pick = h->aliases[i];
    int rc = put("getfqdn", "name", pick, buf, size);
    sockit_freehostent(h);
    return rc;
}

int sockit_if_nametoindex(const char *name)
{
    if (name == NULL)
        return sockit__failf(-EINVAL, "if_nametoindex: no name");
    size_t n = strlen(name);
    if (n == 0 || n >= IF_NAMESIZE)
        return sockit__failf(-ENODEV, "if_nametoindex '%s': %s", name,
                             n == 0 ? "empty name" : "longer than an interface name can be");
    errno = 0;
    unsigned index = if_nametoindex(name);
    int err = errno;
    if (index == 0)
        return sockit__failf(err > 0 ? -err : -ENODEV, "if_nametoindex '%s'", name);
    if (index > INT32_MAX) /* the kernel's indexes are ints: never seen */
        return sockit__failf(-ERANGE, "if_nametoindex '%s': index %u", name, index);
    return (int)index;
}

int sockit_if_indextoname(unsigned index, char *buf, size_t size)
{
    if (buf == NULL)
        return sockit__failf(-EINVAL, "if_indextoname %u: no buffer", index);
    if (size > 0)
        buf[0] = '\0';
    /* The kernel reads the index as an int: a larger one would wrap to a negative. */
    if (index == 0 || index > INT32_MAX)
        return sockit__failf(-ENXIO, "if_indextoname %u: %s", index,
                             index == 0 ? "index 0 names no interface" : "beyond any index");
    char name[IF_NAMESIZE];
    if (if_indextoname(index, name) == NULL) {
        int err = errno;
        return sockit__failf(err > 0 ? -err : -ENXIO, "if_indextoname %u", index);
    }
    return put("if_indextoname", "interface name", name, buf, size);
}

ssize_t sockit_if_nameindex(sockit_ifname **out)
{
    if (out == NULL)
        return sockit__failf(-EINVAL, "if_nameindex: no output");
    *out = NULL;
    struct if_nameindex *list = if_nameindex();
    if (list == NULL)
        return sockit__failf(errno > 0 ? -errno : -ENOMEM, "if_nameindex");
    size_t n = 0;
    while (list[n].if_index != 0 && list[n].if_name != NULL)
        n++;
    sockit_ifname *copy = sockit__calloc(n + 1, sizeof *copy);
    if (copy == NULL) {
        if_freenameindex(list);
        return sockit__failf(-ENOMEM, "if_nameindex: %zu interfaces", n);
    }
    for (size_t i = 0; i < n; i++) {
        copy[i].index = list[i].if_index;
        /* The kernel's names are shorter than IF_NAMESIZE; snprintf only guards it. */
        snprintf(copy[i].name, sizeof copy[i].name, "%s", list[i].if_name);
    }
    if_freenameindex(list);
    *out = copy;
    return (ssize_t)n;
}

void sockit_if_freenameindex(sockit_ifname *list) { sockit__free(list); }
