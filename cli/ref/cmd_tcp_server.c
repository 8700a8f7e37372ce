/* sockit tcp-server: the reference TCP server, as Python's:
 *     client, addr = server.accept(); print(f"Connected to {addr}")
 *     data = client.recv(1024); client.send(b"Hello from server!"); client.close() */
#include "refserver.h"

#include <string.h>

static int handle(sockit_request *req)
{
    refserver *rs = req->user;
    rs->served++;
    cli_peer_name(req->sock, &req->peer, rs->peer, sizeof rs->peer);
    refserver_connected(req->sock, rs->peer);
    char data[1024];
    rs->waiting_for = "sent nothing";
    ssize_t n = sockit_recv(req->sock, data, sizeof data, 0);
    if (n < 0)
        return (int)n;
    rs->bytes_in += n;
    refserver_received(rs->peer, false, data, (size_t)n);
    rs->waiting_for = "did not take the reply";
    ssize_t sent = sockit_sendall(req->sock, rs->reply, strlen(rs->reply), 0, NULL);
    rs->waiting_for = NULL;
    if (sent < 0)
        return (int)sent;
    rs->bytes_out += sent;
    return 0;
}

int cmd_tcp_server(int argc, char **argv)
{
    return refserver_run(argc, argv, SOCK_STREAM, "Hello from server!", handle);
}
