/* The UDP server of the reference flow, line for line as Python's:
 *
 *     server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
 *     server.bind(('localhost', 12345))
 *     while True:
 *         data, addr = server.recvfrom(1024)
 *         print(f"Received from {addr}: {data.decode()}")
 *         server.sendto(b"Hello from UDP server!", addr)
 *
 * Usage: udp_server [PORT [N]]   PORT defaults to 12345 (0 picks a free one, printed
 * on the "Listening on" line); N > 0 answers N datagrams then exits. */
#include <sockit.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage_error(const char *what, const char *text, const char *why)
{
    fprintf(stderr, "udp_server: %s '%s': %s\n", what, text, why);
    return 2;
}

static int fail(sockit *server)
{
    fprintf(stderr, "udp_server: %s\n", sockit_errmsg());
    sockit_close(server);
    return 1;
}

int main(int argc, char **argv)
{
    int port = 12345;
    long count = -1; /* forever */
    if (argc > 3) {
        fprintf(stderr, "usage: udp_server [PORT [N]]\n");
        return 2;
    }
    if (argc > 1 && (port = sockit_parse_port(argv[1])) < 0) {
        fprintf(stderr, "udp_server: %s\n", sockit_errmsg()); /* names the text and why */
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

    sockit *server = sockit_socket(AF_INET, SOCK_DGRAM);
    if (server == NULL)
        return fail(NULL);
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    if (sockit_bind(server, "localhost", port) < 0 || sockit_getsockname(server, &me) < 0 ||
        sockit_addr_format(&me, text, sizeof text) < 0)
        return fail(server);
    printf("Listening on %s\n", text);

    for (long served = 0; count < 0 || served < count; served++) {
        char data[1024];
        sockit_addr addr;
        ssize_t n = sockit_recvfrom(server, data, sizeof data, 0, &addr);
        /* Python would hand us the first 1024 bytes as if that were all; sockit says
         * the datagram was cut, and the server skips it rather than answer garbage. */
        if (n == SOCKIT_ETRUNCATED) {
            fprintf(stderr, "udp_server: %s\n", sockit_errmsg());
            continue;
        }
        if (n < 0)
            return fail(server);
        sockit_addr_format(&addr, text, sizeof text);
        printf("Received from %s: %.*s\n", text, (int)n, data);
        const char reply[] = "Hello from UDP server!";
        if (sockit_sendto_addr(server, reply, strlen(reply), 0, &addr) < 0)
            fprintf(stderr, "udp_server: %s\n", sockit_errmsg());
    }
    sockit_close(server);
    return 0;
}
