/* A request head, read line by line (RFC 9112: CRLF ends a line; a bare LF is
 * taken too, as the RFC allows a recipient to). */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int refuse(int status, char *why, size_t size, const char *reason)
{
    snprintf(why, size, "%s", reason);
    return -status;
}

/* The end of the head (just past its empty line), or 0 if it is not there yet. */
static size_t head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* One line from *p (before end): its start and length without the CR LF. */
static bool next_line(const char **p, const char *end, const char **line, size_t *n)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (nl == NULL)
        return false;
    *line = *p;
    *n = (size_t)(nl - *p);
    if (*n > 0 && (*p)[*n - 1] == '\r')
        (*n)--;
    *p = nl + 1;
    return true;
}

static bool is_tchar(int c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int decode_path(const char *t, size_t n, http_request *req, char *why, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n && t[i] != '?' && t[i] != '#'; i++) {
        int c = (unsigned char)t[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(t[i + 1]) : -1, lo = i + 2 < n ? hexval(t[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return refuse(400, why, size, "bad percent-encoding in the target");
            c = hi * 16 + lo;
            i += 2;
        } else if (c <= 0x20 || c == 0x7f) {
            return refuse(400, why, size, "a control character in the target");
        }
        if (o + 1 >= sizeof req->path)
            return refuse(414, why, size, "target too long");
        req->path[o++] = (char)c;
    }
    req->path[o] = '\0';
    return 0;
}

static int request_line(const char *l, size_t n, http_request *req, char *why, size_t size)
{
    const char *sp1 = memchr(l, ' ', n);
    if (sp1 == NULL || sp1 == l)
        return refuse(400, why, size, "no method in the request line");
    size_t mlen = (size_t)(sp1 - l);
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)l[i]))
            return refuse(400, why, size, "bad method");
    if (mlen >= sizeof req->method)
        return refuse(405, why, size, "method not allowed");
    memcpy(req->method, l, mlen);
    req->method[mlen] = '\0';
    static const char *const allowed[] = {"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD"};
    bool ok = false;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        ok = ok || strcmp(req->method, allowed[i]) == 0;
    if (!ok)
        return refuse(405, why, size, "method not allowed");
    const char *target = sp1 + 1, *end = l + n;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (sp2 == NULL || sp2 == target)
        return refuse(400, why, size, "no target in the request line");
    size_t tlen = (size_t)(sp2 - target);
    if (tlen >= HTTP_TARGET_MAX)
        return refuse(414, why, size, "target too long");
    /* absolute-form (a client talking through a proxy): keep its path */
    if (tlen > 7 && strncasecmp(target, "http://", 7) == 0) {
        const char *slash = memchr(target + 7, '/', tlen - 7);
        if (slash == NULL) {
            target = "/";
            tlen = 1;
        } else {
            tlen -= (size_t)(slash - target);
            target = slash;
        }
    }
    if (target[0] != '/')
        return refuse(400, why, size, "the target is not a path");
    int rc = decode_path(target, tlen, req, why, size);
    if (rc < 0)
        return rc;
    const char *version = sp2 + 1;
    size_t vlen = (size_t)(end - version);
    if (vlen != 8 || strncmp(version, "HTTP/", 5) != 0 || !isdigit((unsigned char)version[5]) ||
        version[6] != '.' || !isdigit((unsigned char)version[7]))
        return refuse(400, why, size, "bad HTTP version");
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
        return refuse(505, why, size, "HTTP version not supported (1.0 and 1.1 are)");
    req->minor = version[7] - '0';
    req->keep_alive = req->minor == 1;
    return 0;
}

static bool value_is(const char *v, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(v, word, n) == 0;
}

static int header(const char *l, size_t n, http_request *req, bool *has_length, char *why,
                  size_t size)
{
    if (l[0] == ' ' || l[0] == '\t')
        return refuse(400, why, size, "folded header line");
    const char *colon = memchr(l, ':', n);
    if (colon == NULL || colon == l)
        return refuse(400, why, size, "a header line without a name");
    size_t nlen = (size_t)(colon - l);
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)l[i]))
            return refuse(400, why, size, "bad header name");
    const char *v = colon + 1, *end = l + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    for (size_t i = 0; i < vlen; i++)
        if ((unsigned char)v[i] < 0x20 && v[i] != '\t')
            return refuse(400, why, size, "a control character in a header");
    if (nlen == 14 && strncasecmp(l, "Content-Length", 14) == 0) {
        if (vlen == 0 || vlen > 12)
            return refuse(vlen > 12 ? 413 : 400, why, size, "bad Content-Length");
        long long cl = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (!isdigit((unsigned char)v[i]))
                return refuse(400, why, size, "bad Content-Length");
            cl = cl * 10 + (v[i] - '0');
        }
        if (*has_length && cl != req->content_length)
            return refuse(400, why, size, "two different Content-Lengths");
        if (cl > HTTP_BODY_MAX)
            return refuse(413, why, size, "body too large");
        req->content_length = cl;
        *has_length = true;
    } else if (nlen == 17 && strncasecmp(l, "Transfer-Encoding", 17) == 0) {
        return refuse(411, why, size, "chunked bodies are not taken: send a Content-Length");
    } else if (nlen == 10 && strncasecmp(l, "Connection", 10) == 0) {
        if (value_is(v, vlen, "close"))
            req->keep_alive = false;
        else if (value_is(v, vlen, "keep-alive"))
            req->keep_alive = true;
    } else if (nlen == 6 && strncasecmp(l, "Expect", 6) == 0) {
        req->expect_continue = value_is(v, vlen, "100-continue");
    } else if (nlen == 10 && strncasecmp(l, "User-Agent", 10) == 0) {
        req->from_browser = vlen >= 8 && strncmp(v, "Mozilla/", 8) == 0;
    }
    return 0;
}

int http_parse_head(const char *buf, size_t len, http_request *req, char *why, size_t size)
{
    memset(req, 0, sizeof *req);
    size_t scan = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
    /* Empty lines before a request are skipped (RFC 9112 section 2.2). */
    size_t skip = 0;
    while (skip < scan && (buf[skip] == '\r' || buf[skip] == '\n'))
        skip++;
    size_t end = head_end(buf + skip, scan - skip);
    if (end == 0)
        return len >= HTTP_HEAD_MAX ? refuse(431, why, size, "request head too large") : 0;
    const char *p = buf + skip, *stop = buf + skip + end, *line;
    size_t n;
    if (!next_line(&p, stop, &line, &n))
        return refuse(400, why, size, "no request line");
    int rc = request_line(line, n, req, why, size);
    if (rc < 0)
        return rc;
    bool has_length = false;
    while (next_line(&p, stop, &line, &n) && n > 0)
        if ((rc = header(line, n, req, &has_length, why, size)) < 0)
            return rc;
    return (int)(skip + end);
}

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}
