/* Tables indexed by descriptor (the loop's watchers, the selector's keys, the io_uring
 * backend's polls): grown by doubling to hold a descriptor, the new entries zeroed,
 * so a zero entry always means "nothing here". */
#include "internal.h"

#include <errno.h>
#include <string.h>

int sockit__fd_table_grow(void **table, size_t *n, size_t elem_size, int fd)
{
    if ((size_t)fd < *n)
        return 0;
    size_t cap = *n ? *n : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    char *t = sockit__realloc(*table, cap * elem_size);
    if (t == NULL)
        return -ENOMEM;
    memset(t + *n * elem_size, 0, (cap - *n) * elem_size);
    *table = t;
    *n = cap;
    return 0;
}
