/* libFuzzer target for the proxy API's request path (cli/proxy): the bytes are a
 * request, parsed by http_parse_head and, when whole, answered by api_route over a
 * registry of real proxies on a loop. Beyond "did not crash" it checks that a
 * refusal is one of the statuses http.h documents, that an accepted head lies in
 * the input and names a path, and that every answer is a status the API gives with
 * a body that is JSON when it says so. Addresses in bodies are kept to loopback
 * (fuzz_loopback.h). tests/test_fuzz_http_corpus.c includes this
 * file and replays fuzz/corpus/http/ in every test run. */
#include "api_routes.h"
#include "fuzz_loopback.h"
#include "http.h"
#include "registry.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sockit_fuzz_http_check(const char *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool documented_refusal(int status)
{
    static const int known[] = {400, 405, 411, 413, 414, 431, 505};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (status == known[i])
            return true;
    return false;
}

static bool api_status(int status)
{
    static const int known[] = {200, 201, 204, 400, 403, 404, 405, 409, 500};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (status == known[i])
            return true;
    return false;
}

static const char *answer_check(registry *reg, const http_request *req, const char *body,
                                size_t len)
{
    api_response res;
    api_route(reg, req, body, len, &res);
    const char *why = NULL;
    if (!api_status(res.status))
        why = "api_route answered a status the API does not give";
    else if (res.status == 204 && res.len != 0)
        why = "a 204 answer has a body";
    else if (res.content_type != NULL && strcmp(res.content_type, "application/json") == 0) {
        json_t *v = json_loadb(res.body, res.len, JSON_DECODE_ANY, NULL);
        if (v == NULL)
            why = "an application/json answer is not JSON";
        json_decref(v);
    }
    free(res.body);
    return why;
}

const char *sockit_fuzz_http_check(const char *data, size_t size)
{
    http_request req;
    char why[256];
    int head = http_parse_head(data, size, &req, why, sizeof why);
    if (head < 0) {
        if (!documented_refusal(-head))
            return "http_parse_head refused with a status http.h does not document";
        if (why[0] == '\0')
            return "a refusal without a reason";
        return NULL;
    }
    if (head == 0)
        return size >= HTTP_HEAD_MAX ? "an incomplete head past HTTP_HEAD_MAX" : NULL;
    if ((size_t)head > size)
        return "the head is longer than the input";
    if (req.path[0] != '/')
        return "an accepted target is not a path";
    if (req.content_length < 0 || req.content_length > HTTP_BODY_MAX)
        return "a Content-Length outside 0-HTTP_BODY_MAX was accepted";
    if ((size_t)head + (size_t)req.content_length > size)
        return NULL; /* the body has not all come */
    sockit_loop *loop = sockit_loop_new(NULL);
    if (loop == NULL)
        return NULL;
    registry reg = {.loop = loop, .connect_timeout = 1, .seed = 1};
    registry_error err;
    /* A TCP proxy and a UDP one, each with a toxic, for the routes that need them. */
    registry_entry *e =
        registry_create(&reg, "p", "127.0.0.1:0", "127.0.0.1:9", SOCK_STREAM, true, &err);
    if (e != NULL) {
        sockit_toxic t;
        sockit_toxic_init(&t, SOCKIT_TOXIC_LATENCY, SOCKIT_DOWNSTREAM);
        sockit_proxy_add_toxic(e->proxy, &t);
    }
    e = registry_create(&reg, "u", "127.0.0.1:0", "127.0.0.1:9", SOCK_DGRAM, true, &err);
    if (e != NULL) {
        sockit_toxic t;
        sockit_toxic_init(&t, SOCKIT_TOXIC_LOSS, SOCKIT_UPSTREAM);
        sockit_proxy_add_toxic(e->proxy, &t);
    }
    size_t blen = (size_t)req.content_length;
    char *kept = fuzz_loopback_json(data + head, blen, &blen);
    const char *bad = answer_check(&reg, &req, kept != NULL ? kept : data + head, blen);
    free(kept);
    registry_close_all(&reg);
    for (int i = 0; i < 100 && sockit_loop_close(loop) != 0; i++)
        sockit_loop_run_once(loop, 0.001);
    return bad;
}

#ifndef SOCKIT_FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = sockit_fuzz_http_check((const char *)data, size);
    if (why != NULL) {
        fprintf(stderr, "invariant broken: %s\n", why);
        abort();
    }
    return 0;
}
#endif
