/* The blocking server's side of running out of descriptors (the mechanism, shedding
 * the backlog with a spare descriptor and the back-off, is shed.c's): the spare
 * kept in the server, the back-off deadline the serving loop honours, and the
 * error reported once per streak. */
#include "socketserver.h"

void sockit__srv_reserve(sockit_server *srv) { sockit__reserve_fd(&srv->reserve_fd); }

bool sockit__srv_shed(sockit_server *srv)
{
    return sockit__shed_backlog(sockit_fileno(srv->sock), &srv->reserve_fd);
}

void sockit__srv_back_off(sockit_server *srv, int code)
{
    if (!srv->resource_reported) {
        sockit__srv_report(srv, NULL, code);
        srv->resource_reported = true;
    }
    srv->backoff_ns = sockit__backoff_next(srv->backoff_ns);
    srv->backoff_until = sockit__now_ns() + srv->backoff_ns;
}

void sockit__srv_resource_ok(sockit_server *srv)
{
    srv->backoff_ns = 0;
    srv->backoff_until = 0;
    srv->resource_reported = false;
}
