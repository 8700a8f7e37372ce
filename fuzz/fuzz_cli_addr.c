/* libFuzzer target for the command line's pure parsers of outside text: hosts and
 * ports (hostport.h, every subcommand's operands), forward's addresses
 * (fwd_addr.h), --allow/--deny rules (access.h) and the proxy's times, rates and
 * sizes (units.h). The first byte picks the parser, the rest is the text. Beyond
 * "did not crash": a parse succeeds or fails with a reason that is a terminated,
 * non-empty string inside its buffer; a success gives values in their ranges; and
 * what is accepted does not depend on bytes past the text's end. Replayed from
 * fuzz/corpus/cli_addr in every test run (tests/fuzz_replay.c). */
#include "access.h"
#include "fwd_addr.h"
#include "hostport.h"
#include "units.h"

#include "fuzz_broken.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT_MAX 1400 /* past the longest host (1025): the too-long paths too */

static void broken(const char *what, const char *text)
{
    (void)text; /* the input is the crash's file */
    fuzz_broken(what);
}

/* why[] was filled with a guard byte beyond the size the parser was given. */
static void check_reason(int rc, const char *why, size_t size, const char *text)
{
    if (rc != 0 && rc != -1 && rc != -2)
        broken("a parser returned a value it does not document", text);
    if (why[size] != '\x7e')
        broken("a reason was written past its buffer", text);
    if (rc != 0 && (memchr(why, '\0', size) == NULL || why[0] == '\0'))
        broken("a refusal without a terminated reason", text);
}

static void check_hostport(const hostport *hp, unsigned flags, const char *text)
{
    if (memchr(hp->host, '\0', sizeof hp->host) == NULL)
        broken("an unterminated host", text);
    int min = (flags & HOSTPORT_LISTENER) ? 0 : 1;
    if (hp->is_unix ? hp->port != -1 : hp->port != -1 && (hp->port < min || hp->port > 65535))
        broken("an accepted port out of range", text);
    if (hp->is_unix && strncmp(hp->host, "unix:", 5) != 0)
        broken("a Unix address whose host is not unix:...", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > TEXT_MAX)
        return 0;
    char text[TEXT_MAX + 1];
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char why[256 + 1];
    const size_t wsize = 256;
    memset(why, '\x7e', sizeof why);
    int rc;
    switch (data[0] % 8) {
    case 0:
    case 1: {
        unsigned flags = data[0] % 8 == 1 ? HOSTPORT_LISTENER : 0;
        hostport hp;
        rc = hostport_split(text, flags, &hp, why, wsize);
        if (rc == 0)
            check_hostport(&hp, flags, text);
        break;
    }
    case 2: {
        fwd_addr a;
        rc = fwd_addr_parse(text, &a, why, wsize);
        if (rc == 0 && (a.kind < FWD_TCP || a.kind > FWD_SYSTEM))
            broken("forward: an accepted address of no known kind", text);
        if (rc == 0 && (a.kind == FWD_TCP || a.kind == FWD_TLS || a.kind == FWD_UDP))
            check_hostport(&a.hp, 0, text);
        break;
    }
    case 3: {
        access_rule r;
        rc = access_rule_parse(text, &r, why, wsize);
        break;
    }
    case 4: {
        long long v;
        rc = units_time(text, 1e-3, 1000000000LL, &v, why, wsize);
        if (rc == 0 && (v < 0 || v > 1000000000LL))
            broken("a time out of its range", text);
        break;
    }
    case 5: {
        long long v;
        rc = units_rate(text, 1000000000LL, &v, why, wsize);
        if (rc == 0 && (v < 0 || v > 1000000000LL))
            broken("a rate out of its range", text);
        break;
    }
    case 6: {
        long long v;
        rc = units_size(text, 1LL << 40, &v, why, wsize);
        if (rc == 0 && (v < 0 || v > (1LL << 40)))
            broken("a size out of its range", text);
        break;
    }
    default: {
        /* Operands: the text split on spaces, at most three. */
        char *args[3];
        int n = 0;
        for (char *save = NULL, *w = strtok_r(text, " ", &save); w != NULL && n < 3;
             w = strtok_r(NULL, " ", &save))
            args[n++] = w;
        hostport hp;
        unsigned flags = (data[0] & 0x80) ? HOSTPORT_LISTENER : 0;
        rc = hostport_operands(n, args, flags, &hp, why, wsize);
        if (rc == 0)
            check_hostport(&hp, flags, n > 0 ? args[0] : "");
        break;
    }
    }
    check_reason(rc, why, wsize, text);
    return 0;
}
