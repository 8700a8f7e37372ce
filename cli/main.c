/* sockit: the command-line tool. main is a table of subcommands; each lives in its
 * own cmd_*.c file. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

typedef struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"tcp-server", cmd_tcp_server, "the reference TCP server: reply to each client"},
    {"tcp-client", cmd_tcp_client, "the reference TCP client: send, print the reply"},
    {"udp-server", cmd_udp_server, "the reference UDP server: reply to each datagram"},
    {"udp-client", cmd_udp_client, "the reference UDP client: send a datagram, print the reply"},
    {"listen", cmd_listen, "netcat: accept connections, relay stdin/stdout"},
    {"connect", cmd_connect, "netcat: connect, relay stdin/stdout"},
    {"echo", cmd_echo, "echo server: every client at once, on the event-driven server"},
    {"bench", cmd_bench, "load generator: echo, stream or connect rate, latency percentiles"},
    {"forward", cmd_forward, "join two addresses (TCP, TLS, Unix, stdio, file, command): socat"},
    {"proxy", cmd_proxy, "a relay that injects faults: toxiproxy's toxics and API"},
    {"tls-cert", cmd_tls_cert, "a self-signed certificate and key, for trying --tls locally"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sockit SUBCOMMAND [OPTIONS] [ARGS]\n"
                 "       sockit SUBCOMMAND --help\n"
                 "       sockit --version\n\nsubcommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nexit status: 0 ok, 1 network or system failure, 2 bad usage.\n"
                 "See sockit(1).\n");
}

/* The version, then one line per feature: compiled in or not, and whether this
 * kernel and process let it work, with why not. */
static void print_version(void)
{
    printf("sockit %s\n", sockit_version());
    unsigned built = sockit_features_built(), usable = sockit_features_usable();
    for (unsigned bit = 1; sockit_feature_name(bit) != NULL; bit <<= 1) {
        const char *feature = sockit_feature_name(bit);
        if (!(built & bit))
            printf("%s: not built (%s)\n", feature, sockit_feature_reason(bit));
        else if (usable & bit)
            printf("%s: built, usable\n", feature);
        else
            printf("%s: built, not usable (%s)\n", feature, sockit_feature_reason(bit));
    }
}

/* A closed stdin, stdout or stderr would hand its number to the first socket, and
 * the relay would then talk to its own connection: keep 0-2 taken, as nc does. */
static void occupy_standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (null >= 0 && null != fd) /* open takes the lowest free number: fd */
            close(null);
    }
}

int main(int argc, char **argv)
{
    occupy_standard_fds();
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        print_version();
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            cli_cmd = commands[i].name;
            /* The subcommand sees its own name as argv[0], as getopt expects. */
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    cli_fail("unknown subcommand '%s'", name); /* escaped: one line whatever was typed */
    usage(stderr);
    return CLI_USAGE;
}
