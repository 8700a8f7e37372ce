/* Monotonic deadlines and waiting for readiness against them. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <time.h>

int64_t sockit__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sockit__deadline(double timeout)
{
    if (timeout < 0 || isnan(timeout))
        return SOCKIT__NEVER;
    /* A timeout beyond ~292 years is "never" rather than an overflow. */
    if (timeout > 9.0e9)
        return SOCKIT__NEVER;
    return sockit__now_ns() + (int64_t)(timeout * 1e9);
}

int sockit__remaining_ms(int64_t deadline)
{
    if (deadline == SOCKIT__NEVER)
        return -1;
    int64_t left = deadline - sockit__now_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int sockit__wait(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        /* Checked before every poll, not only when poll times out: a descriptor that
         * polls ready while its syscall still says EAGAIN (an unconnected Unix
         * datagram sender whose receiver is full) would otherwise loop forever. */
        if (deadline != SOCKIT__NEVER && sockit__now_ns() >= deadline)
            return SOCKIT_ETIMEOUT;
        int ms = sockit__remaining_ms(deadline);
        int n = sockit__sys_poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n == 0) {
            /* poll may wake a little early by its clock; only the monotonic deadline
             * decides that the time is up. */
            if (deadline != SOCKIT__NEVER && sockit__now_ns() >= deadline)
                return SOCKIT_ETIMEOUT;
            continue;
        }
        int err = errno;
        if (err != EINTR)
            return -err;
    }
}
