/* The host and port rule of hostport.h. */
#include "hostport.h"

#include <sockit.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Rule 5 holds for a lone operand only; hostport_operands adds this bit then. */
#define LONE_NUMBER_IS_PORT 0x100u

/* Formats the reason into why and returns -1, so each failure is one statement. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
reason(char *why, size_t size, const char *fmt, ...)
{
    if (size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* The port text s (n bytes, not NUL-terminated). */
static int port_of(const char *s, size_t n, unsigned flags, int *out, char *why, size_t size)
{
    bool listener = (flags & HOSTPORT_LISTENER) != 0;
    char text[64];
    if (n >= sizeof text && all_digits(s, n))
        return reason(why, size, "port '%.*s...': out of range %d-65535", 20, s, listener ? 0 : 1);
    if (n >= sizeof text)
        return reason(why, size, "port '%.*s...': not a number %d-65535 or a known service", 20, s,
                      listener ? 0 : 1);
    memcpy(text, s, n);
    text[n] = '\0';
    int port = n > 0 ? sockit_parse_port(text) : -1;
    /* A number is a number: too big or negative is out of range, not "not a number". */
    if (n > 0 && (all_digits(text, n) || (text[0] == '-' && all_digits(text + 1, n - 1))) &&
        port < 0)
        return reason(why, size, "port '%s': out of range %d-65535", text, listener ? 0 : 1);
    if (port < 0)
        return reason(why, size, "port '%s': not a number %d-65535 or a known service", text,
                      listener ? 0 : 1);
    if (port == 0 && !listener)
        return reason(why, size, "port '%s': must be 1-65535", text);
    *out = port;
    return 0;
}

static int set_host(hostport *out, const char *s, size_t n, const char *text, char *why,
                    size_t size)
{
    if (n >= sizeof out->host)
        return reason(why, size, "host '%.40s...': longer than %zu bytes", text,
                      sizeof out->host - 1);
    memcpy(out->host, s, n);
    out->host[n] = '\0';
    return 0;
}

static int split_unix(const char *text, hostport *out, char *why, size_t size)
{
    const char *path = text + 5;
    const char *name = path[0] == '@' ? path + 1 : path;
    size_t n = strlen(name);
    if (n == 0)
        return reason(why, size, "'%s': %s", text,
                      name == path ? "no path after unix:" : "no name after unix:@");
    if (n > HOSTPORT_UNIX_PATH_MAX)
        return reason(why, size, "'%.40s...': a Unix socket path of %zu bytes, at most %d", text, n,
                      HOSTPORT_UNIX_PATH_MAX);
    out->is_unix = true;
    return set_host(out, text, strlen(text), text, why, size);
}

int hostport_split(const char *text, unsigned flags, hostport *out, char *why, size_t size)
{
    out->host[0] = '\0';
    out->is_unix = false;
    out->port = -1;
    size_t len = strlen(text);
    if (len == 0)
        return reason(why, size, "empty host");
    if (strncmp(text, "unix:", 5) == 0)
        return split_unix(text, out, why, size);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return reason(why, size, "'%s': '[' without ']'", text);
        if (close == text + 1)
            return reason(why, size, "'%s': no address between '[' and ']'", text);
        if (close[1] != '\0' && close[1] != ':')
            return reason(why, size, "'%s': want [ADDRESS] or [ADDRESS]:PORT", text);
        if (close[1] == ':' &&
            port_of(close + 2, strlen(close + 2), flags, &out->port, why, size) < 0)
            return -1;
        return set_host(out, text + 1, (size_t)(close - text - 1), text, why, size);
    }
    const char *colon = strchr(text, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
        return set_host(out, text, len, text, why, size); /* a bare IPv6 address */
    if (colon != NULL) {
        if (colon == text)
            return reason(why, size, "'%s': no host before ':'", text);
        if (port_of(colon + 1, strlen(colon + 1), flags, &out->port, why, size) < 0)
            return -1;
        return set_host(out, text, (size_t)(colon - text), text, why, size);
    }
    if ((flags & LONE_NUMBER_IS_PORT) && all_digits(text, len))
        return port_of(text, len, flags, &out->port, why, size);
    return set_host(out, text, len, text, why, size);
}

/* Adds a port given on its own (the second operand, or --port) to *out. */
static int add_port(hostport *out, const char *text, unsigned flags, const char *given_as,
                    char *why, size_t size)
{
    if (out->is_unix)
        return reason(why, size, "%s: a unix: host takes no PORT (got '%s')", out->host, text);
    int port;
    if (port_of(text, strlen(text), flags, &port, why, size) < 0)
        return -1;
    if (out->port >= 0)
        return reason(why, size, "port given twice: %d in %s, and '%s'", out->port, given_as, text);
    out->port = port;
    return 0;
}

int hostport_operands(int n, char *const *args, unsigned flags, hostport *out, char *why,
                      size_t size)
{
    bool listener = (flags & HOSTPORT_LISTENER) != 0;
    if (n <= 0)
        return reason(why, size, listener ? "missing PORT" : "missing HOST and PORT");
    if (n > 2)
        return reason(why, size, "unexpected argument '%s'", args[2]);
    unsigned first = listener && n == 1 ? flags | LONE_NUMBER_IS_PORT : flags;
    if (hostport_split(args[0], first, out, why, size) < 0)
        return -1;
    if (n == 2 && add_port(out, args[1], flags, args[0], why, size) < 0)
        return -1;
    if (!out->is_unix && out->port < 0)
        return reason(why, size, "missing PORT after HOST '%s'", args[0]);
    return 0;
}

int hostport_options(const char *host, const char *port, unsigned flags, hostport *out, char *why,
                     size_t size)
{
    if (host == NULL) {
        out->host[0] = '\0';
        out->is_unix = false;
        out->port = -1;
    } else if (hostport_split(host, flags & ~LONE_NUMBER_IS_PORT, out, why, size) < 0) {
        return -1;
    }
    if (port == NULL)
        return 0;
    char given_as[HOSTPORT_HOST_MAX + 16];
    snprintf(given_as, sizeof given_as, "--host %s", host != NULL ? host : "");
    if (add_port(out, port, flags, given_as, why, size) < 0)
        return -1;
    return 0;
}
