/* The two protocols behind tunnel.h's dispatch. Internal. */
#ifndef SOCKIT_TUNNEL_INTERNAL_H
#define SOCKIT_TUNNEL_INTERNAL_H

#include "tunnel.h"

int sockit__socks5_start(sockit__tunnel *t);
int sockit__socks5_feed(sockit__tunnel *t, const char *data, size_t len, size_t *used);
int sockit__http_start(sockit__tunnel *t);
int sockit__http_feed(sockit__tunnel *t, const char *data, size_t len, size_t *used);

#endif
