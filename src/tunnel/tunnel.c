/* The tunnel's protocol-independent part: setting one up, handing what arrives to
 * its protocol, and naming it in messages. */
#include "tunnel_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int sockit__tunnel_start(sockit__tunnel *t, const sockit__proxy_url *url, const char *target,
                         int port, const sockit_addr *target_addr)
{
    memset(t, 0, sizeof *t);
    t->url = *url;
    size_t n = target != NULL ? strlen(target) : 0;
    /* SOCKS5 carries a name in one length byte; HTTP's limit is only ours. */
    if (n == 0 || n > 255)
        return sockit__failf(-EINVAL, "connect through a proxy: target host %s",
                             n == 0 ? "missing" : "over 255 bytes");
    /* A name or an address, nothing else: the text goes into a request line and a
     * header (HTTP) where a space or CR LF would start something else. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= ' ' || c >= 0x7f || strchr("/@[]?#\\\"", c) != NULL)
            return sockit__failf(-EINVAL,
                                 "connect through a proxy: target host '%.64s' has a byte "
                                 "(0x%02x) no host name or address has",
                                 c >= ' ' && c < 0x7f ? target : "(unprintable)", c);
    }
    memcpy(t->target, target, n + 1);
    t->target_port = port;
    if (target_addr != NULL)
        t->target_addr = *target_addr;
    return url->kind == SOCKIT__TUNNEL_HTTP ? sockit__http_start(t) : sockit__socks5_start(t);
}

int sockit__tunnel_feed(sockit__tunnel *t, const char *data, size_t len, size_t *used)
{
    t->out_len = t->out_off = 0;
    return t->url.kind == SOCKIT__TUNNEL_HTTP ? sockit__http_feed(t, data, len, used)
                                              : sockit__socks5_feed(t, data, len, used);
}

void sockit__tunnel_where(const sockit__tunnel *t, char *buf, size_t size)
{
    char proxy[600];
    sockit__proxy_url_text(&t->url, proxy, sizeof proxy);
    bool v6 = strchr(t->target, ':') != NULL;
    snprintf(buf, size, "%s%s%s:%d through %s", v6 ? "[" : "", t->target, v6 ? "]" : "",
             t->target_port, proxy);
}

int sockit__tunnel_wants(const sockit__tunnel *t)
{
    return t->out_off < t->out_len ? SOCKIT_EVENT_WRITE : SOCKIT_EVENT_READ;
}
