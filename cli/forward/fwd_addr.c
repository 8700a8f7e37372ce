/* Reading forward's addresses (fwd_addr.h). */
#include "fwd_addr.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    fwd_kind kind;
} kinds[] = {
    {"tcp", FWD_TCP},       {"tcp-listen", FWD_TCP_LISTEN},
    {"tls", FWD_TLS},       {"tls-listen", FWD_TLS_LISTEN},
    {"unix", FWD_UNIX},     {"unix-listen", FWD_UNIX_LISTEN},
    {"udp", FWD_UDP},       {"udp-listen", FWD_UDP_LISTEN},
    {"stdio", FWD_STDIO},   {"file", FWD_FILE},
    {"create", FWD_CREATE}, {"exec", FWD_EXEC},
    {"system", FWD_SYSTEM},
};

bool fwd_addr_listens(const fwd_addr *a)
{
    return a->kind == FWD_TCP_LISTEN || a->kind == FWD_TLS_LISTEN || a->kind == FWD_UNIX_LISTEN;
}

bool fwd_addr_binds(const fwd_addr *a) { return fwd_addr_listens(a) || a->kind == FWD_UDP_LISTEN; }

/* tcp:, tls:, tcp-listen:, tls-listen: take a host and a port by hostport.h's rule. */
static int parse_inet(const char *text, const char *value, bool listens, fwd_addr *out, char *why,
                      size_t size)
{
    char reason[256];
    char copy[HOSTPORT_HOST_MAX + 8]; /* hostport_operands reads argv-like words */
    snprintf(copy, sizeof copy, "%s", value);
    char *v = copy;
    int rc = listens ? hostport_operands(1, &v, HOSTPORT_LISTENER, &out->hp, reason, sizeof reason)
                     : hostport_split(value, 0, &out->hp, reason, sizeof reason);
    if (rc < 0) {
        snprintf(why, size, "'%s': %s", text, reason);
        return -1;
    }
    if (out->hp.is_unix) {
        snprintf(why, size, "'%s': a Unix path: say unix:PATH or unix-listen:PATH", text);
        return -1;
    }
    if (out->hp.port < 0) {
        snprintf(why, size, "'%s': no port", text);
        return -1;
    }
    if (!listens && out->hp.host[0] == '\0') {
        snprintf(why, size, "'%s': no host (HOST:PORT)", text);
        return -1;
    }
    return 0;
}

static int parse_unix(const char *text, const char *value, fwd_addr *out, char *why, size_t size)
{
    size_t n = strlen(value);
    if (n == 0 || n > HOSTPORT_UNIX_PATH_MAX) {
        snprintf(why, size, "'%s': %s", text,
                 n == 0 ? "no path" : "the path is longer than a Unix socket takes (107 bytes)");
        return -1;
    }
    snprintf(out->hp.host, sizeof out->hp.host, "unix:%s", value);
    out->hp.is_unix = true;
    out->hp.port = -1;
    return 0;
}

int fwd_addr_parse(const char *text, fwd_addr *out, char *why, size_t size)
{
    memset(out, 0, sizeof *out);
    out->text = text;
    if (strcmp(text, "-") == 0 || strcmp(text, "stdio") == 0) {
        out->kind = FWD_STDIO;
        return 0;
    }
    const char *colon = strchr(text, ':');
    size_t n = colon != NULL ? (size_t)(colon - text) : strlen(text);
    size_t i = 0;
    while (i < sizeof kinds / sizeof kinds[0] &&
           (strlen(kinds[i].name) != n || strncmp(kinds[i].name, text, n) != 0))
        i++;
    if (i == sizeof kinds / sizeof kinds[0] || colon == NULL) {
        snprintf(why, size, "'%s': %s (the types: " FWD_ADDR_TYPES ")", text,
                 colon == NULL && i < sizeof kinds / sizeof kinds[0]
                     ? "a value after the colon is missing"
                     : "not TYPE:VALUE with a known type");
        return -1;
    }
    out->kind = kinds[i].kind;
    const char *value = colon + 1;
    switch (out->kind) {
    case FWD_TCP:
    case FWD_TLS:
    case FWD_UDP:
        return parse_inet(text, value, false, out, why, size);
    case FWD_TCP_LISTEN:
    case FWD_TLS_LISTEN:
    case FWD_UDP_LISTEN:
        return parse_inet(text, value, true, out, why, size);
    case FWD_UNIX:
    case FWD_UNIX_LISTEN:
        return parse_unix(text, value, out, why, size);
    case FWD_STDIO:
        snprintf(why, size, "'%s': stdio takes no value", text);
        return -1;
    default:
        if (value[strspn(value, " \t")] == '\0') {
            snprintf(why, size, "'%s': %s", text,
                     out->kind == FWD_FILE || out->kind == FWD_CREATE ? "no path" : "no command");
            return -1;
        }
        out->value = value;
        return 0;
    }
}
