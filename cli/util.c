/* Messages, exit codes, argument parsing and --json events shared by every
 * subcommand. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

const char *cli_cmd = "sockit";

/* Where events go. When that is stderr (netcat: stdout carries the data), the
 * prose messages are left out so stderr holds only JSON. */
static FILE *json_out;

void cli_json_enable(FILE *stream) { json_out = stream; }
bool cli_json_on(void) { return json_out != NULL; }

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void cli_event(const char *event, ...)
{
    if (json_out == NULL)
        return;
    /* The line is made whole first and written in one call: stderr is unbuffered,
     * and a reader of the file (a test waiting for "bound") would otherwise see half
     * a line. Without memory for that, it goes out piece by piece, under the stream's
     * lock, so still one line per event when several threads tell events (sockit
     * echo --loops N). */
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (f == NULL)
        f = json_out;
    flockfile(json_out);
    fprintf(f, "{\"event\":");
    cli_json_string(f, event);
    va_list ap;
    va_start(ap, event);
    for (const char *key = va_arg(ap, const char *); key != NULL; key = va_arg(ap, const char *)) {
        int type = va_arg(ap, int);
        fputc(',', f);
        cli_json_string(f, key);
        fputc(':', f);
        switch (type) {
        case 's': {
            const char *v = va_arg(ap, const char *);
            if (v == NULL)
                fputs("null", f);
            else
                cli_json_string(f, v);
            break;
        }
        case 'i':
            fprintf(f, "%lld", va_arg(ap, long long));
            break;
        case 'f': {
            double v = va_arg(ap, double);
            if (isfinite(v))
                fprintf(f, "%.6f", v);
            else
                fputs("null", f);
            break;
        }
        case 'b':
            fputs(va_arg(ap, int) ? "true" : "false", f);
            break;
        default:
            fputs("null", f);
            break;
        }
    }
    va_end(ap);
    fputs("}\n", f);
    if (f != json_out && fclose(f) == 0)
        fwrite(line, 1, len, json_out);
    free(line);
    fflush(json_out);
    funlockfile(json_out);
}

/* msg as one line: a control character (a newline in an operand that is named)
 * becomes an escape, so that an error is never cut across lines. */
static const char *one_line(const char *msg, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0' && o + 5 < size; p++) {
        if (*p >= 0x20 && *p != 0x7f)
            out[o++] = (char)*p;
        else if (*p == '\n' || *p == '\r' || *p == '\t')
            o += (size_t)snprintf(out + o, size - o, "\\%c",
                                  *p == '\n'   ? 'n'
                                  : *p == '\r' ? 'r'
                                               : 't');
        else
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", *p);
    }
    out[o] = '\0';
    return out;
}

/* One line on stderr ("prefix: message") and the same as a JSON event. */
__attribute__((format(printf, 3, 0))) static void say(const char *event, const char *prefix,
                                                      const char *fmt, va_list ap)
{
    char msg[1024], line[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (json_out != stderr)
        fprintf(stderr, "%s: %s\n", prefix, one_line(msg, line, sizeof line));
    cli_event(event, "message", 's', msg, NULL);
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("error", "sockit", fmt, ap);
    va_end(ap);
    return CLI_FAIL;
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("warning", "warning", fmt, ap);
    va_end(ap);
}

void cli_line(const char *fmt, ...)
{
    char msg[1024], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", one_line(msg, line, sizeof line));
}

int cli_fail_lib(void)
{
    int code = sockit_errcode();
    char line[4096];
    if (json_out != stderr)
        fprintf(stderr, "sockit: %s\n", one_line(sockit_errmsg(), line, sizeof line));
    cli_event("error", "code", 's', sockit_errname(code), "message", 's', sockit_errmsg(), NULL);
    return CLI_FAIL;
}

int cli_usage_error(const char *usage, const char *fmt, ...)
{
    char msg[1024], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sockit %s: %s\nusage: %s\n", cli_cmd, one_line(msg, line, sizeof line), usage);
    cli_event("error", "code", 's', "EUSAGE", "message", 's', msg, NULL);
    return CLI_USAGE;
}

/* True when text is a group of short options ("-xv") holding letter c. */
static bool option_group_with(const char *text, int c)
{
    return text[0] == '-' && text[1] != '-' && text[1] != '\0' && strchr(text + 1, c) != NULL;
}

int cli_unknown_option(const char *usage, int argc, char **argv, int port_min)
{
    /* getopt moves optind past an element after its last letter ("-1"), but leaves
     * it there while letters remain ("-10" after '1'). */
    const char *text = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    if (optopt != 0 && optind < argc && option_group_with(argv[optind], optopt) &&
        !option_group_with(text, optopt))
        text = argv[optind];
    bool negative =
        text[0] == '-' && text[1] != '\0' && strspn(text + 1, "0123456789") == strlen(text + 1);
    if (negative && port_min >= 0)
        return cli_usage_error(usage, "port '%s': out of range %d-65535", text, port_min);
    if (optopt != 0)
        return cli_usage_error(usage, "unknown option '-%c'", optopt);
    return cli_usage_error(usage, "unknown option '%s'", text);
}

int cli_parse_operands(const char *usage, int n, char **args, unsigned flags, hostport *out)
{
    char why[512];
    if (hostport_operands(n, args, flags, out, why, sizeof why) < 0)
        return cli_usage_error(usage, "%s", why);
    return 0;
}

int cli_parse_seconds(const char *usage, const char *option, const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v) || v < 0)
        return cli_usage_error(usage, "%s '%s': not a number of seconds >= 0", option, text);
    /* Beyond a century is "forever"; capping keeps every millisecond and nanosecond
     * conversion downstream far from int64 overflow. */
    *out = v > CLI_SECONDS_MAX ? CLI_SECONDS_MAX : v;
    return 0;
}

int cli_parse_count(const char *usage, const char *option, const char *text, long min, long max,
                    long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || v < min || v > max)
        return cli_usage_error(usage, "%s '%s': not a whole number %ld-%ld", option, text, min,
                               max);
    *out = v;
    return 0;
}

const char *cli_addr_text(const sockit_addr *a, char *buf, size_t size)
{
    /* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; people know them by
     * their IPv4 address, so that is what the tool shows. */
    if (sockit_addr_family(a) == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a->u.in6.sin6_addr)) {
        sockit_addr v4 = {.len = sizeof(struct sockaddr_in)};
        v4.u.in4.sin_family = AF_INET;
        v4.u.in4.sin_port = a->u.in6.sin6_port;
        memcpy(&v4.u.in4.sin_addr, &a->u.in6.sin6_addr.s6_addr[12], 4);
        if (sockit_addr_format(&v4, buf, size) > 0)
            return buf;
    }
    if (sockit_addr_family(a) == AF_UNIX && a->len <= offsetof(struct sockaddr_un, sun_path)) {
        snprintf(buf, size, "unix:(unnamed)");
        return buf;
    }
    if (sockit_addr_format(a, buf, size) < 0)
        snprintf(buf, size, "?");
    return buf;
}

const char *cli_peer_name(const sockit *s, const sockit_addr *a, char *buf, size_t size)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (sockit_addr_family(a) == AF_UNIX && a->len <= offsetof(struct sockaddr_un, sun_path) &&
        sockit_getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof cred &&
        cred.pid > 0) {
        snprintf(buf, size, "unix:(unnamed, pid %ld, uid %lu)", (long)cred.pid,
                 (unsigned long)cred.uid);
        return buf;
    }
    return cli_addr_text(a, buf, size);
}

long cli_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1;
    if (rl.rlim_cur < rl.rlim_max) {
        /* A server of many clients needs many descriptors; the hard limit is what the
         * administrator allows, the soft one a default meant for select(). */
        struct rlimit raised = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = rl.rlim_max;
    }
    rlim_t fds = rl.rlim_cur;
    if (fds == RLIM_INFINITY || fds > 1000000)
        fds = 1000000;
    return (long)fds;
}

void cli_server_started(sockit_server *srv, void (*on_stop)(int))
{
    sockit_addr bound;
    char text[SOCKIT_ADDRSTRLEN];
    sockit_server_address(srv, &bound);
    cli_addr_text(&bound, text, sizeof text);
    /* An event server says which loop backend serves it, and why not the default. */
    const char *backend = sockit_server_backend(srv);
    const char *fallback = sockit_server_backend_fallback(srv);
    if (cli_json_on() && backend != NULL && fallback != NULL)
        cli_event("bound", "address", 's', text, "port", 'i', (long long)sockit_addr_port(&bound),
                  "backend", 's', backend, "backend_fallback", 's', fallback, NULL);
    else if (cli_json_on() && backend != NULL)
        cli_event("bound", "address", 's', text, "port", 'i', (long long)sockit_addr_port(&bound),
                  "backend", 's', backend, NULL);
    else if (cli_json_on())
        cli_event("bound", "address", 's', text, "port", 'i', (long long)sockit_addr_port(&bound),
                  NULL);
    else
        printf("Listening on %s\n", text);
    fflush(stdout);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
