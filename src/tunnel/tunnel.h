/* Tunnels through a proxy: SOCKS5 (RFC 1928, with RFC 1929's user and password) and
 * HTTP CONNECT (RFC 9110 section 9.3.6, Basic credentials). The protocol is a pure
 * state machine: it says what to send and eats what arrives, so the blocking socket
 * (tunnel_socket.c) and the loop's connector (connect_async.c) drive the same code.
 * Internal. */
#ifndef SOCKIT_TUNNEL_H
#define SOCKIT_TUNNEL_H

#include "../internal.h"

typedef enum {
    SOCKIT__TUNNEL_SOCKS5,  /* the target's name resolved here, its address sent */
    SOCKIT__TUNNEL_SOCKS5H, /* the name sent: the proxy resolves it */
    SOCKIT__TUNNEL_HTTP,    /* CONNECT host:port */
} sockit__tunnel_kind;

/* A proxy URL taken apart: scheme://[user[:password]@]host[:port]. */
struct sockit__proxy_url {
    sockit__tunnel_kind kind;
    char host[256];
    int port;
    char user[256]; /* percent-decoded; "" without credentials */
    char password[256];
    bool has_credentials;
};
typedef struct sockit__proxy_url sockit__proxy_url;

/* Parses text. Returns 0, or -EINVAL / SOCKIT_EBADPORT with a message naming the
 * URL (credentials masked) and what is wrong with it. */
int sockit__proxy_url_parse(const char *text, sockit__proxy_url *out);
/* "socks5://user:***@host:port" for messages. */
void sockit__proxy_url_text(const sockit__proxy_url *u, char *buf, size_t size);

#define SOCKIT__TUNNEL_OUT_MAX 1536
#define SOCKIT__TUNNEL_IN_MAX  8192 /* an HTTP proxy's response header, at most */

typedef struct sockit__tunnel {
    sockit__proxy_url url;
    char target[256]; /* the host asked for */
    int target_port;
    sockit_addr target_addr; /* SOCKS5 (local names): the resolved address */
    int state;
    size_t need; /* SOCKS5: bytes the current reply needs in all */
    char out[SOCKIT__TUNNEL_OUT_MAX];
    size_t out_len; /* bytes of out to send before reading on */
    size_t out_off; /* of which this many are sent (a non-blocking socket's progress) */
    char in[SOCKIT__TUNNEL_IN_MAX + 1]; /* + 1: HTTP's header is parsed as a string */
    size_t in_len;
} sockit__tunnel;

/* What sockit__tunnel_feed returns besides a code. */
#define SOCKIT__TUNNEL_MORE 0 /* send out (if out_len > 0), then read and feed on */
#define SOCKIT__TUNNEL_OPEN 1 /* the tunnel is up: what follows is the target's */

/* Sets t up for url to target:port (target_addr filled by the caller first for
 * SOCKIT__TUNNEL_SOCKS5) and puts the first message in t->out. Returns 0 or -EINVAL
 * (a name the protocol cannot carry). */
int sockit__tunnel_start(sockit__tunnel *t, const sockit__proxy_url *url, const char *target,
                         int port, const sockit_addr *target_addr);
/* Takes what arrived from the proxy. *used is how much of data it ate: on
 * SOCKIT__TUNNEL_OPEN the rest belongs to the target's stream. Returns
 * SOCKIT__TUNNEL_MORE, SOCKIT__TUNNEL_OPEN, or a code with the message set:
 * SOCKIT_EPROXY (a refusal or a protocol failure, the proxy's reason in the
 * message), SOCKIT_EPROXYAUTH, or the errno the proxy's reply maps to
 * (-ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH, -ETIMEDOUT, -EACCES). */
int sockit__tunnel_feed(sockit__tunnel *t, const char *data, size_t len, size_t *used);
/* What the proxy was asked to reach, for messages: "example.com:80 through
 * socks5://127.0.0.1:1080". */
void sockit__tunnel_where(const sockit__tunnel *t, char *buf, size_t size);

/* The socket's driver: runs the handshake on a connected socket within deadline
 * (0: a non-blocking socket's, SOCKIT_EWOULDBLOCK when it must wait; calling again
 * goes on where it stopped). Leftover target bytes go to the read-ahead buffer.
 * Returns 0 when open, or a code with the message set. */
int sockit__tunnel_run(sockit *s, sockit__tunnel *t, int64_t deadline);
/* SOCKIT_EVENT_READ or SOCKIT_EVENT_WRITE: what the handshake waits for. */
int sockit__tunnel_wants(const sockit__tunnel *t);

#endif
