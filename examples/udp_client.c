/* The UDP client of the reference flow, line for line as Python's:
 *
 *     client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
 *     client.sendto(b"Hello UDP server!", ('localhost', 12345))
 *     response, addr = client.recvfrom(1024)
 *     print(response.decode())
 *
 * Usage: udp_client [PORT]   PORT defaults to 12345. Like Python's, it waits for the
 * reply as long as it takes (UDP has no connection to fail). */
#include <sockit.h>

#include <stdio.h>
#include <string.h>

static int fail(sockit *client)
{
    fprintf(stderr, "udp_client: %s\n", sockit_errmsg());
    sockit_close(client);
    return 1;
}

int main(int argc, char **argv)
{
    int port = 12345;
    if (argc > 2) {
        fprintf(stderr, "usage: udp_client [PORT]\n");
        return 2;
    }
    if (argc > 1 && (port = sockit_parse_port(argv[1])) < 0) {
        fprintf(stderr, "udp_client: %s\n", sockit_errmsg()); /* names the text and why */
        return 2;
    }

    sockit *client = sockit_socket(AF_INET, SOCK_DGRAM);
    if (client == NULL)
        return fail(NULL);
    const char hello[] = "Hello UDP server!";
    if (sockit_sendto(client, hello, strlen(hello), 0, "localhost", port) < 0)
        return fail(client);
    char response[1024];
    sockit_addr addr;
    ssize_t n = sockit_recvfrom(client, response, sizeof response, 0, &addr);
    if (n < 0)
        return fail(client);
    printf("%.*s\n", (int)n, response);
    sockit_close(client);
    return 0;
}
