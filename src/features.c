/* Features: what this library was built with, and what the kernel and process let
 * it use, probed once per process on the first ask. Each probe does the smallest
 * thing that proves the feature works here (a ring set up, a socket option taken),
 * and keeps why not. */
#include "internal.h"
#include "sockit_tls.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* Indexed by bit number: SOCKIT_FEATURE_TLS is 1 << 0. */
static const char *const names[] = {
    "tls", "io_uring", "ipv6", "dualstack_ipv6", "reuseport", "tcp_fastopen", "ktls",
};
#define NFEATURES (sizeof names / sizeof names[0])
_Static_assert(SOCKIT_FEATURE_KTLS == 1u << (NFEATURES - 1), "one name per feature bit");

static pthread_once_t probed = PTHREAD_ONCE_INIT;
/* Written once inside pthread_once, read only after it: pthread_once orders them. */
static unsigned usable;
static char reasons[NFEATURES][320];

/* The bit's index, or -1 when bit is not exactly one known feature. */
static int index_of(unsigned bit)
{
    for (size_t i = 0; i < NFEATURES; i++)
        if (bit == 1u << i)
            return (int)i;
    return -1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
why(unsigned bit, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reasons[index_of(bit)], sizeof reasons[0], fmt, ap);
    va_end(ap);
}

unsigned sockit_features_built(void)
{
    unsigned built = SOCKIT_FEATURE_IPV6 | SOCKIT_FEATURE_DUALSTACK | SOCKIT_FEATURE_REUSEPORT |
                     SOCKIT_FEATURE_TCP_FASTOPEN | SOCKIT_FEATURE_KTLS;
    if (sockit_has_tls())
        built |= SOCKIT_FEATURE_TLS;
#ifdef SOCKIT_HAVE_URING
    built |= SOCKIT_FEATURE_URING;
#endif
    return built;
}

/* A server context needs no trust store, so making one costs OpenSSL's start only. */
static bool probe_tls(void)
{
    if (!sockit_has_tls()) {
        why(SOCKIT_FEATURE_TLS, "built without OpenSSL (pkg-config found no openssl >= 3.0 at "
                                "build time, or SOCKIT_TLS=OFF)");
        return false;
    }
    sockit_tls_ctx *ctx = sockit_tls_ctx_new(SOCKIT_TLS_SERVER);
    if (ctx == NULL) {
        why(SOCKIT_FEATURE_TLS, "%s", sockit_errmsg());
        return false;
    }
    sockit_tls_ctx_free(ctx);
    return true;
}

/* The backend's own start-up decides, so this answer and the default loop's choice
 * never disagree: seccomp, kernel.io_uring_disabled, an old kernel, memory limits. */
static bool probe_uring(void)
{
#ifdef SOCKIT_HAVE_URING
    sockit_loop_options o = SOCKIT_LOOP_OPTIONS_INIT;
    o.backend = "uring";
    sockit_loop *loop = sockit_loop_new(&o);
    if (loop == NULL) {
        why(SOCKIT_FEATURE_URING, "%s", sockit_errmsg());
        return false;
    }
    sockit_loop_close(loop);
    return true;
#else
    why(SOCKIT_FEATURE_URING, "built without liburing (pkg-config found none at build time)");
    return false;
#endif
}

/* IPv6 sockets exist (no ipv6.disable=1) and loopback has ::1 (no disable_ipv6). */
static bool probe_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        why(SOCKIT_FEATURE_IPV6, "socket(AF_INET6): %s", sockit_strerror(-errno));
        return false;
    }
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    int err = errno;
    close(fd);
    if (!ok)
        why(SOCKIT_FEATURE_IPV6, "bind [::1]:0: %s", sockit_strerror(-err));
    return ok;
}

static bool probe_dualstack(bool ipv6)
{
    if (!ipv6) {
        why(SOCKIT_FEATURE_DUALSTACK, "needs ipv6, which is not usable");
        return false;
    }
    if (!sockit_has_dualstack_ipv6()) {
        why(SOCKIT_FEATURE_DUALSTACK, "IPV6_V6ONLY cannot be turned off on an IPv6 socket");
        return false;
    }
    return true;
}

/* 0, or the errno of setting an int option on a new TCP socket. */
static int try_option(int level, int name, int value)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int err = setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : errno;
    close(fd);
    return err;
}

static bool probe_reuseport(void)
{
    int err = try_option(SOL_SOCKET, SO_REUSEPORT, 1);
    if (err != 0)
        why(SOCKIT_FEATURE_REUSEPORT, "setsockopt SO_REUSEPORT: %s", sockit_strerror(-err));
    return err == 0;
}

/* The first line of a /proc file, or false with the errno in *err. */
static bool read_line(const char *path, char *buf, size_t size, int *err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        *err = errno;
        return false;
    }
    bool ok = fgets(buf, (int)size, f) != NULL;
    *err = ok ? 0 : EIO;
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* The kernel takes the option everywhere; the sysctl decides whether it is used:
 * bit 1 lets clients send data in the SYN, bit 2 lets listeners accept it. The
 * kernel's default, 1, is client side only. */
static bool probe_fastopen(void)
{
    int err = try_option(IPPROTO_TCP, TCP_FASTOPEN, 16);
    if (err != 0) {
        why(SOCKIT_FEATURE_TCP_FASTOPEN, "setsockopt TCP_FASTOPEN: %s", sockit_strerror(-err));
        return false;
    }
    static const char path[] = "/proc/sys/net/ipv4/tcp_fastopen";
    char line[64] = "";
    if (!read_line(path, line, sizeof line, &err)) {
        why(SOCKIT_FEATURE_TCP_FASTOPEN, "%s: %s", path, sockit_strerror(-err));
        return false;
    }
    int v = 0;
    if (sscanf(line, "%i", &v) != 1) {
        why(SOCKIT_FEATURE_TCP_FASTOPEN, "%s: '%s' is not a number", path, line);
        return false;
    }
    if ((v & 3) == 3)
        return true;
    why(SOCKIT_FEATURE_TCP_FASTOPEN, "net.ipv4.tcp_fastopen is %d: %s; 3 turns on both", v,
        v & 1   ? "client side only"
        : v & 2 ? "server side only"
                : "off");
    return false;
}

/* Read from the kernel's list rather than by attaching the ULP to a socket: as
 * root, that would load the tls module, and a query should change nothing. */
static bool probe_ktls(void)
{
    static const char path[] = "/proc/sys/net/ipv4/tcp_available_ulp";
    char line[256] = "";
    int err;
    if (!read_line(path, line, sizeof line, &err)) {
        why(SOCKIT_FEATURE_KTLS, "%s: %s", path, sockit_strerror(-err));
        return false;
    }
    for (char *save = NULL, *w = strtok_r(line, " \t", &save); w != NULL;
         w = strtok_r(NULL, " \t", &save))
        if (strcmp(w, "tls") == 0)
            return true;
    why(SOCKIT_FEATURE_KTLS,
        "the kernel has no \"tls\" TCP ULP: net.ipv4.tcp_available_ulp is "
        "'%s' (modprobe tls adds it where the module exists)",
        line);
    return false;
}

static void probe(void)
{
    unsigned u = 0;
    u |= probe_tls() ? SOCKIT_FEATURE_TLS : 0;
    u |= probe_uring() ? SOCKIT_FEATURE_URING : 0;
    bool ipv6 = probe_ipv6();
    u |= ipv6 ? SOCKIT_FEATURE_IPV6 : 0;
    u |= probe_dualstack(ipv6) ? SOCKIT_FEATURE_DUALSTACK : 0;
    u |= probe_reuseport() ? SOCKIT_FEATURE_REUSEPORT : 0;
    u |= probe_fastopen() ? SOCKIT_FEATURE_TCP_FASTOPEN : 0;
    u |= probe_ktls() ? SOCKIT_FEATURE_KTLS : 0;
    usable = u & sockit_features_built();
}

unsigned sockit_features_usable(void)
{
    pthread_once(&probed, probe);
    return usable;
}

const char *sockit_feature_name(unsigned bit)
{
    int i = index_of(bit);
    return i < 0 ? NULL : names[i];
}

const char *sockit_feature_reason(unsigned bit)
{
    int i = index_of(bit);
    if (i < 0 || (sockit_features_usable() & bit))
        return NULL;
    return reasons[i];
}
