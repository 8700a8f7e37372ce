/* The parts of a C bench peer that do not depend on how it serves: see
 * peer_common.h. */
#include "peer_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

const char *peer_name = "peer";
volatile sig_atomic_t peer_stopping;
static int stop_fd = -1;

void peer_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", peer_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void peer_fail(const char *what)
{
    int err = errno;
    fprintf(stderr, "%s: %s: %s\n", peer_name, what, strerror(err));
    exit(1);
}

const char *peer_option(int argc, char **argv, int *i, const char *name)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0)
        return NULL;
    if (arg[len] == '=')
        return arg + len + 1;
    if (arg[len] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        peer_usage_error("%s: needs a value", name);
    return argv[++*i];
}

const char *peer_mode_name(enum peer_mode mode)
{
    switch (mode) {
    case PEER_ECHO:
        return "echo";
    case PEER_ONESHOT:
        return "oneshot";
    case PEER_SINK:
        return "sink";
    }
    return "?";
}

static enum peer_mode parse_mode(const char *text, unsigned modes)
{
    static const enum peer_mode all[] = {PEER_ECHO, PEER_ONESHOT, PEER_SINK};
    char supported[64] = "";
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        if (!(modes & all[k]))
            continue;
        if (strcmp(text, peer_mode_name(all[k])) == 0)
            return all[k];
        size_t used = strlen(supported);
        snprintf(supported + used, sizeof supported - used, "%s%s", used ? ", " : "",
                 peer_mode_name(all[k]));
    }
    peer_usage_error("--mode '%s': not supported: only %s", text, supported);
}

static int parse_port(const char *text)
{
    char *end;
    errno = 0;
    long port = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || port < 0 || port > 65535)
        peer_usage_error("--port '%s': not a number in 0-65535", text);
    return (int)port;
}

bool peer_parse_arg(int argc, char **argv, int *i, unsigned modes, const char *usage,
                    struct peer_args *out)
{
    const char *value;
    if (strcmp(argv[*i], "--help") == 0 || strcmp(argv[*i], "-h") == 0) {
        printf("%s\n", usage);
        exit(0);
    }
    if ((value = peer_option(argc, argv, i, "--mode")) != NULL)
        out->mode = parse_mode(value, modes);
    else if ((value = peer_option(argc, argv, i, "--port")) != NULL)
        out->port = parse_port(value);
    else
        return false;
    return true;
}

void peer_parse(int argc, char **argv, const char *name, unsigned modes, const char *usage,
                struct peer_args *out)
{
    peer_name = name;
    *out = (struct peer_args){.mode = PEER_ECHO, .port = 0};
    for (int i = 1; i < argc; i++) {
        if (!peer_parse_arg(argc, argv, &i, modes, usage, out))
            peer_usage_error("'%s': unknown argument", argv[i]);
    }
}

void peer_prepare(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        /* Failing leaves the old limit: the peer still serves, just fewer clients. */
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fprintf(stderr, "%s: cannot raise the fd limit: %s\n", peer_name, strerror(errno));
    }
    signal(SIGPIPE, SIG_IGN);
}

int peer_socket(int type, bool nonblocking, int port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        peer_fail("socket");
    int one = 1;
    /* Restarting on the same port must not wait out TIME_WAIT; never for UDP, where
     * Linux would let a second server share the port. */
    if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        peer_fail("setsockopt SO_REUSEADDR");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        char what[64];
        snprintf(what, sizeof what, "bind 127.0.0.1:%d", port);
        peer_fail(what);
    }
    if (type == SOCK_STREAM && listen(fd, PEER_BACKLOG) < 0)
        peer_fail("listen");
    return fd;
}

int peer_bound_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
        peer_fail("getsockname");
    return ntohs(sin.sin_port);
}

void peer_announce(int port)
{
    printf("Listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
}

void peer_on_stop_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static void stop_socket(int sig)
{
    (void)sig;
    peer_stopping = 1;
    shutdown(stop_fd, SHUT_RDWR);
}

void peer_stop_socket_on_signals(int fd)
{
    stop_fd = fd;
    peer_on_stop_signals(stop_socket);
}

int peer_stop_signalfd(bool nonblocking)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        peer_fail("sigprocmask");
    int fd = signalfd(-1, &set, SFD_CLOEXEC | (nonblocking ? SFD_NONBLOCK : 0));
    if (fd < 0)
        peer_fail("signalfd");
    return fd;
}
