/* sockit udp-client: the reference UDP client, as Python's:
 *     client.sendto(b"Hello UDP server!", ('localhost', 12345))
 *     response, addr = client.recvfrom(1024); print(response.decode())
 * with a deadline, since a lost datagram would otherwise wait forever. */
#include "refclient.h"

#include <string.h>

int cmd_udp_client(int argc, char **argv)
{
    refclient rc;
    int status = refclient_options(argc, argv, SOCK_DGRAM, "Hello UDP server!", &rc);
    if (status >= 0)
        return status;
    sockit_addrinfo ai;
    char port[8];
    snprintf(port, sizeof port, "%d", rc.port);
    if (sockit_getaddrinfo(rc.host, port, AF_UNSPEC, SOCK_DGRAM, 0, &ai, 1) < 0)
        return cli_fail_lib();
    sockit *c = sockit_socket(ai.family, SOCK_DGRAM);
    if (c == NULL)
        return cli_fail_lib();
    static char reply[65536];
    sockit_addr from;
    ssize_t n = sockit_settimeout(c, rc.timeout);
    ssize_t sent = n < 0 ? n : sockit_sendto_addr(c, rc.send, strlen(rc.send), 0, &ai.addr);
    if (sent >= 0)
        n = sockit_recvfrom(c, reply, sizeof reply, 0, &from);
    if (sent < 0 || n < 0) {
        status = cli_fail_lib();
        sockit_close(c);
        return status;
    }
    refclient_reply(reply, (size_t)n, &from);
    sockit_close(c);
    cli_event("exit", "reason", 's', "done", "bytes_in", 'i', (long long)n, "bytes_out", 'i',
              (long long)sent, NULL);
    return CLI_OK;
}
