/* The listener's admission check (gate.h). */
#include "gate.h"

#include "netlog.h"

#include <stdio.h>
#include <string.h>

bool gate_on(const gate *g) { return access_any(&g->rules) || g->rate != NULL; }

/* Why the rules refused peer, for -v: "matches --deny 10.0.0.0/8". */
static const char *rule_reason(int verdict, const access_rule *rule, char *buf, size_t size)
{
    char text[ACCESS_RULE_TEXT_MAX];
    if (verdict == ACCESS_DENIED && rule != NULL)
        snprintf(buf, size, "%s", access_rule_text(rule, text, sizeof text));
    else
        buf[0] = '\0';
    return verdict == ACCESS_DENIED ? "deny" : "not_allowed";
}

bool gate_admit(gate *g, const sockit_addr *peer, double now)
{
    char name[CLI_PEER_NAME_MAX], detail[64];
    const access_rule *rule;
    int verdict = access_check(&g->rules, peer, &rule);
    if (verdict != ACCESS_OK) {
        const char *why = rule_reason(verdict, rule, detail, sizeof detail);
        netlog_denied(cli_addr_text(peer, name, sizeof name), why, detail, false);
        return false;
    }
    access_ip ip;
    if (g->rate != NULL && access_ip_of(peer, &ip) && !ratelimit_take(g->rate, &ip, now)) {
        snprintf(detail, sizeof detail, "%ld/%g", g->rate_n, g->rate_secs);
        netlog_denied(cli_addr_text(peer, name, sizeof name), "rate", detail, false);
        return false;
    }
    return true;
}

bool gate_admit_datagram(gate *g, const sockit_addr *peer)
{
    const access_rule *rule;
    int verdict = access_check(&g->rules, peer, &rule);
    access_ip ip;
    bool is_ip = access_ip_of(peer, &ip);
    if (verdict == ACCESS_OK) {
        g->quiet_set = false;
        return true;
    }
    /* A denied sender that keeps sending is said once, not once a datagram. */
    if (!(g->quiet_set && is_ip && ip.family == g->quiet.family &&
          memcmp(ip.b, g->quiet.b, sizeof ip.b) == 0)) {
        char name[CLI_PEER_NAME_MAX], detail[64];
        const char *why = rule_reason(verdict, rule, detail, sizeof detail);
        netlog_denied(cli_addr_text(peer, name, sizeof name), why, detail, true);
        g->quiet = ip;
        g->quiet_set = is_ip;
    }
    return false;
}

void gate_refuse(sockit *conn)
{
    sockit_set_linger(conn, true, 0);
    sockit_close(conn);
}

void gate_free(gate *g)
{
    access_free(&g->rules);
    ratelimit_free(g->rate);
    g->rate = NULL;
}
