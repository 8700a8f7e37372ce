/* GET /metrics: toxiproxy's byte counters and sockit's connection and datagram
 * counters per proxy, in Prometheus's text format (version 0.0.4). */
#include "api_json.h"

#include <stdio.h>

/* A label value as Prometheus's text format wants it, with backslash, quote and
 * newline escaped: names and addresses come from clients' JSON. */
static void label(FILE *f, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

void api_metrics(registry *r, api_response *out)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        api_answer_error(out, 500, "out of memory");
        return;
    }
    static const char *const families[][2] = {
        {"toxiproxy_proxy_received_bytes_total", "Bytes the proxy read from each side."},
        {"toxiproxy_proxy_sent_bytes_total", "Bytes the proxy wrote to each side."},
    };
    for (int fam = 0; fam < 2; fam++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", families[fam][0], families[fam][1],
                families[fam][0]);
        for (registry_entry *e = r->head; e != NULL; e = e->next) {
            sockit_proxy_stats s;
            sockit_proxy_stats_get(e->proxy, &s);
            /* Relayed bytes were both read and written: the two agree but for what a
             * toxic dropped or still holds. */
            for (int d = 0; d < 2; d++) {
                fprintf(f, "%s{direction=\"%s\",listener=\"", families[fam][0],
                        d == 0 ? "upstream" : "downstream");
                label(f, e->listen);
                fputs("\",proxy=\"", f);
                label(f, e->name);
                fputs("\",upstream=\"", f);
                label(f, e->upstream);
                fprintf(f, "\"} %llu\n", d == 0 ? s.bytes_up : s.bytes_down);
            }
        }
    }
    static const char *const gauges[][3] = {
        {"sockit_proxy_connections_total", "counter",
         "Connections accepted (UDP: client entries made)."},
        {"sockit_proxy_connections_open", "gauge", "Connections open now (UDP: client entries)."},
        {"sockit_proxy_refused_total", "counter", "Clients whose upstream could not be reached."},
        {"sockit_proxy_enabled", "gauge", "1 while the proxy is up."},
        {"sockit_proxy_datagrams_dropped_total", "counter",
         "Datagrams a toxic or a full client table dropped (UDP)."},
    };
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", gauges[g][0], gauges[g][2], gauges[g][0],
                gauges[g][1]);
        for (registry_entry *e = r->head; e != NULL; e = e->next) {
            sockit_proxy_stats s;
            sockit_proxy_stats_get(e->proxy, &s);
            unsigned long long v = g == 0   ? s.connections
                                   : g == 1 ? s.open
                                   : g == 2 ? s.refused
                                   : g == 3 ? (unsigned long long)sockit_proxy_enabled(e->proxy)
                                            : s.dropped;
            fprintf(f, "%s{proxy=\"", gauges[g][0]);
            label(f, e->name);
            fprintf(f, "\"} %llu\n", v);
        }
    }
    /* Datagrams each way: a TCP proxy's stay 0. */
    static const char datagrams[] = "sockit_proxy_datagrams_total";
    fprintf(f, "# HELP %s Datagrams relayed each way (UDP).\n# TYPE %s counter\n", datagrams,
            datagrams);
    for (registry_entry *e = r->head; e != NULL; e = e->next) {
        sockit_proxy_stats s;
        sockit_proxy_stats_get(e->proxy, &s);
        for (int d = 0; d < 2; d++) {
            fprintf(f, "%s{direction=\"%s\",proxy=\"", datagrams,
                    d == 0 ? "upstream" : "downstream");
            label(f, e->name);
            fprintf(f, "\"} %llu\n", d == 0 ? s.datagrams_up : s.datagrams_down);
        }
    }
    fclose(f);
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4";
    out->body = text;
    out->len = len;
}
