/* The TCP client of the reference flow, line for line as Python's:
 *
 *     client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
 *     client.connect(('localhost', 12345))
 *     client.send(b"Hello server!")
 *     response = client.recv(1024)
 *     print(response.decode())
 *     client.close()
 *
 * Usage: tcp_client [PORT]   PORT defaults to 12345. */
#include <sockit.h>

#include <stdio.h>
#include <string.h>

static int fail(sockit *client)
{
    fprintf(stderr, "tcp_client: %s\n", sockit_errmsg());
    sockit_close(client);
    return 1;
}

int main(int argc, char **argv)
{
    int port = 12345;
    if (argc > 2) {
        fprintf(stderr, "usage: tcp_client [PORT]\n");
        return 2;
    }
    if (argc > 1 && (port = sockit_parse_port(argv[1])) < 0) {
        fprintf(stderr, "tcp_client: %s\n", sockit_errmsg()); /* names the text and why */
        return 2;
    }

    sockit *client = sockit_socket(AF_INET, SOCK_STREAM);
    if (client == NULL)
        return fail(NULL);
    if (sockit_connect(client, "localhost", port) < 0)
        return fail(client);
    const char hello[] = "Hello server!";
    if (sockit_send(client, hello, strlen(hello), 0) < 0)
        return fail(client);
    char response[1024];
    ssize_t n = sockit_recv(client, response, sizeof response, 0);
    if (n < 0)
        return fail(client);
    printf("%.*s\n", (int)n, response);
    sockit_close(client);
    return 0;
}
