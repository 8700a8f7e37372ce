/* SOCKS5 (RFC 1928) with user/password authentication (RFC 1929). Every reply has a
 * length known from its first bytes, so the machine eats exactly the handshake and
 * never a byte of the target's. */
#include "tunnel_internal.h"

#include <errno.h>
#include <string.h>

enum { GREETING, AUTH, REQUEST };

static void put(sockit__tunnel *t, const void *p, size_t n)
{
    memcpy(t->out + t->out_len, p, n);
    t->out_len += n;
}

static void byte(sockit__tunnel *t, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(t, &c, 1);
}

int sockit__socks5_start(sockit__tunnel *t)
{
    byte(t, 5);
    if (t->url.has_credentials) {
        byte(t, 2);
        byte(t, 0x00); /* no authentication */
        byte(t, 0x02); /* user and password */
    } else {
        byte(t, 1);
        byte(t, 0x00);
    }
    t->state = GREETING;
    t->need = 2;
    return 0;
}

static void send_request(sockit__tunnel *t)
{
    byte(t, 5);
    byte(t, 1); /* CONNECT */
    byte(t, 0);
    const sockit_addr *a = &t->target_addr;
    if (t->url.kind == SOCKIT__TUNNEL_SOCKS5 && a->len > 0 && a->u.sa.sa_family == AF_INET) {
        byte(t, 1);
        put(t, &a->u.in4.sin_addr, 4);
    } else if (t->url.kind == SOCKIT__TUNNEL_SOCKS5 && a->len > 0) {
        byte(t, 4);
        put(t, &a->u.in6.sin6_addr, 16);
    } else {
        byte(t, 3);
        byte(t, (unsigned)strlen(t->target));
        put(t, t->target, strlen(t->target));
    }
    byte(t, (unsigned)t->target_port >> 8);
    byte(t, (unsigned)t->target_port & 0xff);
    t->state = REQUEST;
    t->need = 5; /* up to the first byte of the bound address, which gives its length */
}

/* The reply codes of RFC 1928 section 6, as the errno a direct connect would give. */
static int reply_code(const sockit__tunnel *t, unsigned rep)
{
    static const struct {
        int code;
        const char *text;
    } map[] = {
        {0, "succeeded"},
        {SOCKIT_EPROXY, "general SOCKS server failure"},
        {-EACCES, "connection not allowed by ruleset"},
        {-ENETUNREACH, "network unreachable"},
        {-EHOSTUNREACH, "host unreachable"},
        {-ECONNREFUSED, "connection refused"},
        {-ETIMEDOUT, "TTL expired"},
        {SOCKIT_EPROXY, "command not supported"},
        {SOCKIT_EPROXY, "address type not supported"},
    };
    char where[600];
    sockit__tunnel_where(t, where, sizeof where);
    if (rep < sizeof map / sizeof map[0])
        return sockit__failf(map[rep].code, "connect to %s: the proxy says: %s (SOCKS5 reply %u)",
                             where, map[rep].text, rep);
    return sockit__failf(SOCKIT_EPROXY, "connect to %s: the proxy sent SOCKS5 reply %u", where,
                         rep);
}

static int protocol(const sockit__tunnel *t, const char *what)
{
    char where[600];
    sockit__tunnel_where(t, where, sizeof where);
    return sockit__failf(SOCKIT_EPROXY, "connect to %s: %s", where, what);
}

/* Called with t->in holding t->need bytes. Returns MORE (maybe with a new need or
 * a message to send), OPEN, or a code. */
static int step(sockit__tunnel *t)
{
    const unsigned char *in = (const unsigned char *)t->in;
    switch (t->state) {
    case GREETING:
        if (in[0] != 5)
            return protocol(t, "the proxy does not speak SOCKS5");
        if (in[1] == 0x00) {
            send_request(t);
            return SOCKIT__TUNNEL_MORE;
        }
        if (in[1] == 0x02 && t->url.has_credentials) {
            size_t ulen = strlen(t->url.user), plen = strlen(t->url.password);
            byte(t, 1);
            byte(t, (unsigned)ulen);
            put(t, t->url.user, ulen);
            byte(t, (unsigned)plen);
            put(t, t->url.password, plen);
            t->state = AUTH;
            t->need = 2;
            return SOCKIT__TUNNEL_MORE;
        }
        if (in[1] == 0xff) {
            char where[600];
            sockit__tunnel_where(t, where, sizeof where);
            return sockit__failf(SOCKIT_EPROXYAUTH,
                                 "connect to %s: the proxy accepts none of our methods (%s)", where,
                                 t->url.has_credentials ? "none, user/password"
                                                        : "none: it may want a user and password");
        }
        return protocol(t, "the proxy chose an authentication method we did not offer");
    case AUTH:
        if (in[1] != 0) {
            char where[600];
            sockit__tunnel_where(t, where, sizeof where);
            return sockit__failf(SOCKIT_EPROXYAUTH,
                                 "connect to %s: the proxy refused user '%s' and its password",
                                 where, t->url.user);
        }
        send_request(t);
        return SOCKIT__TUNNEL_MORE;
    default: /* REQUEST */
        if (in[0] != 5)
            return protocol(t, "a reply that is not SOCKS5");
        if (in[1] != 0)
            return reply_code(t, in[1]);
        size_t whole = in[3] == 1   ? 4 + 4 + 2
                       : in[3] == 4 ? 4 + 16 + 2
                       : in[3] == 3 ? 4 + 1 + (size_t)in[4] + 2
                                    : 0;
        if (whole == 0)
            return protocol(t, "a reply with an unknown address type");
        if (t->need < whole) {
            t->need = whole;
            return SOCKIT__TUNNEL_MORE;
        }
        return SOCKIT__TUNNEL_OPEN;
    }
}

int sockit__socks5_feed(sockit__tunnel *t, const char *data, size_t len, size_t *used)
{
    *used = 0;
    for (;;) {
        size_t want = t->need - t->in_len;
        size_t n = len - *used < want ? len - *used : want;
        memcpy(t->in + t->in_len, data + *used, n);
        t->in_len += n;
        *used += n;
        if (t->in_len < t->need)
            return SOCKIT__TUNNEL_MORE;
        size_t need_before = t->need;
        int state_before = t->state;
        int rc = step(t);
        if (rc != SOCKIT__TUNNEL_MORE)
            return rc;
        /* A reply read whole starts the next one empty; a longer need reads on. */
        if (t->state != state_before || t->need == need_before)
            t->in_len = 0;
        if (t->out_len > 0)
            return SOCKIT__TUNNEL_MORE;
    }
}
