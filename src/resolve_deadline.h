/* Name resolution bounded by a deadline (resolve_deadline.c). Internal. */
#ifndef SOCKIT_RESOLVE_DEADLINE_H
#define SOCKIT_RESOLVE_DEADLINE_H

#include "internal.h"

/* Resolves host (NULL: loopback, or the wildcard with AI_PASSIVE in flags) and a
 * numeric port for family (AF_UNSPEC, AF_INET, AF_INET6) and type through
 * sockit__call_getaddrinfo, in the resolver's order, into out[max]. Only IPv4 and
 * IPv6 results are kept. A numeric host, or deadline SOCKIT__NEVER, resolves in the
 * calling thread; a name with a finite deadline is resolved on a detached thread so
 * that the caller can give up at the deadline while the lookup finishes (and frees
 * itself) in the background.
 * Returns the count (>= 1), or a code: SOCKIT_EAI_*, SOCKIT_ETIMEOUT, SOCKIT_ENOADDR
 * (nothing of a usable family), -ENOMEM or -EAGAIN (no thread). Sets no message:
 * the caller knows the operation to name. */
ssize_t sockit__resolve_deadline(const char *host, int port, int family, int type, int flags,
                                 int64_t deadline, sockit_addrinfo *out, size_t max);

#endif
