/* The routes of toxiproxy's API (its api.go is the reference for shapes and
 * statuses), with jansson for the JSON: it reads strictly (RFC 8259), tells where
 * a body went wrong, and keeps integers apart from reals, which toxiproxy's
 * integer attributes need. */
#include "api_routes.h"

#include <sockit.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- answers ---------------------------------------------------------------------- */

static void answer_json(api_response *out, int status, json_t *v)
{
    out->status = status;
    out->content_type = "application/json";
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (text == NULL) {
        out->status = 500;
        out->body = NULL;
        out->len = 0;
        return;
    }
    out->len = strlen(text);
    out->body = text;
}

static void answer_error(api_response *out, int status, const char *message)
{
    answer_json(out, status, json_pack("{s:s, s:i}", "error", message, "status", status));
}

static void answer_text(api_response *out, int status, const char *type, const char *text)
{
    out->status = status;
    out->content_type = type;
    out->body = text != NULL ? strdup(text) : NULL;
    out->len = out->body != NULL ? strlen(out->body) : 0;
}

/* ---- toxics as JSON ------------------------------------------------------------------- */

/* Each kind's attributes: name, where in sockit_toxic, and whether a real. */
typedef struct attr {
    const char *name;
    size_t offset;
    bool real;
} attr;

#define A(field)                                                                                   \
    {                                                                                              \
#field, offsetof(sockit_toxic, field), false                                               \
    }
#define AS(name, fld)                                                                              \
    {                                                                                              \
        name, offsetof(sockit_toxic, fld), false                                                   \
    }
#define AR(field)                                                                                  \
    {                                                                                              \
#field, offsetof(sockit_toxic, field), true                                                \
    }

static const attr *attrs_of(sockit_toxic_kind kind)
{
    static const attr latency[] = {A(latency), A(jitter), {NULL, 0, false}};
    static const attr bandwidth[] = {A(rate), {NULL, 0, false}};
    static const attr delay[] = {A(delay), {NULL, 0, false}};
    static const attr timeout[] = {A(timeout), {NULL, 0, false}};
    static const attr slicer[] = {A(average_size), A(size_variation), A(delay), {NULL, 0, false}};
    static const attr limit[] = {A(bytes), {NULL, 0, false}};
    static const attr loss[] = {AR(probability), A(burst), {NULL, 0, false}};
    static const attr duplicate[] = {AR(probability), {NULL, 0, false}};
    static const attr reorder[] = {AR(probability), A(gap), A(delay), {NULL, 0, false}};
    static const attr truncate[] = {AS("size", size), {NULL, 0, false}};
    switch (kind) {
    case SOCKIT_TOXIC_LATENCY:
        return latency;
    case SOCKIT_TOXIC_BANDWIDTH:
        return bandwidth;
    case SOCKIT_TOXIC_SLOW_CLOSE:
        return delay;
    case SOCKIT_TOXIC_TIMEOUT:
    case SOCKIT_TOXIC_RESET_PEER:
        return timeout;
    case SOCKIT_TOXIC_SLICER:
        return slicer;
    case SOCKIT_TOXIC_LIMIT_DATA:
        return limit;
    case SOCKIT_TOXIC_LOSS:
        return loss;
    case SOCKIT_TOXIC_DUPLICATE:
        return duplicate;
    case SOCKIT_TOXIC_REORDER:
        return reorder;
    case SOCKIT_TOXIC_TRUNCATE:
        return truncate;
    default:
        return NULL;
    }
}

static json_t *toxic_json(const sockit_toxic *t)
{
    json_t *a = json_object();
    const attr *list = attrs_of(t->kind);
    for (; list != NULL && list->name != NULL; list++) {
        const char *field = (const char *)t + list->offset;
        if (list->real)
            json_object_set_new(a, list->name, json_real(*(const double *)(const void *)field));
        else
            json_object_set_new(a, list->name,
                                json_integer(*(const long long *)(const void *)field));
    }
    return json_pack("{s:o, s:s, s:s, s:s, s:f}", "attributes", a, "name", t->name, "type",
                     sockit_toxic_kind_name(t->kind), "stream",
                     t->direction == SOCKIT_UPSTREAM ? "upstream" : "downstream", "toxicity",
                     t->toxicity);
}

static json_t *toxics_json(const sockit_proxy *p)
{
    json_t *list = json_array();
    const sockit_toxic *t;
    for (size_t i = 0; (t = sockit_proxy_toxic_at(p, i)) != NULL; i++)
        json_array_append_new(list, toxic_json(t));
    return list;
}

static json_t *proxy_json(const registry_entry *e)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:o}", "name", e->name, "listen", e->listen, "upstream",
                     e->upstream, "enabled", sockit_proxy_enabled(e->proxy), "toxics",
                     toxics_json(e->proxy));
}

/* ---- reading bodies -------------------------------------------------------------------- */

/* The body as a JSON value, or NULL with a 400 answered. */
static json_t *read_body(const char *body, size_t len, api_response *out)
{
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        char msg[300];
        if (len == 0)
            snprintf(msg, sizeof msg, "bad request body: EOF");
        else
            snprintf(msg, sizeof msg, "bad request body: %s (line %d, column %d)", jerr.text,
                     jerr.line, jerr.column);
        answer_error(out, 400, msg);
    }
    return v;
}

static bool bad_field(api_response *out, const char *field, const char *want)
{
    char msg[200];
    snprintf(msg, sizeof msg, "bad request body: %s: not %s", field, want);
    answer_error(out, 400, msg);
    return false;
}

/* A string field: absent or null leaves *out; another type answers 400. */
static bool get_string(json_t *o, const char *key, const char **out, api_response *res)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return bad_field(res, key, "a string");
    *out = json_string_value(v);
    return true;
}

static bool get_bool(json_t *o, const char *key, bool *out, api_response *res)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return bad_field(res, key, "true or false");
    *out = json_is_true(v);
    return true;
}

static bool get_number(json_t *o, const char *key, double *out, api_response *res)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_number(v))
        return bad_field(res, key, "a number");
    *out = json_number_value(v);
    return true;
}

/* The attributes given, over those in *t. */
static bool read_attributes(json_t *o, sockit_toxic *t, api_response *res)
{
    json_t *a = json_object_get(o, "attributes");
    if (a == NULL || json_is_null(a))
        return true;
    if (!json_is_object(a))
        return bad_field(res, "attributes", "an object");
    for (const attr *at = attrs_of(t->kind); at != NULL && at->name != NULL; at++) {
        json_t *v = json_object_get(a, at->name);
        if (v == NULL || json_is_null(v))
            continue;
        char *field = (char *)t + at->offset;
        if (at->real) {
            if (!json_is_number(v))
                return bad_field(res, at->name, "a number");
            *(double *)(void *)field = json_number_value(v);
        } else {
            if (!json_is_integer(v))
                return bad_field(res, at->name, "a whole number");
            *(long long *)(void *)field = json_integer_value(v);
        }
    }
    return true;
}

static bool object_body(json_t *v, api_response *res)
{
    if (json_is_object(v))
        return true;
    answer_error(res, 400, "bad request body: not a JSON object");
    return false;
}

/* ---- the routes ------------------------------------------------------------------------- */

static void proxy_index(registry *r, api_response *out)
{
    json_t *all = json_object();
    for (registry_entry *e = r->head; e != NULL; e = e->next)
        json_object_set_new(all, e->name, proxy_json(e));
    answer_json(out, 200, all);
}

static void proxy_create(registry *r, const char *body, size_t len, api_response *out)
{
    json_t *v = read_body(body, len, out);
    if (v == NULL)
        return;
    const char *name = NULL, *listen = "", *upstream = NULL;
    bool enabled = true;
    if (object_body(v, out) && get_string(v, "name", &name, out) &&
        get_string(v, "listen", &listen, out) && get_string(v, "upstream", &upstream, out) &&
        get_bool(v, "enabled", &enabled, out)) {
        registry_error err;
        registry_entry *e = registry_create(r, name, listen, upstream, enabled, &err);
        if (e == NULL)
            answer_error(out, err.status, err.message);
        else
            answer_json(out, 201, proxy_json(e));
    }
    json_decref(v);
}

static void proxy_update(registry *r, registry_entry *e, const char *body, size_t len,
                         api_response *out)
{
    json_t *v = read_body(body, len, out);
    if (v == NULL)
        return;
    char listen_now[REGISTRY_ADDR_MAX], upstream_now[REGISTRY_ADDR_MAX];
    snprintf(listen_now, sizeof listen_now, "%s", e->listen);
    snprintf(upstream_now, sizeof upstream_now, "%s", e->upstream);
    const char *listen = listen_now, *upstream = upstream_now;
    bool enabled = sockit_proxy_enabled(e->proxy);
    if (object_body(v, out) && get_string(v, "listen", &listen, out) &&
        get_string(v, "upstream", &upstream, out) && get_bool(v, "enabled", &enabled, out)) {
        registry_error err;
        if (registry_update(r, e, listen, upstream, enabled, &err) < 0)
            answer_error(out, err.status, err.message);
        else
            answer_json(out, 200, proxy_json(e));
    }
    json_decref(v);
}

static void toxic_create(registry_entry *e, const char *body, size_t len, api_response *out)
{
    json_t *v = read_body(body, len, out);
    if (v == NULL)
        return;
    const char *name = "", *type = "", *stream = "downstream";
    double toxicity = 1;
    if (!object_body(v, out) || !get_string(v, "name", &name, out) ||
        !get_string(v, "type", &type, out) || !get_string(v, "stream", &stream, out) ||
        !get_number(v, "toxicity", &toxicity, out))
        goto done;
    sockit_proxy_direction dir;
    if (strcasecmp(stream, "upstream") == 0) {
        dir = SOCKIT_UPSTREAM;
    } else if (strcasecmp(stream, "downstream") == 0) {
        dir = SOCKIT_DOWNSTREAM;
    } else {
        answer_error(out, 400, "stream was invalid, can be either upstream or downstream");
        goto done;
    }
    sockit_toxic t;
    if (sockit_toxic_init(&t, sockit_toxic_kind_parse(type), dir) < 0) {
        answer_error(out, 400, "invalid toxic type");
        goto done;
    }
    if (strlen(name) >= sizeof t.name) {
        answer_error(out, 400, "bad request body: name: too long");
        goto done;
    }
    if (name[0] != '\0')
        snprintf(t.name, sizeof t.name, "%s", name);
    else /* toxiproxy's default, <type>_<stream> */
        snprintf(t.name, sizeof t.name, "%s_%s", type,
                 dir == SOCKIT_UPSTREAM ? "upstream" : "downstream");
    t.toxicity = toxicity;
    if (!read_attributes(v, &t, out))
        goto done;
    int rc = sockit_proxy_add_toxic(e->proxy, &t);
    if (rc == -EEXIST)
        answer_error(out, 409, "toxic already exists");
    else if (rc < 0)
        answer_error(out, 400, sockit_errmsg());
    else
        answer_json(out, 200, toxic_json(sockit_proxy_toxic(e->proxy, t.name)));
done:
    json_decref(v);
}

static void toxic_update(registry_entry *e, const sockit_toxic *old, const char *body, size_t len,
                         api_response *out)
{
    json_t *v = read_body(body, len, out);
    if (v == NULL)
        return;
    sockit_toxic t = *old;
    char name[SOCKIT_TOXIC_NAME_MAX];
    snprintf(name, sizeof name, "%s", old->name);
    if (object_body(v, out) && get_number(v, "toxicity", &t.toxicity, out) &&
        read_attributes(v, &t, out)) {
        if (sockit_proxy_update_toxic(e->proxy, name, &t) < 0)
            answer_error(out, 400, sockit_errmsg());
        else
            answer_json(out, 200, toxic_json(sockit_proxy_toxic(e->proxy, name)));
    }
    json_decref(v);
}

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

static void metrics(registry *r, api_response *out)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        answer_error(out, 500, "out of memory");
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
        {"sockit_proxy_connections_total", "counter", "Connections accepted."},
        {"sockit_proxy_connections_open", "gauge", "Connections open now."},
        {"sockit_proxy_refused_total", "counter", "Clients whose upstream could not be reached."},
        {"sockit_proxy_enabled", "gauge", "1 while the proxy is up."},
    };
    for (int g = 0; g < 4; g++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", gauges[g][0], gauges[g][2], gauges[g][0],
                gauges[g][1]);
        for (registry_entry *e = r->head; e != NULL; e = e->next) {
            sockit_proxy_stats s;
            sockit_proxy_stats_get(e->proxy, &s);
            unsigned long long v = g == 0   ? s.connections
                                   : g == 1 ? s.open
                                   : g == 2 ? s.refused
                                            : (unsigned long long)sockit_proxy_enabled(e->proxy);
            fprintf(f, "%s{proxy=\"", gauges[g][0]);
            label(f, e->name);
            fprintf(f, "\"} %llu\n", v);
        }
    }
    fclose(f);
    out->status = 200;
    out->content_type = "text/plain; version=0.0.4";
    out->body = text;
    out->len = len;
}

static void populate(registry *r, const char *body, size_t len, api_response *out)
{
    json_t *v = read_body(body, len, out);
    if (v == NULL)
        return;
    registry_error err = {0};
    json_t *made = json_array();
    if (!json_is_array(v)) {
        answer_error(out, 400, "bad request body: not a JSON array of proxies");
        json_decref(made);
        json_decref(v);
        return;
    }
    /* Every entry is checked before any proxy is touched, as toxiproxy does. */
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        const char *name = NULL, *upstream = NULL, *listen = "";
        bool enabled = true;
        if (!object_body(item, out) || !get_string(item, "name", &name, out) ||
            !get_string(item, "upstream", &upstream, out) ||
            !get_string(item, "listen", &listen, out) || !get_bool(item, "enabled", &enabled, out))
            goto done;
        if (name == NULL || name[0] == '\0' || upstream == NULL || upstream[0] == '\0') {
            char msg[120];
            snprintf(msg, sizeof msg, "missing required field: %s at proxy %zu",
                     name == NULL || name[0] == '\0' ? "name" : "upstream", i + 1);
            answer_error(out, 400, msg);
            goto done;
        }
    }
    json_array_foreach(v, i, item)
    {
        const char *name = json_string_value(json_object_get(item, "name"));
        const char *upstream = json_string_value(json_object_get(item, "upstream"));
        const char *listen = "";
        bool enabled = true;
        get_string(item, "listen", &listen, out);
        get_bool(item, "enabled", &enabled, out);
        registry_entry *e = registry_find(r, name);
        if (e != NULL && !registry_differs(e, listen, upstream)) {
            json_array_append_new(made, proxy_json(e));
            continue;
        }
        if (e != NULL)
            registry_remove(r, e);
        e = registry_create(r, name, listen, upstream, enabled, &err);
        if (e == NULL)
            break;
        json_array_append_new(made, proxy_json(e));
    }
    if (err.status != 0)
        answer_json(out, err.status,
                    json_pack("{s:s, s:i, s:o}", "error", err.message, "status", err.status,
                              "proxies", made));
    else
        answer_json(out, 201, json_pack("{s:o}", "proxies", made));
    made = NULL;
done:
    json_decref(made);
    json_decref(v);
}

int api_populate_text(registry *r, const char *text, size_t len, registry_error *err)
{
    api_response res = {0};
    populate(r, text, len, &res);
    int rc = 0;
    if (res.status != 201) {
        err->status = res.status;
        snprintf(err->message, sizeof err->message, "%s", "bad config");
        json_t *v = res.body != NULL ? json_loadb(res.body, res.len, 0, NULL) : NULL;
        const char *msg = v != NULL ? json_string_value(json_object_get(v, "error")) : NULL;
        if (msg != NULL)
            snprintf(err->message, sizeof err->message, "%s", msg);
        json_decref(v);
        rc = -1;
    }
    free(res.body);
    return rc;
}

/* The path's segments after the first '/': at most 4 ("proxies", NAME, "toxics",
 * TOXIC). Returns the count, or -1 for more or an empty one. */
static int segments(const char *path, char seg[4][HTTP_TARGET_MAX])
{
    int n = 0;
    const char *p = path + 1;
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || n == 4)
            return -1;
        memcpy(seg[n], p, len);
        seg[n][len] = '\0';
        n++;
        p += len;
        if (*p == '/') {
            p++;
            if (*p == '\0')
                return -1; /* a trailing slash: gorilla/mux's 404 */
        }
    }
    return n;
}

void api_route(registry *r, const http_request *req, const char *body, size_t len,
               api_response *out)
{
    memset(out, 0, sizeof *out);
    if (req->from_browser) {
        answer_text(out, 403, "text/plain; charset=utf-8", "User agent not allowed\n");
        return;
    }
    static char seg[4][HTTP_TARGET_MAX];
    int n = segments(req->path, seg);
    const char *m = req->method;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    bool post = strcmp(m, "POST") == 0;
    bool update = post || strcmp(m, "PATCH") == 0;
    bool del = strcmp(m, "DELETE") == 0;
    if (n == 1 && strcmp(seg[0], "version") == 0) {
        if (!get)
            goto not_allowed;
        char v[96];
        snprintf(v, sizeof v, "{\"version\": \"sockit-%s\"}\n", sockit_version());
        answer_text(out, 200, "application/json;charset=utf-8", v);
        return;
    }
    if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        if (!get)
            goto not_allowed;
        metrics(r, out);
        return;
    }
    if (n == 1 && strcmp(seg[0], "reset") == 0) {
        if (!post)
            goto not_allowed;
        registry_error err;
        if (registry_reset(r, &err) < 0)
            answer_error(out, err.status, err.message);
        else
            answer_text(out, 204, NULL, NULL);
        return;
    }
    if (n == 1 && strcmp(seg[0], "populate") == 0) {
        if (!post)
            goto not_allowed;
        populate(r, body, len, out);
        return;
    }
    if (n < 1 || strcmp(seg[0], "proxies") != 0 || (n >= 3 && strcmp(seg[2], "toxics") != 0))
        goto not_found;
    if (n == 1) {
        if (get)
            proxy_index(r, out);
        else if (post)
            proxy_create(r, body, len, out);
        else
            goto not_allowed;
        return;
    }
    if (!get && !update && !del)
        goto not_allowed;
    if (n == 2 && !get && !update && !del)
        goto not_allowed;
    if (n == 3 && !get && !post)
        goto not_allowed;
    registry_entry *e = registry_find(r, seg[1]);
    if (e == NULL) {
        answer_error(out, 404, "proxy not found");
        return;
    }
    if (n == 2) {
        if (get) {
            answer_json(out, 200, proxy_json(e));
        } else if (update) {
            proxy_update(r, e, body, len, out);
        } else {
            registry_remove(r, e);
            answer_text(out, 204, NULL, NULL);
        }
        return;
    }
    if (n == 3) {
        if (get)
            answer_json(out, 200, toxics_json(e->proxy));
        else
            toxic_create(e, body, len, out);
        return;
    }
    const sockit_toxic *t = sockit_proxy_toxic(e->proxy, seg[3]);
    if (t == NULL) {
        answer_error(out, 404, "toxic not found");
        return;
    }
    if (get) {
        answer_json(out, 200, toxic_json(t));
    } else if (update) {
        toxic_update(e, t, body, len, out);
    } else {
        sockit_proxy_remove_toxic(e->proxy, seg[3]);
        answer_text(out, 204, NULL, NULL);
    }
    return;
not_found:
    answer_text(out, 404, "text/plain; charset=utf-8", "404 page not found\n");
    return;
not_allowed:
    answer_text(out, 405, "text/plain; charset=utf-8", "");
}
