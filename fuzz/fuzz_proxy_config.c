/* libFuzzer target for `sockit proxy`'s config file (toxiproxy's -config: a JSON
 * array of proxies, read by api_populate_text as POST /populate reads its body).
 * Addresses are kept to loopback (fuzz_loopback.h). Beyond "did not crash": a
 * refusal has a status the API gives and a message; a success leaves at most
 * REGISTRY_PROXIES_MAX proxies, each named, bound and with an upstream; and the
 * registry closes without leaks, leaving nothing open on the loop. Replayed from
 * fuzz/corpus/proxy_config in every test run (tests/fuzz_replay.c). */
#include "api_routes.h"
#include "fuzz_loopback.h"
#include "registry.h"

#include "fuzz_broken.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONFIG_MAX 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > CONFIG_MAX)
        return 0;
    size_t len = size;
    char *kept = fuzz_loopback_json((const char *)data, size, &len);
    const char *text = kept != NULL ? kept : (const char *)data;
    /* One loop for every input: making and freeing one was most of an input's cost
     * (ASan's allocator). Each input must leave it with nothing open. */
    static sockit_loop *loop;
    if (loop == NULL) {
        sockit_loop_options lo = SOCKIT_LOOP_OPTIONS_INIT;
        lo.backend = "poll";
        if ((loop = sockit_loop_new(&lo)) == NULL) {
            free(kept);
            return 0;
        }
    }
    registry reg = {.loop = loop, .connect_timeout = 1, .seed = 1};
    registry_error err = {0};
    int rc = api_populate_text(&reg, text, len, &err);
    if (rc != 0 && rc != -1)
        fuzz_broken("api_populate_text returned a value it does not document");
    if (rc == -1 && (err.status < 400 || err.status > 599 || err.message[0] == '\0'))
        fuzz_broken("a refused config without an error status and message");
    if (reg.n > REGISTRY_PROXIES_MAX)
        fuzz_broken("more proxies than REGISTRY_PROXIES_MAX");
    size_t count = 0;
    for (registry_entry *e = reg.head; e != NULL; e = e->next, count++)
        if (e->name[0] == '\0' || e->upstream[0] == '\0' || e->proxy == NULL ||
            (e->type != SOCK_STREAM && e->type != SOCK_DGRAM))
            fuzz_broken("a proxy without a name, an upstream or a protocol");
    if (count != reg.n)
        fuzz_broken("the registry's count is not its length");
    registry_close_all(&reg);
    int alive = 1;
    for (int i = 0; i < 100 && alive != 0; i++)
        alive = sockit_loop_run_once(loop, 0.001);
    if (alive != 0)
        fuzz_broken("the registry left something open on the loop after closing");
    free(kept);
    return 0;
}
