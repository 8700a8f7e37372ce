/* Proxy URLs, the form curl and every proxy-aware tool take:
 * socks5://[user[:password]@]host[:port], socks5h://..., http://...
 * Credentials are percent-decoded (a password may hold '@' or ':' as %40, %3A) and
 * never printed. */
#include "tunnel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int bad(const char *text, const char *why)
{
    /* The text may hold a password: with credentials, only the scheme and what
     * follows the last '@' are shown. */
    const char *at = strrchr(text, '@');
    if (at == NULL)
        return sockit__failf(-EINVAL, "proxy '%s': %s", text, why);
    const char *scheme_end = strstr(text, "://");
    int scheme_len = scheme_end != NULL && scheme_end < at ? (int)(scheme_end - text) + 3 : 0;
    return sockit__failf(-EINVAL, "proxy '%.*s...@%s': %s", scheme_len, text, at + 1, why);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes len bytes of src into dst[size]. Returns 0, or -1 for a bad escape, a NUL
 * or no room. */
static int decode(const char *src, size_t len, char *dst, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hexval(src[i + 1]);
            int lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= size)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

int sockit__proxy_url_parse(const char *text, sockit__proxy_url *out)
{
    if (text == NULL || text[0] == '\0')
        return sockit__failf(-EINVAL, "proxy: no URL");
    memset(out, 0, sizeof *out);
    static const struct {
        const char *scheme;
        sockit__tunnel_kind kind;
        int port;
    } schemes[] = {
        /* ncat's defaults: 1080 for SOCKS, 3128 for HTTP (squid's). */
        {"socks5://", SOCKIT__TUNNEL_SOCKS5, 1080},
        {"socks5h://", SOCKIT__TUNNEL_SOCKS5H, 1080},
        {"http://", SOCKIT__TUNNEL_HTTP, 3128},
    };
    const char *rest = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i].scheme);
        if (strncasecmp(text, schemes[i].scheme, n) == 0) {
            rest = text + n;
            out->kind = schemes[i].kind;
            out->port = schemes[i].port;
        }
    }
    if (rest == NULL)
        return bad(text, "not socks5://, socks5h:// or http://");
    const char *end = rest + strcspn(rest, "/?#");
    if (*end == '/' && end[1] != '\0')
        return bad(text, "a proxy URL has no path");
    if (*end == '?' || *end == '#')
        return bad(text, "a proxy URL has no query or fragment");
    /* The last '@' before the host ends the credentials: a raw '@' in a password
     * then still works, as in curl. */
    const char *at = NULL;
    for (const char *p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    const char *hostpart = rest;
    if (at != NULL) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        size_t ulen = colon != NULL ? (size_t)(colon - rest) : (size_t)(at - rest);
        if (decode(rest, ulen, out->user, sizeof out->user) < 0)
            return bad(text, "the user name has a bad %-escape or is over 255 bytes");
        if (colon != NULL &&
            decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password) < 0)
            return bad(text, "the password has a bad %-escape or is over 255 bytes");
        if (out->user[0] == '\0')
            return bad(text, "credentials without a user name");
        out->has_credentials = true;
        hostpart = at + 1;
    }
    size_t hlen = (size_t)(end - hostpart);
    const char *port_text = NULL;
    const char *host = hostpart;
    if (hlen > 0 && *hostpart == '[') {
        const char *close = memchr(hostpart, ']', hlen);
        if (close == NULL)
            return bad(text, "'[' without ']'");
        host = hostpart + 1;
        size_t len = (size_t)(close - host);
        if (len == 0 || len >= sizeof out->host)
            return bad(text, "an empty or too long IPv6 address");
        memcpy(out->host, host, len);
        out->host[len] = '\0';
        if (close + 1 < end) {
            if (close[1] != ':')
                return bad(text, "text after ']' that is not :PORT");
            port_text = close + 2;
        }
    } else {
        const char *colon = memchr(hostpart, ':', hlen);
        size_t len = colon != NULL ? (size_t)(colon - hostpart) : hlen;
        if (len >= sizeof out->host)
            return bad(text, "a host name over 255 bytes");
        memcpy(out->host, hostpart, len);
        out->host[len] = '\0';
        if (colon != NULL)
            port_text = colon + 1;
    }
    if (out->host[0] == '\0')
        return bad(text, "no proxy host");
    if (port_text != NULL) {
        char digits[16];
        size_t plen = (size_t)(end - port_text);
        bool numeric = plen > 0 && plen < sizeof digits && strspn(port_text, "0123456789") >= plen;
        int port = 0;
        if (numeric) {
            memcpy(digits, port_text, plen);
            digits[plen] = '\0';
            port = sockit_parse_port(digits);
        }
        /* Text that is not digits is not shown: "user:password" without its '@' puts
         * the password here. */
        if (!numeric)
            return sockit__failf(SOCKIT_EBADPORT,
                                 "proxy host %s: the port is not a number in 1-65535 (a "
                                 "forgotten '@' after credentials?)",
                                 out->host);
        if (port < 1)
            return sockit__failf(SOCKIT_EBADPORT, "proxy host %s: port '%s' not in 1-65535",
                                 out->host, digits);
        out->port = port;
    }
    return 0;
}

void sockit__proxy_url_text(const sockit__proxy_url *u, char *buf, size_t size)
{
    static const char *const names[] = {"socks5", "socks5h", "http"};
    bool v6 = strchr(u->host, ':') != NULL;
    snprintf(buf, size, "%s://%s%s%s%s%s:%d", names[u->kind], u->has_credentials ? u->user : "",
             u->has_credentials ? ":***@" : "", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port);
}

int sockit_proxy_endpoint(const char *proxy, char *host, size_t size, int *port)
{
    sockit__proxy_url url;
    int rc = sockit__proxy_url_parse(proxy, &url);
    if (rc < 0)
        return rc;
    size_t n = strlen(url.host);
    if (host != NULL && n >= size)
        return sockit__failf(-ENOSPC, "proxy host %s: longer than the %zu-byte buffer", url.host,
                             size);
    if (host != NULL)
        memcpy(host, url.host, n + 1);
    if (port != NULL)
        *port = url.port;
    return 0;
}
