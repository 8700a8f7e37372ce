/* One side of a forwarding session, opened from its address (fwd_addr.h): the
 * stream it is read from and the one it is written to (the same for a socket),
 * and what must be finished once the relay is over (a pump thread, a command). */
#ifndef SOCKIT_CLI_FWD_END_H
#define SOCKIT_CLI_FWD_END_H

#include "fwd_addr.h"
#include "fwd_pump.h"

#include <sockit.h>
#include <sockit_tls.h>
#include <sys/types.h>

typedef struct fwd_end {
    sockit_stream *in, *out;
    sockit_datagram *dg; /* udp, udp-listen: instead of streams */
    char *first;         /* udp-listen: the first datagram, for the other side */
    size_t first_len;
    fwd_pump *pump[2]; /* stdin's, stdout's (or a file's, in [0]) */
    const fwd_addr *addr;
    pid_t pid; /* exec, system: the command, until reaped; 0: none */
    char name[160];
} fwd_end;

/* What opening needs from the command line. */
typedef struct fwd_open_opts {
    sockit_loop *loop;
    double connect_timeout;
    sockit_tls_ctx *tls; /* tls: addresses' client context */
    bool verbose;
} fwd_open_opts;

/* done(e, ok, user): e was opened (ok) or not (already said, one line). */
typedef void (*fwd_end_fn)(fwd_end *e, bool ok, void *user);

/* Opens a side that does not listen into *e. Local sides (stdio, file, create,
 * exec, system) are opened at once: returns 0 (done is not called). A connect
 * returns 1 with *pending set, and done follows from the loop. -1: failed, said. */
int fwd_end_open(const fwd_open_opts *o, const fwd_addr *a, fwd_end *e, fwd_end_fn done, void *user,
                 sockit_connector **pending);
/* udp-listen: waits on bound (taken) for the first datagram, whose sender becomes
 * the peer (the socket is connected to it). Returns 1 (done follows from the loop),
 * or -1 (said). */
int fwd_end_wait_datagram(const fwd_open_opts *o, const fwd_addr *a, sockit *bound, fwd_end *e,
                          fwd_end_fn done, void *user);
/* A side made from an accepted stream. */
void fwd_end_accepted(fwd_end *e, const fwd_addr *a, sockit_stream *st, const char *peer);
/* Closes what the relay did not take (streams, when no relay was made), waits for
 * the pump threads and tells a command still running to stop (SIGTERM; e->pid
 * then stays set, for the caller to reap). Returns false when a pump's read or
 * write failed (said). */
bool fwd_end_release(fwd_end *e, bool streams_too);

#endif
