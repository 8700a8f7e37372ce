/* The other way to run several loops (handoff.c): one loop accepts every
 * connection and hands each to the next loop in turn, where it becomes a stream.
 * sockit_server runs it with --loops N --accept handoff, to measure against the
 * library's own SOCKIT_EVENTS loops (one SO_REUSEPORT socket per loop). */
#ifndef HANDOFF_H
#define HANDOFF_H

#include <sockit.h>

/* Serves the listening descriptor lfd with loops loops (loop 0 in this thread, the
 * others in threads of their own) until handoff_stop. Returns 0, or 1 after saying
 * why on stderr. */
int handoff_serve(int lfd, int loops, const sockit_stream_callbacks *cb);
/* Async-signal-safe: every loop stops. */
void handoff_stop(void);

#endif
