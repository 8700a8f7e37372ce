/* libFuzzer target for the address parser. Beyond "did not crash" it checks the
 * round trip: text that parses formats, the formatted text parses back to an equal
 * address, and formatting that again gives the same text. tests/ includes this file
 * and runs sockit_fuzz_addr_check on hand-written inputs in every test run. */
#include "sockit.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer inputs only exercise the same too-long paths more slowly. */
#define FUZZ_ADDR_MAX_INPUT 512

/* Returns NULL when every invariant holds for text, else which one broke. */
const char *sockit_fuzz_addr_check(const char *text);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *check_failure(const char *text, int rc, const sockit_addr *out,
                                 const sockit_addr *before)
{
    if (rc != SOCKIT_EBADADDR && rc != SOCKIT_EBADPORT && rc != SOCKIT_EPATHLEN)
        return "parse failed with a code it does not document";
    if (memcmp(out, before, sizeof *out) != 0)
        return "a failed parse changed *out";
    if (sockit_errcode() != rc)
        return "a failed parse did not record its code";
    if (strstr(sockit_errmsg(), text) == NULL)
        return "a failed parse's message does not name the input";
    return NULL;
}

/* Every buffer size up to the text's length is too small, and one more fits. */
static const char *check_sizes(const sockit_addr *a, const char *expect, int len)
{
    char buf[SOCKIT_ADDRSTRLEN];
    for (int size = 0; size <= len; size++) {
        memset(buf, 'x', sizeof buf);
        if (sockit_addr_format(a, buf, (size_t)size) != -ENOSPC)
            return "format into a too-small buffer did not return -ENOSPC";
        if (size > 0 && buf[0] != '\0')
            return "format into a too-small buffer left it unterminated";
        if (buf[size] != 'x')
            return "format wrote past the size it was given";
    }
    if (sockit_addr_format(a, buf, (size_t)len + 1) != len || strcmp(buf, expect) != 0)
        return "format into an exactly-sized buffer differs";
    return NULL;
}

const char *sockit_fuzz_addr_check(const char *text)
{
    sockit_addr a, before;
    memset(&a, 0xa5, sizeof a);
    before = a;
    int rc = sockit_addr_parse(&a, text);
    if (rc != 0)
        return rc > 0 ? "parse returned a positive value" : check_failure(text, rc, &a, &before);

    int family = sockit_addr_family(&a);
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return "parse produced an unknown family";
    if (a.len == 0 || a.len > sizeof a.u)
        return "parse produced an impossible length";
    if (!sockit_addr_equal(&a, &a))
        return "an address is not equal to itself";

    char first[SOCKIT_ADDRSTRLEN];
    int n1 = sockit_addr_format(&a, first, sizeof first);
    if (n1 <= 0)
        return "a parsed address does not format";
    if ((size_t)n1 != strlen(first))
        return "format returned a length other than the text's";
    const char *why = check_sizes(&a, first, n1);
    if (why != NULL)
        return why;

    sockit_addr b;
    if (sockit_addr_parse(&b, first) != 0)
        return "the formatted text does not parse";
    if (!sockit_addr_equal(&a, &b) || !sockit_addr_equal(&b, &a))
        return "the reparsed address differs";
    char second[SOCKIT_ADDRSTRLEN];
    if (sockit_addr_format(&b, second, sizeof second) != n1 || strcmp(first, second) != 0)
        return "formatting the reparsed address gives other text";

    int port = sockit_addr_port(&a);
    if (family == AF_UNIX) {
        if (port != -1)
            return "a Unix address has a port";
    } else {
        if (port < 0 || port > 65535)
            return "an IP address has a port outside 0-65535";
        if (sockit_addr_set_port(&b, port == 65535 ? 0 : port + 1) != 0 ||
            sockit_addr_equal(&a, &b))
            return "changing the port left the address equal";
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_ADDR_MAX_INPUT)
        return 0;
    char text[FUZZ_ADDR_MAX_INPUT + 1];
    if (size > 0)
        memcpy(text, data, size);
    text[size] = '\0';
    const char *why = sockit_fuzz_addr_check(text);
    if (why != NULL) {
        fprintf(stderr, "fuzz_addr: %s; input \"%s\"\n", why, text);
        abort();
    }
    return 0;
}
