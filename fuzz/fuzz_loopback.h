/* For the fuzz targets whose input names proxies' addresses (fuzz_http,
 * fuzz_proxy_config): a listen or upstream that is not a numeric loopback address
 * is replaced before the input goes in, so that fuzzing binds only loopback ports
 * and never asks a resolver or connects elsewhere. The address parsers have a
 * target of their own (fuzz_cli_addr). */
#ifndef SOCKIT_FUZZ_LOOPBACK_H
#define SOCKIT_FUZZ_LOOPBACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool fuzz_is_loopback_address(const char *s)
{
    const char *port;
    if (strncmp(s, "127.0.0.1:", 10) == 0)
        port = s + 10;
    else if (strncmp(s, "[::1]:", 6) == 0)
        port = s + 6;
    else
        return false;
    if (*port == '\0' || strlen(port) > 5)
        return false;
    for (const char *p = port; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

static void fuzz_keep_to_loopback(json_t *v)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) fuzz_keep_to_loopback(item);
        return;
    }
    if (!json_is_object(v))
        return;
    static const char *const keys[] = {"listen", "upstream"};
    for (size_t k = 0; k < 2; k++) {
        json_t *s = json_object_get(v, keys[k]);
        if (json_is_string(s) && json_string_value(s)[0] != '\0' &&
            !fuzz_is_loopback_address(json_string_value(s)))
            json_object_set_new(v, keys[k], json_string(k == 0 ? "127.0.0.1:0" : "127.0.0.1:9"));
    }
}

/* The JSON text with its addresses kept to loopback, in a buffer to free(), or NULL
 * when the text is not JSON (it goes in as it is: it names no address). */
static char *fuzz_loopback_json(const char *text, size_t len, size_t *out_len)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    if (v == NULL)
        return NULL;
    fuzz_keep_to_loopback(v);
    char *out = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(v);
    if (out != NULL)
        *out_len = strlen(out);
    return out;
}

#endif
