/* Address rules (access.h). inet_pton does the reading of addresses: it takes the
 * dotted quad only in its strict form, so "10.1" or "010.0.0.1" never mean
 * something other than what they look like. */
#include "access.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCESS_LINE_MAX 1024

__attribute__((format(printf, 3, 4))) static int reason(char *why, size_t size, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (size > 0)
        vsnprintf(why, size, fmt, ap);
    va_end(ap);
    return -1;
}

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* An IPv6 address in ::ffff:0:0/96 becomes the IPv4 address it carries. */
static void unmap(access_ip *ip)
{
    if (ip->family == AF_INET6 && memcmp(ip->b, v4_mapped, sizeof v4_mapped) == 0) {
        ip->family = AF_INET;
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, 12);
    }
}

bool access_ip_of(const sockit_addr *a, access_ip *out)
{
    memset(out, 0, sizeof *out);
    switch (sockit_addr_family(a)) {
    case AF_INET:
        out->family = AF_INET;
        memcpy(out->b, &a->u.in4.sin_addr, 4);
        return true;
    case AF_INET6:
        out->family = AF_INET6;
        memcpy(out->b, &a->u.in6.sin6_addr, 16);
        unmap(out);
        return true;
    default:
        return false;
    }
}

static int bits_of(int family) { return family == AF_INET ? 32 : 128; }

/* Clears the bits past prefix. */
static void mask(access_ip *ip, int prefix)
{
    int bytes = bits_of(ip->family) / 8;
    for (int i = 0; i < bytes; i++) {
        int keep = prefix - i * 8;
        if (keep <= 0)
            ip->b[i] = 0;
        else if (keep < 8)
            ip->b[i] &= (unsigned char)(0xff << (8 - keep));
    }
}

/* The prefix text p (after '/'): digits only, within 0..max. */
static int parse_prefix(const char *text, const char *p, int max, int *out, char *why, size_t size)
{
    if (*p == '\0')
        return reason(why, size, "'%s': no prefix length after '/'", text);
    if (strspn(p, "0123456789") != strlen(p))
        return reason(why, size, "'%s': prefix length '%s' is not a number 0-%d", text, p, max);
    long v = strlen(p) > 3 ? max + 1 : strtol(p, NULL, 10);
    if (v > max)
        return reason(why, size, "'%s': prefix length /%s is out of range 0-%d for %s", text, p,
                      max, max == 32 ? "IPv4" : "IPv6");
    *out = (int)v;
    return 0;
}

int access_rule_parse(const char *text, access_rule *out, char *why, size_t size)
{
    size_t len = strlen(text);
    if (len == 0)
        return reason(why, size, "empty rule");
    if (len >= ACCESS_RULE_TEXT_MAX)
        return reason(why, size, "'%.20s...': longer than any address/prefix", text);
    char addr[ACCESS_RULE_TEXT_MAX];
    memcpy(addr, text, len + 1);
    char *slash = strchr(addr, '/');
    if (slash != NULL)
        *slash = '\0';
    char *host = addr;
    size_t hlen = strlen(host);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host[hlen - 1] = '\0';
        host++;
    }
    if (strchr(host, '%') != NULL)
        return reason(why, size, "'%s': a scope id (%%...) is not matched; give the address alone",
                      text);
    access_rule r;
    memset(&r, 0, sizeof r);
    if (inet_pton(AF_INET, host, r.ip.b) == 1)
        r.ip.family = AF_INET;
    else if (inet_pton(AF_INET6, host, r.ip.b) == 1)
        r.ip.family = AF_INET6;
    else
        return reason(why, size,
                      "'%s': not an IPv4 or IPv6 address (host names are not looked up; give "
                      "ADDR or ADDR/PREFIX)",
                      text);
    int max = bits_of(r.ip.family);
    r.prefix = max;
    if (slash != NULL && parse_prefix(text, slash + 1, max, &r.prefix, why, size) < 0)
        return -1;
    /* ::ffff:a.b.c.d/N (N >= 96) is the IPv4 range a.b.c.d/N-96, which is how the
     * peers it is meant for are matched. */
    if (r.ip.family == AF_INET6 && r.prefix >= 96 &&
        memcmp(r.ip.b, v4_mapped, sizeof v4_mapped) == 0) {
        unmap(&r.ip);
        r.prefix -= 96;
    }
    mask(&r.ip, r.prefix);
    *out = r;
    return 0;
}

const char *access_rule_text(const access_rule *r, char *buf, size_t size)
{
    char addr[INET6_ADDRSTRLEN];
    if (inet_ntop(r->ip.family, r->ip.b, addr, sizeof addr) == NULL)
        snprintf(addr, sizeof addr, "?");
    snprintf(buf, size, "%s/%d", addr, r->prefix);
    return buf;
}

bool access_rule_match(const access_rule *r, const access_ip *ip)
{
    if (r->ip.family != ip->family)
        return false;
    int whole = r->prefix / 8, rest = r->prefix % 8;
    if (memcmp(r->ip.b, ip->b, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char m = (unsigned char)(0xff << (8 - rest));
    return (ip->b[whole] & m) == r->ip.b[whole];
}

static int append(access_list *l, bool allow, const access_rule *r, char *why, size_t size)
{
    access_rule **rules = allow ? &l->allow : &l->deny;
    size_t *n = allow ? &l->nallow : &l->ndeny;
    size_t *cap = allow ? &l->cap_allow : &l->cap_deny;
    if (*n == ACCESS_RULES_MAX)
        return reason(why, size, "more than %d %s rules", ACCESS_RULES_MAX,
                      allow ? "allow" : "deny");
    if (*n == *cap) {
        size_t grown = *cap == 0 ? 16 : *cap * 2;
        if (grown > ACCESS_RULES_MAX)
            grown = ACCESS_RULES_MAX;
        access_rule *more = realloc(*rules, grown * sizeof *more);
        if (more == NULL)
            return reason(why, size, "out of memory for the rules");
        *rules = more;
        *cap = grown;
    }
    (*rules)[(*n)++] = *r;
    return 0;
}

/* Adds the rules of text (separated by any of seps, blanks around them ignored).
 * empty_ok: an empty item (a blank line, "a,,b") is skipped rather than refused. */
static int add_items(access_list *l, bool allow, const char *text, const char *seps, bool empty_ok,
                     char *why, size_t size)
{
    const char *p = text;
    for (;;) {
        size_t n = strcspn(p, seps);
        const char *start = p, *end = p + n;
        while (start < end && isspace((unsigned char)*start))
            start++;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
        if (end > start || !empty_ok) {
            char item[ACCESS_RULE_TEXT_MAX];
            size_t len = (size_t)(end - start);
            if (len == 0)
                return reason(why, size, "'%s': empty rule (a stray comma?)", text);
            if (len >= sizeof item)
                return reason(why, size, "'%.20s...': longer than any address/prefix", start);
            memcpy(item, start, len);
            item[len] = '\0';
            access_rule r;
            if (access_rule_parse(item, &r, why, size) < 0 || append(l, allow, &r, why, size) < 0)
                return -1;
        }
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

int access_add(access_list *l, bool allow, const char *list, char *why, size_t size)
{
    return add_items(l, allow, list, ",", false, why, size);
}

int access_add_file(access_list *l, bool allow, const char *path, char *why, size_t size)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        reason(why, size, "%s", strerror(errno));
        return -1;
    }
    char line[ACCESS_LINE_MAX + 2];
    int rc = 0;
    for (long no = 1; rc == 0 && fgets(line, sizeof line, f) != NULL; no++) {
        size_t len = strlen(line);
        /* fgets stops only at a newline, the end or a full buffer: short of all three,
         * a NUL byte ended the string (a binary file; /dev/zero would never end). */
        if ((len == 0 || line[len - 1] != '\n') && len < sizeof line - 1 && !feof(f)) {
            reason(why, size, "line %ld: a NUL byte (not a text file)", no);
            rc = -2;
            break;
        }
        if (len > ACCESS_LINE_MAX && line[len - 1] != '\n') {
            reason(why, size, "line %ld: longer than %d bytes", no, ACCESS_LINE_MAX);
            rc = -2;
            break;
        }
        line[strcspn(line, "#\n")] = '\0';
        char item_why[256];
        if (add_items(l, allow, line, ", \t\r", true, item_why, sizeof item_why) < 0) {
            reason(why, size, "line %ld: %s", no, item_why);
            rc = -2;
        }
    }
    if (rc == 0 && ferror(f)) {
        reason(why, size, "%s", strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

bool access_any(const access_list *l) { return l->nallow > 0 || l->ndeny > 0; }

int access_check(const access_list *l, const sockit_addr *peer, const access_rule **rule)
{
    if (rule != NULL)
        *rule = NULL;
    access_ip ip;
    if (!access_ip_of(peer, &ip))
        return ACCESS_OK;
    for (size_t i = 0; i < l->ndeny; i++) {
        if (access_rule_match(&l->deny[i], &ip)) {
            if (rule != NULL)
                *rule = &l->deny[i];
            return ACCESS_DENIED;
        }
    }
    if (l->nallow == 0)
        return ACCESS_OK;
    for (size_t i = 0; i < l->nallow; i++)
        if (access_rule_match(&l->allow[i], &ip))
            return ACCESS_OK;
    return ACCESS_NOT_ALLOWED;
}

void access_free(access_list *l)
{
    free(l->allow);
    free(l->deny);
    memset(l, 0, sizeof *l);
}
