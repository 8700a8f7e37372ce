/* sockit_addr: parsing, building, formatting and comparing addresses. Every function
 * here is pure (no allocation, no I/O beyond interface-name and service lookups) and
 * writes only into the caller's bounded buffers. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>

#define UNIX_PATH_OFFSET offsetof(struct sockaddr_un, sun_path)
#define UNIX_PATH_MAX    (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

/* A numeric host is at most an IPv6 literal with "%interface"; anything longer is
 * rejected before copying, so the copies below stay on the stack. */
#define HOST_TEXT_MAX (INET6_ADDRSTRLEN + IF_NAMESIZE + 16)

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Decimal digits only: no sign, no spaces, no junk. Returns the value, or -1 when
 * the text is not all digits, or -2 when it exceeds max. */
static long parse_decimal(const char *s, size_t n, long max)
{
    if (!all_digits(s, n))
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return -2;
    }
    return v;
}

/* "lo" or "1" into *index. Returns false when it names no interface. */
static bool parse_scope(const char *scope, uint32_t *index)
{
    size_t n = strlen(scope);
    if (all_digits(scope, n)) {
        long v = parse_decimal(scope, n, (long)UINT32_MAX);
        *index = v < 0 ? 0 : (uint32_t)v;
        return v >= 0;
    }
    *index = if_nametoindex(scope);
    return *index != 0;
}

/* Builds an IP address without touching the error state; returns 0 or
 * SOCKIT_EBADADDR and sets *why to the reason. */
static int build_ip(sockit_addr *out, const char *host, uint16_t port, const char **why)
{
    size_t n = strlen(host);
    if (n == 0) {
        *why = "empty host";
        return SOCKIT_EBADADDR;
    }
    if (n >= HOST_TEXT_MAX) {
        *why = "host too long for a numeric address";
        return SOCKIT_EBADADDR;
    }
    sockit_addr a;
    memset(&a, 0, sizeof a);
    if (strchr(host, ':') == NULL) {
        if (inet_pton(AF_INET, host, &a.u.in4.sin_addr) != 1) {
            *why = "not a numeric IPv4 or IPv6 address";
            return SOCKIT_EBADADDR;
        }
        a.u.in4.sin_family = AF_INET;
        a.u.in4.sin_port = htons(port);
        a.len = sizeof a.u.in4;
        *out = a;
        return 0;
    }
    char copy[HOST_TEXT_MAX];
    memcpy(copy, host, n + 1);
    char *pct = strchr(copy, '%');
    uint32_t scope = 0;
    if (pct != NULL) {
        *pct = '\0';
        if (!parse_scope(pct + 1, &scope)) {
            *why = "unknown interface in scope";
            return SOCKIT_EBADADDR;
        }
    }
    if (inet_pton(AF_INET6, copy, &a.u.in6.sin6_addr) != 1) {
        *why = "not a numeric IPv6 address";
        return SOCKIT_EBADADDR;
    }
    a.u.in6.sin6_family = AF_INET6;
    a.u.in6.sin6_port = htons(port);
    a.u.in6.sin6_scope_id = scope;
    a.len = sizeof a.u.in6;
    *out = a;
    return 0;
}

int sockit_addr_ip(sockit_addr *out, const char *numeric_host, int port)
{
    if (out == NULL || numeric_host == NULL)
        return sockit__failf(SOCKIT_EBADADDR, "address: no %s", out ? "host" : "output");
    if (port < 0 || port > 65535)
        return sockit__failf(SOCKIT_EBADPORT, "address %s port %d: out of range 0-65535",
                             numeric_host, port);
    const char *why = "";
    int rc = build_ip(out, numeric_host, (uint16_t)port, &why);
    if (rc < 0)
        return sockit__failf(rc, "address '%s': %s", numeric_host, why);
    return 0;
}

/* Builds a Unix address without touching the error state; returns 0, SOCKIT_EBADADDR
 * or SOCKIT_EPATHLEN and sets *why to the reason. */
static int build_unix(sockit_addr *out, const char *path, const char **why)
{
    bool abstract = path[0] == '@';
    const char *name = abstract ? path + 1 : path;
    size_t n = strlen(name);
    if (n == 0) {
        *why = abstract ? "empty abstract name" : "empty path";
        return SOCKIT_EBADADDR;
    }
    if (n > UNIX_PATH_MAX) {
        *why = "path longer than the 107 bytes sun_path holds";
        return SOCKIT_EPATHLEN;
    }
    sockit_addr a;
    memset(&a, 0, sizeof a);
    a.u.un.sun_family = AF_UNIX;
    if (abstract) {
        /* An abstract name is exactly the bytes counted by the length: a trailing NUL
         * would become part of the name and no peer would find it. */
        memcpy(a.u.un.sun_path + 1, name, n);
        a.len = (socklen_t)(UNIX_PATH_OFFSET + 1 + n);
    } else {
        memcpy(a.u.un.sun_path, name, n);
        /* Counting the NUL matches what getsockname reports for a bound path. */
        a.len = (socklen_t)(UNIX_PATH_OFFSET + n + 1);
    }
    *out = a;
    return 0;
}

int sockit_addr_unix(sockit_addr *out, const char *path)
{
    if (out == NULL || path == NULL)
        return sockit__failf(SOCKIT_EBADADDR, "unix address: no %s", out ? "path" : "output");
    const char *why = "";
    int rc = build_unix(out, path, &why);
    if (rc < 0)
        return sockit__failf(rc, "unix address '%s': %s", path, why);
    return 0;
}

/* Parses "digits" for an address; sets the message with the whole text on error. */
static int addr_port(const char *text, const char *port, int *out)
{
    size_t n = strlen(port);
    if (n == 0)
        return sockit__failf(SOCKIT_EBADPORT, "address '%s': missing port", text);
    long v = parse_decimal(port, n, 65535);
    if (v == -2)
        return sockit__failf(SOCKIT_EBADPORT, "address '%s': port out of range 0-65535", text);
    if (v < 0)
        return sockit__failf(SOCKIT_EBADPORT, "address '%s': port '%s' is not a number", text,
                             port);
    *out = (int)v;
    return 0;
}

int sockit_addr_parse(sockit_addr *out, const char *text)
{
    if (out == NULL || text == NULL)
        return sockit__failf(SOCKIT_EBADADDR, "parse address: no %s", out ? "text" : "output");
    const char *why = "";
    if (strncmp(text, "unix:", 5) == 0) {
        int rc = build_unix(out, text + 5, &why);
        if (rc < 0)
            return sockit__failf(rc, "address '%s': %s", text, why);
        return 0;
    }

    char host[HOST_TEXT_MAX];
    const char *port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return sockit__failf(SOCKIT_EBADADDR, "address '%s': unbalanced brackets", text);
        size_t n = (size_t)(close - text - 1);
        if (memchr(text + 1, '[', n) != NULL)
            return sockit__failf(SOCKIT_EBADADDR, "address '%s': unbalanced brackets", text);
        if (strpbrk(close + 1, "[]") != NULL)
            return sockit__failf(SOCKIT_EBADADDR, "address '%s': unbalanced brackets", text);
        if (close[1] == '\0')
            return sockit__failf(SOCKIT_EBADPORT, "address '%s': missing port", text);
        if (close[1] != ':')
            return sockit__failf(SOCKIT_EBADADDR, "address '%s': expected ':port' after ']'", text);
        if (n == 0 || n >= sizeof host)
            return sockit__failf(SOCKIT_EBADADDR, "address '%s': bad IPv6 host", text);
        memcpy(host, text + 1, n);
        host[n] = '\0';
        if (strchr(host, ':') == NULL)
            return sockit__failf(SOCKIT_EBADADDR,
                                 "address '%s': brackets are only for IPv6 addresses", text);
        port = close + 2;
    } else {
        if (strpbrk(text, "[]") != NULL)
            return sockit__failf(SOCKIT_EBADADDR, "address '%s': unbalanced brackets", text);
        const char *colon = strrchr(text, ':');
        if (colon == NULL)
            return sockit__failf(SOCKIT_EBADPORT, "address '%s': missing port", text);
        size_t n = (size_t)(colon - text);
        if (memchr(text, ':', n) != NULL)
            return sockit__failf(SOCKIT_EBADADDR,
                                 "address '%s': an IPv6 address needs brackets: [host]:port", text);
        if (n == 0 || n >= sizeof host)
            return sockit__failf(SOCKIT_EBADADDR, "address '%s': bad IPv4 host", text);
        memcpy(host, text, n);
        host[n] = '\0';
        port = colon + 1;
    }
    int portnum = 0;
    int rc = addr_port(text, port, &portnum);
    if (rc < 0)
        return rc;
    rc = build_ip(out, host, (uint16_t)portnum, &why);
    if (rc < 0)
        return sockit__failf(rc, "address '%s': %s", text, why);
    return 0;
}

/* Writes "%name" (or "%index" when the index has no name, or a name that would read
 * back as a number or end the brackets). */
static void format_scope(char *buf, size_t size, uint32_t scope)
{
    char name[IF_NAMESIZE];
    if (if_indextoname(scope, name) != NULL && !all_digits(name, strlen(name)) &&
        strpbrk(name, "[]%") == NULL)
        snprintf(buf, size, "%%%s", name);
    else
        snprintf(buf, size, "%%%u", (unsigned)scope);
}

/* Formats into a buffer that always fits, so the caller's size is checked once. */
static int format_any(const sockit_addr *a, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    switch (a->u.sa.sa_family) {
    case AF_INET:
        if (a->len < sizeof a->u.in4)
            return SOCKIT_EBADADDR;
        inet_ntop(AF_INET, &a->u.in4.sin_addr, host, sizeof host);
        return snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(a->u.in4.sin_port));
    case AF_INET6: {
        if (a->len < sizeof a->u.in6)
            return SOCKIT_EBADADDR;
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, host, sizeof host);
        char scope[IF_NAMESIZE + 16] = "";
        if (a->u.in6.sin6_scope_id != 0)
            format_scope(scope, sizeof scope, a->u.in6.sin6_scope_id);
        return snprintf(buf, size, "[%s%s]:%u", host, scope, (unsigned)ntohs(a->u.in6.sin6_port));
    }
    case AF_UNIX: {
        if (a->len <= UNIX_PATH_OFFSET)
            return snprintf(buf, size, "unix:"); /* unnamed, e.g. a socketpair end */
        size_t n = a->len - UNIX_PATH_OFFSET;
        if (n > sizeof a->u.un.sun_path)
            n = sizeof a->u.un.sun_path;
        const char *p = a->u.un.sun_path;
        if (p[0] != '\0')
            return snprintf(buf, size, "unix:%.*s", (int)strnlen(p, n), p);
        /* Abstract names may hold NUL bytes; print them as '@', as ss(8) does. */
        int w = snprintf(buf, size, "unix:@");
        for (size_t i = 1; i < n && (size_t)w + 1 < size; i++)
            buf[w++] = p[i] == '\0' ? '@' : p[i];
        buf[w] = '\0';
        return w;
    }
    default:
        return SOCKIT_EBADADDR;
    }
}

int sockit_addr_format(const sockit_addr *a, char *buf, size_t size)
{
    if (a == NULL || a->len == 0)
        return sockit__failf(SOCKIT_EBADADDR, "format address: no address");
    char text[SOCKIT_ADDRSTRLEN];
    int n = format_any(a, text, sizeof text);
    if (n < 0)
        return sockit__failf(n, "format address: family %d, length %u", a->u.sa.sa_family,
                             (unsigned)a->len);
    if (buf == NULL || (size_t)n >= size) {
        if (buf != NULL && size > 0)
            buf[0] = '\0';
        return sockit__failf(-ENOSPC, "format address %s: needs %d bytes, buffer has %zu", text,
                             n + 1, buf == NULL ? (size_t)0 : size);
    }
    memcpy(buf, text, (size_t)n + 1);
    return n;
}

int sockit_addr_family(const sockit_addr *a)
{
    if (a == NULL || a->len == 0)
        return AF_UNSPEC;
    return a->u.sa.sa_family;
}

int sockit_addr_port(const sockit_addr *a)
{
    switch (sockit_addr_family(a)) {
    case AF_INET:
        return ntohs(a->u.in4.sin_port);
    case AF_INET6:
        return ntohs(a->u.in6.sin6_port);
    default:
        return -1;
    }
}

int sockit_addr_set_port(sockit_addr *a, int port)
{
    int family = sockit_addr_family(a);
    if (family != AF_INET && family != AF_INET6)
        return sockit__failf(-EAFNOSUPPORT, "set port %d: not an IP address (family %d)", port,
                             family);
    if (port < 0 || port > 65535)
        return sockit__failf(SOCKIT_EBADPORT, "set port %d: out of range 0-65535", port);
    if (family == AF_INET)
        a->u.in4.sin_port = htons((uint16_t)port);
    else
        a->u.in6.sin6_port = htons((uint16_t)port);
    return 0;
}

/* The name bytes of a Unix address: a path up to its NUL, an abstract name (with its
 * leading NUL) up to the length. Unnamed gives 0 bytes. */
static size_t unix_name(const sockit_addr *a, const char **name)
{
    *name = a->u.un.sun_path;
    if (a->len <= UNIX_PATH_OFFSET)
        return 0;
    size_t n = a->len - UNIX_PATH_OFFSET;
    if (n > sizeof a->u.un.sun_path)
        n = sizeof a->u.un.sun_path;
    return a->u.un.sun_path[0] == '\0' ? n : strnlen(a->u.un.sun_path, n);
}

bool sockit_addr_equal(const sockit_addr *a, const sockit_addr *b)
{
    int family = sockit_addr_family(a);
    if (family != sockit_addr_family(b))
        return false;
    switch (family) {
    case AF_UNSPEC:
        return true;
    case AF_INET:
        return a->u.in4.sin_port == b->u.in4.sin_port &&
               a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr;
    case AF_INET6:
        /* Flow info is per-packet metadata, not part of where the address points. */
        return a->u.in6.sin6_port == b->u.in6.sin6_port &&
               a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id &&
               memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, sizeof a->u.in6.sin6_addr) == 0;
    case AF_UNIX: {
        const char *na, *nb;
        size_t la = unix_name(a, &na), lb = unix_name(b, &nb);
        return la == lb && memcmp(na, nb, la) == 0;
    }
    default:
        return a->len == b->len && memcmp(&a->u, &b->u, a->len) == 0;
    }
}

int sockit_parse_port(const char *text)
{
    if (text == NULL)
        return sockit__failf(SOCKIT_EBADPORT, "port (null)");
    size_t n = strlen(text);
    long v = parse_decimal(text, n, 65535);
    if (v >= 0)
        return (int)v;
    if (v == -2)
        return sockit__failf(SOCKIT_EBADPORT, "port '%s': out of range 0-65535", text);
    /* Service names never start with a sign or a space, and "80x" is no service;
     * getservbyname_r settles both, so only the lookup decides. */
    static const char *const protos[] = {"tcp", "udp"};
    for (size_t i = 0; n > 0 && i < sizeof protos / sizeof protos[0]; i++) {
        struct servent ent, *found = NULL;
        char buf[4096];
        if (getservbyname_r(text, protos[i], &ent, buf, sizeof buf, &found) == 0 && found != NULL)
            return ntohs((uint16_t)found->s_port);
    }
    return sockit__failf(SOCKIT_EBADPORT, "port '%s': not a number or a known service", text);
}

void sockit__addr_text(const sockit_addr *a, char *buf, size_t size)
{
    if (sockit_addr_format(a, buf, size) < 0)
        snprintf(buf, size, "(unprintable address)");
}

void sockit__tried_append(char *buf, size_t size, size_t *used, const sockit_addr *a, int code)
{
    char text[SOCKIT_ADDRSTRLEN];
    sockit__addr_text(a, text, sizeof text);
    if (*used >= size)
        return;
    int w = snprintf(buf + *used, size - *used, "%s%s: %s", *used ? ", " : "", text,
                     sockit_strerror(code));
    if (w > 0 && (size_t)w < size - *used)
        *used += (size_t)w;
    else
        buf[*used] = '\0';
}
