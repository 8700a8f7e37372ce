/* The JSON side of toxiproxy's API (api_json.c) and its /metrics (api_metrics.c),
 * for the routes (api_routes.c). */
#ifndef SOCKIT_CLI_PROXY_API_JSON_H
#define SOCKIT_CLI_PROXY_API_JSON_H

#include "api_routes.h"

#include <jansson.h>

/* Answers: v (its reference taken) as compact JSON; {"error": message, "status":
 * status}; a text of the given content type (NULL text: no body). */
void api_answer_json(api_response *out, int status, json_t *v);
void api_answer_error(api_response *out, int status, const char *message);
void api_answer_text(api_response *out, int status, const char *type, const char *text);

/* A toxic, a proxy's toxics, a proxy with its toxics, in toxiproxy's shapes. */
json_t *api_toxic_json(const sockit_toxic *t);
json_t *api_toxics_json(const sockit_proxy *p);
json_t *api_proxy_json(const registry_entry *e);

/* The body as a JSON value, or NULL with a 400 answered. */
json_t *api_read_body(const char *body, size_t len, api_response *out);
/* Whether v is an object; if not, a 400 is answered. */
bool api_object_body(json_t *v, api_response *res);
/* A field of object o: absent or null leaves *out; another type than asked answers
 * a 400 naming the field and returns false. */
bool api_get_string(json_t *o, const char *key, const char **out, api_response *res);
bool api_get_bool(json_t *o, const char *key, bool *out, api_response *res);
bool api_get_number(json_t *o, const char *key, double *out, api_response *res);
/* Our "protocol" field: absent or null leaves *type; "tcp" is SOCK_STREAM, "udp"
 * SOCK_DGRAM; anything else answers a 400 and returns false. */
bool api_get_protocol(json_t *o, int *type, api_response *res);
/* The "attributes" given for t's kind, over those in *t (integers where toxiproxy's
 * are). */
bool api_read_attributes(json_t *o, sockit_toxic *t, api_response *res);

/* GET /metrics. */
void api_metrics(registry *r, api_response *out);

#endif
