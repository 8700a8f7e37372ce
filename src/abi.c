/* Structs of other versions: a caller's options, configs and callback tables may come
 * from an older header (shorter) or a newer one (longer). The rule is Linux's for
 * extensible syscall structs (openat2, clone3): what this library does not know must
 * be zero, so a newer program that uses nothing new still runs here. */
#include "abi.h"

#include <errno.h>
#include <string.h>

int sockit__struct_check(const void *src, size_t known, const char *what)
{
    size_t size;
    memcpy(&size, src, sizeof size);
    if (size == 0)
        return 0;
    if (size < sizeof(size_t))
        return sockit__failf(-EINVAL, "%s: size %zu is smaller than the size field itself", what,
                             size);
    const unsigned char *tail = (const unsigned char *)src;
    for (size_t i = known; i < size; i++)
        if (tail[i] != 0)
            return sockit__failf(-EINVAL,
                                 "%s: size %zu, and the bytes past the %zu this library knows "
                                 "are not zero (built against a newer sockit, using a field "
                                 "this one lacks)",
                                 what, size, known);
    return 0;
}

int sockit__struct_copy(void *dst, size_t known, const void *src, size_t base, const char *what)
{
    int rc = sockit__struct_check(src, known, what);
    if (rc < 0)
        return rc;
    size_t size;
    memcpy(&size, src, sizeof size);
    size_t n = size == 0 ? base : size < known ? size : known;
    memset(dst, 0, known);
    memcpy(dst, src, n);
    /* From here on the library's own copy is its own layout. */
    memcpy(dst, &known, sizeof known);
    return 0;
}

int sockit__table_check(const void *src, size_t base, size_t known, const char *what)
{
    int rc = sockit__struct_check(src, known, what);
    if (rc < 0)
        return rc;
    size_t size;
    memcpy(&size, src, sizeof size);
    /* A table is read where it lies, so it cannot be shorter than the base layout. */
    if (size != 0 && size < base)
        return sockit__failf(-EINVAL, "%s: size %zu is below the %zu bytes of its first layout",
                             what, size, base);
    return 0;
}
