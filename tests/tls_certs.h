/* What the TLS tests of streams and servers share: a skip when the library has no
 * TLS, and tests/tls/make_certs.sh's certificates made once per test program in a
 * temporary directory (cmocka group setup and teardown). Static: each test takes
 * what it uses. The test needs SOCKIT_SOURCE_DIR (tests/CMakeLists.txt). */
#ifndef SOCKIT_TEST_TLS_CERTS_H
#define SOCKIT_TEST_TLS_CERTS_H

#include "harness.h"
#include "sockit_tls.h"

#include <stdio.h>
#include <stdlib.h>

#ifndef SOCKIT_SOURCE_DIR
#error "the TLS tests need SOCKIT_SOURCE_DIR (tests/CMakeLists.txt defines it)"
#endif

#define NEED_TLS()                                                                                 \
    do {                                                                                           \
        (void)state;                                                                               \
        if (!sockit_has_tls())                                                                     \
            skip();                                                                                \
    } while (0)

static char certdir[64];

/* certdir/file, in one of 8 rotating buffers (several may be one call's arguments). */
static inline const char *path_of(const char *file)
{
    static char ring[8][256];
    static unsigned next;
    char *p = ring[next++ % 8];
    snprintf(p, sizeof ring[0], "%s/%s", certdir, file);
    return p;
}

static inline int certs_setup(void **state)
{
    (void)state;
    if (!sockit_has_tls())
        return 0;
    snprintf(certdir, sizeof certdir, "/tmp/sockit-tls-test-XXXXXX");
    if (mkdtemp(certdir) == NULL)
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash %s/tests/tls/make_certs.sh %s", SOCKIT_SOURCE_DIR, certdir);
    return system(cmd) == 0 ? 0 : -1;
}

static inline int certs_teardown(void **state)
{
    (void)state;
    if (certdir[0] == '\0')
        return 0;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
