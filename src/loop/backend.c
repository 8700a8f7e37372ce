/* Choosing a backend: the program's explicit choice, else $SOCKIT_LOOP_BACKEND,
 * else the default (epoll on Linux). */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* uring only where liburing was found at build time (issue 12: not the default yet). */
static const sockit__backend_ops *const known[] = {
    &sockit__epoll_backend,
    &sockit__poll_backend,
#ifdef SOCKIT_HAVE_URING
    &sockit__uring_backend,
#endif
};
#ifdef SOCKIT_HAVE_URING
#define KNOWN_NAMES "epoll, poll, uring"
#else
#define KNOWN_NAMES "epoll, poll (uring: built without liburing)"
#endif

int sockit__ns_to_ms(int64_t ns)
{
    if (ns < 0)
        return -1;
    int64_t ms = (ns + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int sockit__backend_open(sockit__backend *b, const char *name)
{
    const char *from = "option";
    if (name == NULL || name[0] == '\0') {
        name = getenv("SOCKIT_LOOP_BACKEND");
        from = "SOCKIT_LOOP_BACKEND";
    }
    if (name == NULL || name[0] == '\0')
        name = known[0]->name;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(name, known[i]->name) == 0) {
            b->ops = known[i];
            b->impl = NULL;
            return known[i]->open(b);
        }
    }
    return sockit__failf(-EINVAL, "loop backend '%s' (from the %s): unknown; known: " KNOWN_NAMES,
                         name, from);
}
