/* sockit udp-server: the reference UDP server, as Python's:
 *     data, addr = server.recvfrom(1024); print(f"Received from {addr}: ...")
 *     server.sendto(b"Hello from UDP server!", addr)
 * except that datagrams up to 64 KiB arrive whole instead of being cut at 1024. */
#include "refserver.h"

#include <string.h>

static int handle(sockit_request *req)
{
    refserver *rs = req->user;
    rs->served++;
    rs->bytes_in += (long long)req->len;
    char peer[CLI_PEER_NAME_MAX];
    refserver_received(cli_addr_text(&req->peer, peer, sizeof peer), true, req->data, req->len);
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
