/* The base layouts (0.2, the first with a size field) of the structs callers pass
 * in, and the checks that accept any version of them (src/abi.c). A field added
 * after 0.2 goes after these; the base sizes below stay as they are. */
#ifndef SOCKIT_ABI_H
#define SOCKIT_ABI_H

#include "internal.h"
#include "sockit_proxy.h"

#include <stddef.h>

#define SOCKIT__END_OF(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))

#define SOCKIT__BASE_LOOP_OPTIONS       SOCKIT__END_OF(sockit_loop_options, spin_us)
#define SOCKIT__BASE_SERVER_OPTIONS     SOCKIT__END_OF(sockit_server_options, dualstack)
#define SOCKIT__BASE_SERVER_CONFIG      SOCKIT__END_OF(sockit_server_config, tls_handshake_timeout)
#define SOCKIT__BASE_STREAM_CALLBACKS   SOCKIT__END_OF(sockit_stream_callbacks, on_close)
#define SOCKIT__BASE_LISTENER_CONFIG    SOCKIT__END_OF(sockit_listener_config, tls_handshake_timeout)
#define SOCKIT__BASE_DATAGRAM_CALLBACKS SOCKIT__END_OF(sockit_datagram_callbacks, on_close)
#define SOCKIT__BASE_PROXY_CONFIG       SOCKIT__END_OF(sockit_proxy_config, upstream_tls_name)
#define SOCKIT__BASE_RELAY_CONFIG       SOCKIT__END_OF(sockit_relay_config, user)
#define SOCKIT__BASE_RELAY_SIDE         SOCKIT__END_OF(sockit_relay_side, datagram)

/* 0, or -EINVAL (message naming `what`) for a size below the size field or bytes
 * past `known` (this library's sizeof) that are not zero. src starts with its
 * size_t size. */
int sockit__struct_check(const void *src, size_t known, const char *what);
/* Checks src, then copies the part of it that both sides know into dst (known
 * bytes, the rest zeroed: a field an older caller lacks takes its default) and sets
 * dst's size to known. */
int sockit__struct_copy(void *dst, size_t known, const void *src, size_t base, const char *what);

/* A table held by pointer (stream and datagram callbacks) is read where it lies:
 * sockit__struct_check's rules, and no size below the base layout. A callback added
 * after 0.2 must be called only when the caller's size covers it (size 0 means the
 * base layout). */
int sockit__table_check(const void *src, size_t base, size_t known, const char *what);

#endif
