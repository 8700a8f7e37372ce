/* The TCP server of the reference flow, line for line as Python's:
 *
 *     server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
 *     server.bind(('localhost', 12345))
 *     server.listen(5)
 *     while True:
 *         client, addr = server.accept()
 *         print(f"Connected to {addr}")
 *         data = client.recv(1024)
 *         client.send(b"Hello from server!")
 *         client.close()
 *
 * Usage: tcp_server [PORT [N]]   PORT defaults to 12345 (0 picks a free one, printed
 * on the "Listening on" line); N > 0 serves N connections then exits. */
#include <sockit.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage_error(const char *what, const char *text, const char *why)
{
    fprintf(stderr, "tcp_server: %s '%s': %s\n", what, text, why);
    return 2;
}

static int fail(sockit *server)
{
    fprintf(stderr, "tcp_server: %s\n", sockit_errmsg());
    sockit_close(server);
    return 1;
}

int main(int argc, char **argv)
{
    int port = 12345;
    long count = -1; /* forever */
    if (argc > 3) {
        fprintf(stderr, "usage: tcp_server [PORT [N]]\n");
        return 2;
    }
    if (argc > 1 && (port = sockit_parse_port(argv[1])) < 0) {
        fprintf(stderr, "tcp_server: %s\n", sockit_errmsg()); /* names the text and why */
        return 2;
    }
    if (argc > 2) {
        char *end;
        count = strtol(argv[2], &end, 10);
        if (end == argv[2] || *end != '\0' || count <= 0)
            return usage_error("count", argv[2], "not a positive number");
    }
    /* Tests and scripts read our output through a pipe: one line at a time. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    sockit *server = sockit_socket(AF_INET, SOCK_STREAM);
    if (server == NULL)
        return fail(NULL);
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    if (sockit_bind(server, "localhost", port) < 0 || sockit_listen(server, 5) < 0 ||
        sockit_getsockname(server, &me) < 0 || sockit_addr_format(&me, text, sizeof text) < 0)
        return fail(server);
    printf("Listening on %s\n", text);

    for (long served = 0; count < 0 || served < count; served++) {
        sockit_addr addr;
        sockit *client = sockit_accept(server, &addr);
        if (client == NULL)
            return fail(server);
        sockit_addr_format(&addr, text, sizeof text);
        printf("Connected to %s\n", text);
        char data[1024];
        ssize_t n = sockit_recv(client, data, sizeof data, 0);
        if (n >= 0)
            printf("Received: %.*s\n", (int)n, data);
        const char reply[] = "Hello from server!";
        /* A client that went away costs one message, not the server: no SIGPIPE. */
        if (n < 0 || sockit_send(client, reply, strlen(reply), 0) < 0)
            fprintf(stderr, "tcp_server: %s\n", sockit_errmsg());
        sockit_close(client);
    }
    sockit_close(server);
    return 0;
}
