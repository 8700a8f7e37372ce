/* The JSON of toxiproxy's API with jansson: the answers, proxies and toxics in
 * toxiproxy's shapes, and the fields of request bodies read with the type each
 * must have. jansson reads strictly (RFC 8259), tells where a body went wrong, and
 * keeps integers apart from reals, which toxiproxy's integer attributes need. */
#include "api_json.h"

#include <sockit.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- answers ---------------------------------------------------------------------- */

void api_answer_json(api_response *out, int status, json_t *v)
{
    out->status = status;
    out->content_type = "application/json";
    /* 15 significant digits (DBL_DIG): a probability given as 0.3 reads back as 0.3,
     * as toxiproxy writes it, not as the 17 digits of its binary value. */
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
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

void api_answer_error(api_response *out, int status, const char *message)
{
    api_answer_json(out, status, json_pack("{s:s, s:i}", "error", message, "status", status));
}

void api_answer_text(api_response *out, int status, const char *type, const char *text)
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

json_t *api_toxic_json(const sockit_toxic *t)
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

json_t *api_toxics_json(const sockit_proxy *p)
{
    json_t *list = json_array();
    const sockit_toxic *t;
    for (size_t i = 0; (t = sockit_proxy_toxic_at(p, i)) != NULL; i++)
        json_array_append_new(list, api_toxic_json(t));
    return list;
}

json_t *api_proxy_json(const registry_entry *e)
{
    /* toxiproxy's fields, and our "protocol" (toxiproxy's clients ignore it) */
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:o}", "name", e->name, "listen", e->listen,
                     "upstream", e->upstream, "protocol", registry_protocol_name(e->type),
                     "enabled", sockit_proxy_enabled(e->proxy), "toxics",
                     api_toxics_json(e->proxy));
}

/* ---- reading bodies -------------------------------------------------------------------- */

/* The body as a JSON value, or NULL with a 400 answered. */
json_t *api_read_body(const char *body, size_t len, api_response *out)
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
        api_answer_error(out, 400, msg);
    }
    return v;
}

static bool bad_field(api_response *out, const char *field, const char *want)
{
    char msg[200];
    snprintf(msg, sizeof msg, "bad request body: %s: not %s", field, want);
    api_answer_error(out, 400, msg);
    return false;
}

/* A string field: absent or null leaves *out; another type answers 400. */
bool api_get_string(json_t *o, const char *key, const char **out, api_response *res)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v))
        return bad_field(res, key, "a string");
    *out = json_string_value(v);
    return true;
}

bool api_get_bool(json_t *o, const char *key, bool *out, api_response *res)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return bad_field(res, key, "true or false");
    *out = json_is_true(v);
    return true;
}

bool api_get_number(json_t *o, const char *key, double *out, api_response *res)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_number(v))
        return bad_field(res, key, "a number");
    *out = json_number_value(v);
    return true;
}

bool api_get_protocol(json_t *o, int *type, api_response *res)
{
    const char *text = NULL;
    if (!api_get_string(o, "protocol", &text, res))
        return false;
    if (text == NULL)
        return true;
    int t = registry_protocol_parse(text);
    if (t < 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "bad request body: protocol '%.100s': tcp or udp", text);
        api_answer_error(res, 400, msg);
        return false;
    }
    *type = t;
    return true;
}

/* The attributes given, over those in *t. */
bool api_read_attributes(json_t *o, sockit_toxic *t, api_response *res)
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

bool api_object_body(json_t *v, api_response *res)
{
    if (json_is_object(v))
        return true;
    api_answer_error(res, 400, "bad request body: not a JSON object");
    return false;
}
