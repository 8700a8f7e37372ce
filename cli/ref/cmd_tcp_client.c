/* sockit tcp-client: the reference TCP client, as Python's:
 *     client.connect(('localhost', 12345)); client.send(b"Hello server!")
 *     print(client.recv(1024).decode()); client.close()
 * through sockit_create_connection, so every address is tried under one deadline;
 * with --tls, sockit_tls_create_connection under that same deadline. */
#include "refclient.h"

#include <string.h>

int cmd_tcp_client(int argc, char **argv)
{
    refclient rc;
    int status = refclient_options(argc, argv, SOCK_STREAM, "Hello server!", &rc);
    if (status >= 0)
        return status;
    sockit_tls_ctx *tls = tls_opts_context(&rc.tls, false, &status);
    if (status != 0)
        return status;
    sockit *c = tls_opts_connect_via(&rc.tls, tls, rc.proxy, rc.host, rc.port, rc.timeout, NULL);
    sockit_tls_ctx_free(tls); /* the connection keeps its own reference */
    if (c == NULL)
        return cli_fail_lib();
    sockit_addr peer;
    char text[SOCKIT_ADDRSTRLEN];
    sockit_getpeername(c, &peer);
    cli_addr_text(&peer, text, sizeof text);
    tls_info ti;
    if (tls_info_get(c, &ti))
        cli_event("connected", "peer", 's', text, "tls_version", 's', ti.version, "tls_cipher", 's',
                  ti.cipher, "tls_alpn", 's', ti.alpn, "tls_peer", 's', ti.peer, NULL);
    else
        cli_event("connected", "peer", 's', text, NULL);
    static char reply[65536];
    ssize_t sent = sockit_sendall(c, rc.send, strlen(rc.send), 0, NULL);
    ssize_t n = sent < 0 ? sent : sockit_recv(c, reply, sizeof reply, 0);
    if (n < 0) {
        status = cli_fail_lib();
        sockit_close(c);
        return status;
    }
    refclient_reply(reply, (size_t)n, &peer);
    sockit_close(c);
    cli_event("exit", "reason", 's', "done", "bytes_in", 'i', (long long)n, "bytes_out", 'i',
              (long long)sent, NULL);
    return CLI_OK;
}
