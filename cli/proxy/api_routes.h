/* toxiproxy 2.x's HTTP API over the registry: each request's route, its JSON body
 * read with jansson, and the JSON answer with toxiproxy's shapes, statuses and
 * error messages ({"error": "proxy not found", "status": 404}). */
#ifndef SOCKIT_CLI_PROXY_API_ROUTES_H
#define SOCKIT_CLI_PROXY_API_ROUTES_H

#include "http.h"
#include "registry.h"

typedef struct api_response {
    int status;
    const char *content_type;
    char *body; /* malloc'd (or NULL for none); the caller frees it */
    size_t len;
} api_response;

void api_route(registry *r, const http_request *req, const char *body, size_t len,
               api_response *out);

/* Reads a toxiproxy config file's text (a JSON array of {name, listen, upstream,
 * enabled}) into the registry, as POST /populate does. 0, or -1 with err. */
int api_populate_text(registry *r, const char *text, size_t len, registry_error *err);

#endif
