/* HTTP CONNECT (RFC 9110 section 9.3.6): one request, then a response header up to
 * its blank line; any 2xx opens the tunnel (RFC 9110: "any 2xx (Successful)
 * response indicates that the sender (and all inbound proxies) will switch to
 * tunnel mode"). Bytes after the blank line are the target's already. */
#include "tunnel_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void base64(const char *src, size_t len, char *dst)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)src[i] << 16;
        if (i + 1 < len)
            v |= (unsigned char)src[i + 1] << 8;
        if (i + 2 < len)
            v |= (unsigned char)src[i + 2];
        dst[o++] = abc[(v >> 18) & 63];
        dst[o++] = abc[(v >> 12) & 63];
        dst[o++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
        dst[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    dst[o] = '\0';
}

int sockit__http_start(sockit__tunnel *t)
{
    /* host:port with an IPv6 literal in brackets (RFC 9110's authority-form). */
    char authority[300];
    bool v6 = strchr(t->target, ':') != NULL;
    snprintf(authority, sizeof authority, "%s%s%s:%d", v6 ? "[" : "", t->target, v6 ? "]" : "",
             t->target_port);
    char auth[760] = "";
    if (t->url.has_credentials) {
        char pair[520], b64[700];
        int n = snprintf(pair, sizeof pair, "%s:%s", t->url.user, t->url.password);
        base64(pair, (size_t)n, b64);
        snprintf(auth, sizeof auth, "Proxy-Authorization: Basic %s\r\n", b64);
    }
    int n = snprintf(t->out, sizeof t->out, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", authority,
                     authority, auth);
    if (n < 0 || (size_t)n >= sizeof t->out)
        return sockit__failf(-EINVAL, "proxy: CONNECT request over %zu bytes", sizeof t->out);
    t->out_len = (size_t)n;
    return 0;
}

/* The status line's reason, printable and short, for a message. */
static void reason(const char *line, size_t len, char *buf, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < size && o < 80; i++)
        buf[o++] = isprint((unsigned char)line[i]) ? line[i] : '?';
    buf[o] = '\0';
}

int sockit__http_feed(sockit__tunnel *t, const char *data, size_t len, size_t *used)
{
    /* The header may end inside what arrived: look for the blank line across the
     * old and new bytes, taking no more than up to it. */
    *used = 0;
    while (*used < len) {
        if (t->in_len == SOCKIT__TUNNEL_IN_MAX) {
            char where[600];
            sockit__tunnel_where(t, where, sizeof where);
            return sockit__failf(SOCKIT_EPROXY,
                                 "connect to %s: the proxy's response header is over %zu bytes",
                                 where, (size_t)SOCKIT__TUNNEL_IN_MAX);
        }
        t->in[t->in_len++] = data[(*used)++];
        if (t->in_len >= 4 && memcmp(t->in + t->in_len - 4, "\r\n\r\n", 4) == 0)
            break;
        /* A proxy that ends lines with a bare LF still ends the header with two. */
        if (t->in_len >= 2 && memcmp(t->in + t->in_len - 2, "\n\n", 2) == 0)
            break;
    }
    bool whole = (t->in_len >= 4 && memcmp(t->in + t->in_len - 4, "\r\n\r\n", 4) == 0) ||
                 (t->in_len >= 2 && memcmp(t->in + t->in_len - 2, "\n\n", 2) == 0);
    if (!whole)
        return SOCKIT__TUNNEL_MORE;
    char where[600];
    sockit__tunnel_where(t, where, sizeof where);
    size_t line_len = strcspn(t->in, "\r\n");
    char shown[96];
    reason(t->in, line_len, shown, sizeof shown);
    int major = 0, minor = 0, status = 0;
    if (sscanf(t->in, "HTTP/%d.%d %3d", &major, &minor, &status) != 3 || major != 1)
        return sockit__failf(SOCKIT_EPROXY, "connect to %s: not an HTTP/1 response: '%s'", where,
                             shown);
    if (status >= 200 && status < 300)
        return SOCKIT__TUNNEL_OPEN;
    /* 401 is what tinyproxy (1.11) answers a CONNECT with wrong credentials. */
    int code = status == 407 || status == 401   ? SOCKIT_EPROXYAUTH
               : status == 403                  ? -EACCES
               : status == 502                  ? -ECONNREFUSED
               : status == 504 || status == 408 ? -ETIMEDOUT
                                                : SOCKIT_EPROXY;
    return sockit__failf(code, "connect to %s: the proxy answered '%s'", where, shown);
}
