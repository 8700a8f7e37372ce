/* sockit bench: the final summary (text or one JSON object) and the live progress
 * line. */
#include "bench.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char *mode_name(bench_mode m)
{
    return m == BENCH_ECHO ? "echo" : m == BENCH_STREAM ? "stream" : "connect";
}

static double per_second(double v, double seconds) { return seconds > 0 ? v / seconds : 0; }

/* A duration given in nanoseconds, in the unit that keeps 3 significant digits. */
static const char *duration_text(double ns, char *buf, size_t size)
{
    if (ns < 1e6)
        snprintf(buf, size, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, size, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, size, "%.2f s", ns / 1e9);
    return buf;
}

static uint64_t error_total(const bench_stats *s)
{
    uint64_t n = 0;
    for (int k = 0; k < BENCH_ERR_KINDS; k++)
        n += s->errors[k];
    return n;
}

void bench_report_text(const bench_config *cfg, const bench_result *r)
{
    const bench_stats *s = &r->total;
    char rate[64] = "closed loop";
    if (cfg->rate > 0)
        snprintf(rate, sizeof rate, "%.0f requests/s offered", cfg->rate);
    printf("%s%s %s: %ld connection%s, %d thread%s, %zu-byte messages, pipeline %u, %s, %.2f s%s\n",
           cfg->udp ? "udp " : "", mode_name(cfg->mode), cfg->target_text, cfg->conns,
           cfg->conns == 1 ? "" : "s", cfg->threads, cfg->threads == 1 ? "" : "s",
           cfg->mode == BENCH_CONNECT ? cfg->message_len : cfg->msg_bytes, cfg->pipeline, rate,
           r->seconds, r->interrupted ? " (interrupted)" : "");
    printf("  requests    %llu (%.1f/s)\n", (unsigned long long)s->requests,
           per_second((double)s->requests, r->seconds));
    printf("  throughput  out %.2f MB/s, in %.2f MB/s\n",
           per_second((double)s->bytes_out, r->seconds) / 1e6,
           per_second((double)s->bytes_in, r->seconds) / 1e6);
    if (cfg->mode == BENCH_STREAM) {
        printf("  latency     none in stream mode\n");
    } else if (s->latency.count == 0) {
        printf("  latency     no request completed\n");
    } else {
        static const double pcts[] = {50, 90, 99, 99.9};
        static const char *const names[] = {"p50", "p90", "p99", "p99.9"};
        char buf[32];
        printf("  latency    ");
        for (int i = 0; i < 4; i++)
            printf(
                " %s %s,", names[i],
                duration_text((double)histogram_percentile(&s->latency, pcts[i]), buf, sizeof buf));
        printf(" max %s", duration_text((double)s->latency.max, buf, sizeof buf));
        printf(" (mean %s)\n", duration_text(histogram_mean(&s->latency), buf, sizeof buf));
    }
    uint64_t errors = error_total(s);
    if (errors == 0) {
        printf("  errors      none\n");
    } else {
        printf("  errors      %llu:", (unsigned long long)errors);
        const char *sep = " ";
        for (int k = 0; k < BENCH_ERR_KINDS; k++) {
            if (s->errors[k] == 0)
                continue;
            printf("%s%s %llu", sep, bench_error_names[k], (unsigned long long)s->errors[k]);
            if (s->first_reason[k][0] != '\0')
                printf(" (%s)", s->first_reason[k]);
            else if (s->first_errno[k] > 0)
                printf(" (%s)", strerror(s->first_errno[k]));
            sep = ", ";
        }
        printf("\n");
    }
    printf("  generator   CPU %.0f%% of one core (user %.2f s, sys %.2f s)\n",
           per_second((r->cpu_user_s + r->cpu_sys_s) * 100, r->seconds), r->cpu_user_s,
           r->cpu_sys_s);
    if (r->server_cpu_s >= 0)
        printf("  server      CPU %.2f s (%.0f%% of one core), %.2f us per request\n",
               r->server_cpu_s, per_second(r->server_cpu_s * 100, r->seconds),
               s->requests > 0 ? r->server_cpu_s * 1e6 / (double)s->requests : 0.0);
    fflush(stdout);
}

static void field_f(const char *key, double v) { printf(",\"%s\":%.6g", key, v); }
static void field_u(const char *key, uint64_t v)
{
    printf(",\"%s\":%llu", key, (unsigned long long)v);
}

void bench_report_json(const bench_config *cfg, const bench_result *r)
{
    const bench_stats *s = &r->total;
    printf(
        "{\"event\":\"result\",\"mode\":\"%s\",\"proto\":\"%s\",\"target\":", mode_name(cfg->mode),
        cfg->udp                           ? "udp"
        : cfg->target.ss_family == AF_UNIX ? "unix"
                                           : "tcp");
    cli_json_string(stdout, cfg->target_text);
    field_u("connections", (uint64_t)cfg->conns);
    field_u("threads", (uint64_t)cfg->threads);
    field_u("msg_bytes", cfg->mode == BENCH_CONNECT ? cfg->message_len : cfg->msg_bytes);
    field_u("pipeline", cfg->pipeline);
    field_f("rate", cfg->rate);
    field_f("duration_s", r->seconds);
    field_u("requests", s->requests);
    field_f("requests_per_s", per_second((double)s->requests, r->seconds));
    field_u("bytes_out", s->bytes_out);
    field_u("bytes_in", s->bytes_in);
    field_f("mb_per_s_out", per_second((double)s->bytes_out, r->seconds) / 1e6);
    field_f("mb_per_s_in", per_second((double)s->bytes_in, r->seconds) / 1e6);
    static const double pcts[] = {50, 90, 99, 99.9};
    static const char *const keys[] = {"latency_us_p50", "latency_us_p90", "latency_us_p99",
                                       "latency_us_p999"};
    bool have = cfg->mode != BENCH_STREAM && s->latency.count > 0;
    for (int i = 0; i < 4; i++)
        field_f(keys[i], have ? (double)histogram_percentile(&s->latency, pcts[i]) / 1e3 : 0);
    field_f("latency_us_max", have ? (double)s->latency.max / 1e3 : 0);
    field_f("latency_us_mean", have ? histogram_mean(&s->latency) / 1e3 : 0);
    field_u("errors", error_total(s));
    for (int k = 0; k < BENCH_ERR_KINDS; k++) {
        char key[32];
        snprintf(key, sizeof key, "errors_%s", bench_error_names[k]);
        field_u(key, s->errors[k]);
    }
    field_f("cpu_percent", per_second((r->cpu_user_s + r->cpu_sys_s) * 100, r->seconds));
    field_f("cpu_user_s", r->cpu_user_s);
    field_f("cpu_sys_s", r->cpu_sys_s);
    if (r->server_cpu_s >= 0) {
        field_f("server_cpu_s", r->server_cpu_s);
        field_f("server_cpu_us_per_request",
                s->requests > 0 ? r->server_cpu_s * 1e6 / (double)s->requests : 0.0);
    }
    printf(",\"interrupted\":%s}\n", r->interrupted ? "true" : "false");
    fflush(stdout);
}

void bench_report_progress(double elapsed, double window, uint64_t requests, uint64_t bytes,
                           uint64_t errors)
{
    /* \033[K clears what a longer previous line left behind. */
    fprintf(stderr, "\r  %.0f/%.0f s  %.0f requests/s  %.2f MB/s  errors %llu\033[K", elapsed,
            window, (double)requests, (double)bytes / 1e6, (unsigned long long)errors);
    fflush(stderr);
}

void bench_report_progress_clear(void)
{
    fputs("\r\033[K", stderr);
    fflush(stderr);
}
