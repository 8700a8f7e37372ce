/* -v text and --json events for the netcat pair. */
#include "netlog.h"

#include "tls_opts.h"

#include <stdarg.h>
#include <string.h>

static bool verbose;

void netlog_verbose(bool on) { verbose = on; }

void netlog_bound(const sockit_addr *addr, bool dualstack)
{
    char text[SOCKIT_ADDRSTRLEN];
    cli_addr_text(addr, text, sizeof text);
    if (cli_json_on()) {
        int port = sockit_addr_port(addr);
        if (port >= 0)
            cli_event("bound", "address", 's', text, "port", 'i', (long long)port, "dualstack", 'b',
                      (int)dualstack, NULL);
        else /* a Unix socket has no port */
            cli_event("bound", "address", 's', text, "port", 's', (const char *)NULL, NULL);
    } else if (verbose)
        fprintf(stderr, "listening on %s%s\n", text, dualstack ? " (IPv6 and IPv4)" : "");
}

void netlog_connected(const char *text, bool accepted, const sockit *s)
{
    tls_info tls;
    bool is_tls = s != NULL && tls_info_get(s, &tls);
    if (cli_json_on() && is_tls)
        cli_event("connected", "peer", 's', text, "accepted", 'b', (int)accepted, "tls_version",
                  's', tls.version, "tls_cipher", 's', tls.cipher, "tls_alpn", 's', tls.alpn,
                  "tls_peer", 's', tls.peer, NULL);
    else if (cli_json_on())
        cli_event("connected", "peer", 's', text, "accepted", 'b', (int)accepted, NULL);
    else if (verbose) {
        fprintf(stderr, "%s %s\n", accepted ? "connection from" : "connected to", text);
        char line[1024];
        if (is_tls)
            fprintf(stderr, "tls: %s\n", tls_info_line(&tls, line, sizeof line));
    }
}

static const char *reason_text(const char *reason)
{
    static const char *const table[][2] = {
        {"peer", "closed by peer"},          {"reset", "connection reset by peer"},
        {"idle", "idle timeout, closed"},    {"linger", "-q expired, closed"},
        {"stdout", "stdout closed, closed"}, {"signal", "interrupted, closed"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(reason, table[i][0]) == 0)
            return table[i][1];
    return "closed";
}

void netlog_closed(const char *text, const char *reason)
{
    if (cli_json_on())
        cli_event("closed", "peer", 's', text, "reason", 's', reason, NULL);
    else if (verbose)
        fprintf(stderr, "%s %s\n", reason_text(reason), text);
}

void netlog_dropped(const char *text, long long queued, long long limit)
{
    if (cli_json_on())
        cli_event("closed", "peer", 's', text, "reason", 's', "queue_full", "queued", 'i', queued,
                  "limit", 'i', limit, NULL);
    else
        fprintf(stderr,
                "sockit: disconnected %s: its output queue is full (%lld bytes waiting, limit "
                "%lld): it does not read fast enough\n",
                text, queued, limit);
}

void netlog_denied(const char *text, const char *reason, const char *detail, bool datagram)
{
    if (cli_json_on()) {
        cli_event("denied", "peer", 's', text, "reason", 's', reason, "rule", 's',
                  detail[0] != '\0' ? detail : NULL, "datagram", 'b', (int)datagram, NULL);
        return;
    }
    if (!verbose)
        return;
    const char *what = datagram ? "dropped datagrams from" : "refused";
    if (strcmp(reason, "deny") == 0)
        fprintf(stderr, "%s %s: matches --deny %s\n", what, text, detail);
    else if (strcmp(reason, "rate") == 0)
        fprintf(stderr, "%s %s: over --conn-rate %s\n", what, text, detail);
    else
        fprintf(stderr, "%s %s: not in --allow\n", what, text);
}

void netlog_full(const char *text, long max, long long dropped)
{
    if (cli_json_on())
        cli_event("denied", "peer", 's', text, "reason", 's', "full", "rule", 's',
                  (const char *)NULL, "datagram", 'b', 1, "max_sessions", 'i', (long long)max,
                  "dropped", 'i', dropped, NULL);
    else if (verbose)
        fprintf(stderr,
                "dropped datagram from %s: all %ld sessions in use (-m), %lld dropped so far\n",
                text, max, dropped);
}

void netlog_exec(const char *text, const char *command, long pid)
{
    if (cli_json_on())
        cli_event("exec", "peer", 's', text, "pid", 'i', (long long)pid, "command", 's', command,
                  NULL);
    else if (verbose)
        cli_line("running '%s' (pid %ld) for %s", command, pid, text);
}

void netlog_exec_exit(const char *text, long pid, int status)
{
    if (cli_json_on())
        cli_event("exec_exit", "peer", 's', text, "pid", 'i', (long long)pid, "status", 'i',
                  (long long)status, NULL);
    else if (verbose)
        fprintf(stderr, "pid %ld for %s exited with status %d\n", pid, text, status);
}

void netlog_warn(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cli_json_on())
        cli_event("error", "code", 's', sockit_errname(sockit_errcode()), "message", 's', msg,
                  NULL);
    else
        cli_line("sockit: %s", msg);
}

void netlog_exit(const char *reason, long long bytes_in, long long bytes_out, long long undelivered)
{
    if (undelivered >= 0)
        cli_event("exit", "reason", 's', reason, "bytes_in", 'i', bytes_in, "bytes_out", 'i',
                  bytes_out, "undelivered", 'i', undelivered, NULL);
    else
        cli_event("exit", "reason", 's', reason, "bytes_in", 'i', bytes_in, "bytes_out", 'i',
                  bytes_out, NULL);
}
