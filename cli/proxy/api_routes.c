/* The routes of toxiproxy's API (its api.go is the reference for shapes and
 * statuses): each request's path and method to the registry's operation, and
 * POST /populate, which the config file reuses. */
#include "api_routes.h"

#include "api_json.h"

#include <sockit.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the routes ------------------------------------------------------------------------- */

static void proxy_index(registry *r, api_response *out)
{
    json_t *all = json_object();
    for (registry_entry *e = r->head; e != NULL; e = e->next)
        json_object_set_new(all, e->name, api_proxy_json(e));
    api_answer_json(out, 200, all);
}

static void proxy_create(registry *r, const char *body, size_t len, api_response *out)
{
    json_t *v = api_read_body(body, len, out);
    if (v == NULL)
        return;
    const char *name = NULL, *listen = "", *upstream = NULL;
    bool enabled = true;
    int type = SOCK_STREAM;
    if (api_object_body(v, out) && api_get_string(v, "name", &name, out) &&
        api_get_string(v, "listen", &listen, out) &&
        api_get_string(v, "upstream", &upstream, out) &&
        api_get_bool(v, "enabled", &enabled, out) && api_get_protocol(v, &type, out)) {
        registry_error err;
        registry_entry *e = registry_create(r, name, listen, upstream, type, enabled, &err);
        if (e == NULL)
            api_answer_error(out, err.status, err.message);
        else
            api_answer_json(out, 201, api_proxy_json(e));
    }
    json_decref(v);
}

static void proxy_update(registry *r, registry_entry *e, const char *body, size_t len,
                         api_response *out)
{
    json_t *v = api_read_body(body, len, out);
    if (v == NULL)
        return;
    char listen_now[REGISTRY_ADDR_MAX], upstream_now[REGISTRY_ADDR_MAX];
    snprintf(listen_now, sizeof listen_now, "%s", e->listen);
    snprintf(upstream_now, sizeof upstream_now, "%s", e->upstream);
    const char *listen = listen_now, *upstream = upstream_now;
    bool enabled = sockit_proxy_enabled(e->proxy);
    int type = e->type;
    if (api_object_body(v, out) && api_get_string(v, "listen", &listen, out) &&
        api_get_string(v, "upstream", &upstream, out) &&
        api_get_bool(v, "enabled", &enabled, out) && api_get_protocol(v, &type, out)) {
        registry_error err;
        if (type != e->type) {
            /* Its toxics are for its protocol: another protocol is another proxy. */
            char msg[160];
            snprintf(msg, sizeof msg,
                     "bad request body: protocol '%s': the proxy is %s (delete it and make "
                     "it again to change)",
                     registry_protocol_name(type), registry_protocol_name(e->type));
            api_answer_error(out, 400, msg);
        } else if (registry_update(r, e, listen, upstream, enabled, &err) < 0) {
            api_answer_error(out, err.status, err.message);
        } else {
            api_answer_json(out, 200, api_proxy_json(e));
        }
    }
    json_decref(v);
}

static void toxic_create(registry_entry *e, const char *body, size_t len, api_response *out)
{
    json_t *v = api_read_body(body, len, out);
    if (v == NULL)
        return;
    const char *name = "", *type = "", *stream = "downstream";
    double toxicity = 1;
    if (!api_object_body(v, out) || !api_get_string(v, "name", &name, out) ||
        !api_get_string(v, "type", &type, out) || !api_get_string(v, "stream", &stream, out) ||
        !api_get_number(v, "toxicity", &toxicity, out))
        goto done;
    sockit_proxy_direction dir;
    if (strcasecmp(stream, "upstream") == 0) {
        dir = SOCKIT_UPSTREAM;
    } else if (strcasecmp(stream, "downstream") == 0) {
        dir = SOCKIT_DOWNSTREAM;
    } else {
        api_answer_error(out, 400, "stream was invalid, can be either upstream or downstream");
        goto done;
    }
    sockit_toxic t;
    if (sockit_toxic_init(&t, sockit_toxic_kind_parse(type), dir) < 0) {
        api_answer_error(out, 400, "invalid toxic type");
        goto done;
    }
    if (strlen(name) >= sizeof t.name) {
        api_answer_error(out, 400, "bad request body: name: too long");
        goto done;
    }
    if (name[0] != '\0')
        snprintf(t.name, sizeof t.name, "%s", name);
    else /* toxiproxy's default, <type>_<stream> */
        snprintf(t.name, sizeof t.name, "%s_%s", type,
                 dir == SOCKIT_UPSTREAM ? "upstream" : "downstream");
    t.toxicity = toxicity;
    if (!api_read_attributes(v, &t, out))
        goto done;
    int rc = sockit_proxy_add_toxic(e->proxy, &t);
    if (rc == -EEXIST)
        api_answer_error(out, 409, "toxic already exists");
    else if (rc < 0)
        api_answer_error(out, 400, sockit_errmsg());
    else
        api_answer_json(out, 200, api_toxic_json(sockit_proxy_toxic(e->proxy, t.name)));
done:
    json_decref(v);
}

static void toxic_update(registry_entry *e, const sockit_toxic *old, const char *body, size_t len,
                         api_response *out)
{
    json_t *v = api_read_body(body, len, out);
    if (v == NULL)
        return;
    sockit_toxic t = *old;
    char name[SOCKIT_TOXIC_NAME_MAX];
    snprintf(name, sizeof name, "%s", old->name);
    if (api_object_body(v, out) && api_get_number(v, "toxicity", &t.toxicity, out) &&
        api_read_attributes(v, &t, out)) {
        if (sockit_proxy_update_toxic(e->proxy, name, &t) < 0)
            api_answer_error(out, 400, sockit_errmsg());
        else
            api_answer_json(out, 200, api_toxic_json(sockit_proxy_toxic(e->proxy, name)));
    }
    json_decref(v);
}

static void populate(registry *r, const char *body, size_t len, api_response *out)
{
    json_t *v = api_read_body(body, len, out);
    if (v == NULL)
        return;
    registry_error err = {0};
    json_t *made = json_array();
    if (!json_is_array(v)) {
        api_answer_error(out, 400, "bad request body: not a JSON array of proxies");
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
        int type = SOCK_STREAM;
        if (!api_object_body(item, out) || !api_get_string(item, "name", &name, out) ||
            !api_get_string(item, "upstream", &upstream, out) ||
            !api_get_string(item, "listen", &listen, out) ||
            !api_get_bool(item, "enabled", &enabled, out) || !api_get_protocol(item, &type, out))
            goto done;
        if (name == NULL || name[0] == '\0' || upstream == NULL || upstream[0] == '\0') {
            char msg[120];
            snprintf(msg, sizeof msg, "missing required field: %s at proxy %zu",
                     name == NULL || name[0] == '\0' ? "name" : "upstream", i + 1);
            api_answer_error(out, 400, msg);
            goto done;
        }
    }
    json_array_foreach(v, i, item)
    {
        const char *name = json_string_value(json_object_get(item, "name"));
        const char *upstream = json_string_value(json_object_get(item, "upstream"));
        const char *listen = "";
        bool enabled = true;
        int type = SOCK_STREAM;
        api_get_string(item, "listen", &listen, out);
        api_get_bool(item, "enabled", &enabled, out);
        api_get_protocol(item, &type, out);
        registry_entry *e = registry_find(r, name);
        if (e != NULL && !registry_differs(e, listen, upstream, type)) {
            json_array_append_new(made, api_proxy_json(e));
            continue;
        }
        if (e != NULL)
            registry_remove(r, e);
        e = registry_create(r, name, listen, upstream, type, enabled, &err);
        if (e == NULL)
            break;
        json_array_append_new(made, api_proxy_json(e));
    }
    if (err.status != 0)
        api_answer_json(out, err.status,
                        json_pack("{s:s, s:i, s:o}", "error", err.message, "status", err.status,
                                  "proxies", made));
    else
        api_answer_json(out, 201, json_pack("{s:o}", "proxies", made));
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
        api_answer_text(out, 403, "text/plain; charset=utf-8", "User agent not allowed\n");
        return;
    }
    char seg[4][HTTP_TARGET_MAX];
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
        api_answer_text(out, 200, "application/json;charset=utf-8", v);
        return;
    }
    if (n == 1 && strcmp(seg[0], "metrics") == 0) {
        if (!get)
            goto not_allowed;
        api_metrics(r, out);
        return;
    }
    if (n == 1 && strcmp(seg[0], "reset") == 0) {
        if (!post)
            goto not_allowed;
        registry_error err;
        if (registry_reset(r, &err) < 0)
            api_answer_error(out, err.status, err.message);
        else
            api_answer_text(out, 204, NULL, NULL);
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
        api_answer_error(out, 404, "proxy not found");
        return;
    }
    if (n == 2) {
        if (get) {
            api_answer_json(out, 200, api_proxy_json(e));
        } else if (update) {
            proxy_update(r, e, body, len, out);
        } else {
            registry_remove(r, e);
            api_answer_text(out, 204, NULL, NULL);
        }
        return;
    }
    if (n == 3) {
        if (get)
            api_answer_json(out, 200, api_toxics_json(e->proxy));
        else
            toxic_create(e, body, len, out);
        return;
    }
    const sockit_toxic *t = sockit_proxy_toxic(e->proxy, seg[3]);
    if (t == NULL) {
        api_answer_error(out, 404, "toxic not found");
        return;
    }
    if (get) {
        api_answer_json(out, 200, api_toxic_json(t));
    } else if (update) {
        toxic_update(e, t, body, len, out);
    } else {
        sockit_proxy_remove_toxic(e->proxy, seg[3]);
        api_answer_text(out, 204, NULL, NULL);
    }
    return;
not_found:
    api_answer_text(out, 404, "text/plain; charset=utf-8", "404 page not found\n");
    return;
not_allowed:
    api_answer_text(out, 405, "text/plain; charset=utf-8", "");
}
