/* sockit udp-server: the reference UDP server, as Python's:
 *     data, addr = server.recvfrom(1024); print(f"Received from {addr}: ...")
 *     server.sendto(b"Hello from UDP server!", addr)
 * except that datagrams up to 64 KiB arrive whole instead of being cut at 1024. */
#include "refserver.h"

#include <stddef.h>
#include <string.h>

static int handle(sockit_request *req)
{
    refserver *rs = req->user;
    rs->served++;
    rs->bytes_in += (long long)req->len;
    char peer[CLI_PEER_NAME_MAX];
    refserver_received(cli_addr_text(&req->peer, peer, sizeof peer), true, req->data, req->len);
    /* A Unix datagram sender that never bound its socket has no name to reply to. */
    if (sockit_addr_family(&req->peer) == AF_UNIX &&
        req->peer.len <= offsetof(struct sockaddr_un, sun_path)) {
        cli_fail("no reply to %s: the sender did not bind its socket, so it has no address", peer);
        return 0;
    }
    ssize_t sent = sockit_sendto_addr(req->sock, rs->reply, strlen(rs->reply), 0, &req->peer);
    if (sent < 0)
        return (int)sent;
    rs->bytes_out += sent;
    return 0;
}

int cmd_udp_server(int argc, char **argv)
{
    return refserver_run(argc, argv, SOCK_DGRAM, "Hello from UDP server!", handle);
}
