/* Choosing a backend: the program's explicit choice, else $SOCKIT_LOOP_BACKEND,
 * else the default (epoll on Linux). */
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first is the default; uring where liburing was found at build time. */
static const sockit__backend_ops *const known[] = {
#ifdef SOCKIT_HAVE_URING
    &sockit__uring_backend,
#endif
    &sockit__epoll_backend,
    &sockit__poll_backend,
};
#ifdef SOCKIT_HAVE_URING
#define KNOWN_NAMES "uring, epoll, poll"
#define BUILT_IN    "uring,epoll,poll"
#else
#define KNOWN_NAMES "epoll, poll (uring: built without liburing)"
#define BUILT_IN    "epoll,poll"
#endif

const char *sockit__backend_names(void) { return BUILT_IN; }

int sockit__ns_to_ms(int64_t ns)
{
    if (ns < 0)
        return -1;
    int64_t ms = (ns + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static int open_one(sockit__backend *b, const sockit__backend_ops *ops)
{
    b->ops = ops;
    b->impl = NULL;
    return ops->open(b);
}

int sockit__backend_open(sockit__backend *b, const char *name)
{
    const char *from = "option";
    b->fallback[0] = '\0';
    if (name == NULL || name[0] == '\0') {
        name = getenv("SOCKIT_LOOP_BACKEND");
        from = "SOCKIT_LOOP_BACKEND";
    }
    if (name == NULL || name[0] == '\0') {
        /* The default never fails for a reason another backend does not have: a ring
         * refused (seccomp, the io_uring_disabled sysctl, an old kernel, memory) is
         * epoll, and the loop keeps why. */
        int rc = open_one(b, known[0]);
        if (rc == 0 || known[0] == &sockit__epoll_backend)
            return rc;
        snprintf(b->fallback, sizeof b->fallback, "%s", sockit_errmsg());
        return open_one(b, &sockit__epoll_backend);
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i]->name) == 0)
            return open_one(b, known[i]);
    return sockit__failf(-EINVAL, "loop backend '%s' (from the %s): unknown; known: " KNOWN_NAMES,
                         name, from);
}
