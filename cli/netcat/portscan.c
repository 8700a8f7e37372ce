/* connect -z (portscan.h). Sequential on purpose, as nc: the ports of one host
 * are checked in order, so the report reads in order and a busy host sees one
 * connection at a time; a refused port costs one round trip. */
#include "portscan.h"

#include "source.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int portscan_split(const char *arg, char *out, size_t size, int *last, char *why, size_t why_size)
{
    size_t len = strlen(arg);
    if (len >= size) {
        snprintf(why, why_size, "'%.20s...': too long", arg);
        return -1;
    }
    memcpy(out, arg, len + 1);
    char *dash = strrchr(out, '-');
    if (dash == NULL || dash[1] == '\0' || strspn(dash + 1, "0123456789") != strlen(dash + 1))
        return 0;
    /* FIRST: digits right before the dash, at the start or after HOST's colon. */
    const char *first = dash;
    while (first > out && isdigit((unsigned char)first[-1]))
        first--;
    if (first == dash || (first > out && first[-1] != ':'))
        return 0;
    long v = strlen(dash + 1) > 5 ? 65536 : strtol(dash + 1, NULL, 10);
    if (v < 1 || v > 65535) {
        snprintf(why, why_size, "port range '%s': last port %s out of range 1-65535", first,
                 dash + 1);
        return -1;
    }
    *dash = '\0';
    *last = (int)v;
    return 1;
}

/* The state of a port whose connect failed with code. */
static const char *state_of(int code)
{
    if (code == -ECONNREFUSED)
        return "closed";
    if (code == SOCKIT_ETIMEOUT)
        return "timeout";
    return "error";
}

static void report(const netopts *o, int port, const char *state, const char *peer)
{
    if (cli_json_on()) {
        cli_event("port", "host", 's', o->host, "port", 'i', (long long)port, "state", 's', state,
                  "peer", 's', peer, "message", 's', peer == NULL ? sockit_errmsg() : NULL, NULL);
        return;
    }
    if (!o->verbose)
        return;
    if (peer != NULL)
        fprintf(stderr, "%s port %d open (connected to %s)\n", o->host, port, peer);
    else if (strcmp(state, "timeout") == 0)
        fprintf(stderr, "%s port %d: no answer within %g s\n", o->host, port, o->wait);
    else
        fprintf(stderr, "%s port %d %s (%s)\n", o->host, port,
                strcmp(state, "closed") == 0 ? "closed" : "failed",
                sockit_strerror(sockit_errcode()));
}

static int finish(const netopts *o, int open, int tried)
{
    if (!cli_json_on() && o->verbose)
        fprintf(stderr, "%d of %d port%s open\n", open, tried, tried == 1 ? "" : "s");
    cli_event("exit", "reason", 's', open > 0 ? "open" : "none_open", "open", 'i', (long long)open,
              "ports", 'i', (long long)tried, NULL);
    return open > 0 ? CLI_OK : CLI_FAIL;
}

int portscan_run(const netopts *o)
{
    if (source_check(o) != 0) {
        cli_event("exit", "reason", 's', "error", "open", 'i', 0LL, "ports", 'i', 0LL, NULL);
        return CLI_FAIL;
    }
    int open = 0, tried = 0;
    for (int port = o->port; port <= o->scan_last; port++) {
        bool local;
        sockit *c = source_connect(o, NULL, port, o->wait, &local);
        if (c == NULL && local) {
            /* The same for every port: said once, and the scan ends. */
            int status = source_fail(o);
            cli_event("exit", "reason", 's', "error", "open", 'i', (long long)open, "ports", 'i',
                      (long long)tried, NULL);
            return status;
        }
        tried++;
        if (c == NULL) {
            report(o, port, state_of(sockit_errcode()), NULL);
            continue;
        }
        open++;
        sockit_addr peer;
        char name[CLI_PEER_NAME_MAX] = "?";
        if (sockit_getpeername(c, &peer) == 0)
            cli_addr_text(&peer, name, sizeof name);
        sockit_close(c);
        report(o, port, "open", name);
    }
    return finish(o, open, tried);
}
