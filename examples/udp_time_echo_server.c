/* A UDP server that tells the time and echoes everything else, as Python writes it
 * with socketserver:
 *
 *     class TimeEcho(socketserver.BaseRequestHandler):
 *         def handle(self):
 *             data, sock = self.request
 *             if data.strip() == b"time":
 *                 data = time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()).encode()
 *             sock.sendto(data, self.client_address)
 *
 *     with socketserver.UDPServer(('localhost', 12348), TimeEcho) as server:
 *         server.serve_forever()
 *
 * A datagram "time" (a trailing "\n" or "\r\n" is allowed) is answered with the
 * current UTC time, "2024-05-01T12:00:00Z\n"; any other datagram comes back as it
 * was, whole: Python's UDPServer cuts datagrams at 8192 bytes, this one takes up to
 * 65536.
 *
 * Usage: udp_time_echo_server [PORT]   PORT defaults to 12348 (0 picks a free one,
 * printed on the "Listening on" line). SIGINT and SIGTERM stop it; it exits 0. */
/* sigaction, clock_gettime and friends are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <sockit.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static sockit_server *the_server;

static void on_signal(int sig)
{
    (void)sig;
    sockit_server_shutdown(the_server);
}

static bool asks_time(const char *data, size_t len)
{
    static const char *const forms[] = {"time", "time\n", "time\r\n"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        if (len == strlen(forms[i]) && memcmp(data, forms[i], len) == 0)
            return true;
    return false;
}

static int time_or_echo(sockit_request *req)
{
    const char *reply = req->data;
    size_t len = req->len;
    char now[64];
    if (asks_time(req->data, req->len)) {
        time_t t = time(NULL);
        struct tm utc;
        if (gmtime_r(&t, &utc) == NULL)
            return -EOVERFLOW;
        len = strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ\n", &utc);
        reply = now;
    }
    /* On a datagram server req->sock is the server's own socket: the reply goes back
     * to the sender's address. */
    ssize_t rc = sockit_sendto_addr(req->sock, reply, len, 0, &req->peer);
    return rc < 0 ? (int)rc : 0;
}

static void handle_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
    int port = 12348;
    if (argc > 2) {
        fprintf(stderr, "usage: udp_time_echo_server [PORT]\n");
        return 2;
    }
    if (argc > 1 && (port = sockit_parse_port(argv[1])) < 0) {
        fprintf(stderr, "udp_time_echo_server: port '%s': %s\n", argv[1], sockit_strerror(port));
        return 2;
    }
    /* Tests and scripts read our output through a pipe: one line at a time. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Each datagram is answered in the serving thread, one after the other: the
     * handler is quick, so there is nothing to gain from threads. */
    sockit_server_config cfg = {
        .handler = time_or_echo,
        .mode = SOCKIT_SEQUENTIAL,
        .listen = {.family = AF_INET},
    };
    the_server = sockit_server_new("localhost", port, SOCK_DGRAM, &cfg);
    sockit_addr me;
    char text[SOCKIT_ADDRSTRLEN];
    if (the_server == NULL || sockit_server_address(the_server, &me) < 0 ||
        sockit_addr_format(&me, text, sizeof text) < 0) {
        fprintf(stderr, "udp_time_echo_server: %s\n", sockit_errmsg());
        sockit_server_close(the_server);
        return 1;
    }
    handle_signals(on_signal);
    printf("Listening on %s\n", text);

    int rc = sockit_server_serve_forever(the_server);
    if (rc < 0)
        fprintf(stderr, "udp_time_echo_server: %s\n", sockit_errmsg());
    handle_signals(SIG_DFL);
    int closed = sockit_server_close(the_server);
    the_server = NULL;
    if (closed < 0)
        fprintf(stderr, "udp_time_echo_server: %s\n", sockit_errmsg());
    return rc < 0 || closed < 0 ? 1 : 0;
}
