/* The HTTP server of toxiproxy's API, on the loop: each connection's requests are
 * read whole (head, then Content-Length bytes), answered by api_route in order,
 * and the connection kept open between requests unless the client asks not to. */
#ifndef SOCKIT_CLI_PROXY_API_H
#define SOCKIT_CLI_PROXY_API_H

#include "registry.h"

#include <sockit.h>

struct api_conn;
typedef struct api_server {
    sockit_loop *loop;
    sockit_listener *listener;
    registry *reg;
    struct api_conn *conns; /* open ones, closed by api_stop */
} api_server;

/* API clients at once; more wait in the backlog. */
#define API_CONNECTIONS_MAX 64
/* An API connection that sends nothing this long is closed (toxiproxy's 60 s). */
#define API_IDLE_SECS 60.0

/* Listens on host:port. 0, or a code with sockit_errmsg() set. */
int api_start(api_server *a, sockit_loop *loop, registry *reg, const char *host, int port);
int api_address(const api_server *a, sockit_addr *out);
/* Stops listening and closes the open API connections. */
void api_stop(api_server *a);

#endif
