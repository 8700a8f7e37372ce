/* What the proxy adds to a relay (src/proxy/proxy_conn.c): a say over every
 * direction's bytes before they pass, so that toxics can hold, cut or end them,
 * and the bytes it holds counted in the backpressure. Never installed. */
#ifndef SOCKIT_RELAY_INTERNAL_H
#define SOCKIT_RELAY_INTERNAL_H

#include "sockit.h"

typedef struct sockit__relay_hooks {
    /* Direction dir's bytes (or, with eof, its end) as they arrive: true when the
     * hook took them (it passes them on later with sockit__relay_pass and
     * sockit__relay_pass_eof), false to let them pass now. */
    bool (*take)(sockit_relay *r, int dir, const char *data, size_t len, bool eof, void *user);
    /* Bytes of dir the hook holds, weighed with the receiver's queue. */
    size_t (*held)(const sockit_relay *r, int dir, void *user);
    /* The relay has begun to end (its streams are closing): nothing more passes.
     * reason is the relay's, valid until on_end returns. */
    void (*ending)(sockit_relay *r, int code, const char *reason, void *user);
} sockit__relay_hooks;

sockit_relay *sockit__relay_new_hooked(const sockit_relay_side *a, const sockit_relay_side *b,
                                       const sockit_relay_config *cfg,
                                       const sockit__relay_hooks *hooks, void *hook_user);
/* Writes dir's bytes to its receiver. 0, or the write's code (the relay is then
 * ending: both sides reset). */
int sockit__relay_pass(sockit_relay *r, int dir, const char *data, size_t len);
/* dir's end of stream: its receiver's write side is shut down; once both
 * directions have ended the relay closes. */
void sockit__relay_pass_eof(sockit_relay *r, int dir);
/* Pauses or resumes dir's sender by what dir holds. */
void sockit__relay_pressure(sockit_relay *r, int dir);
/* Ends the relay: the streams closed within linger seconds (< 0: reset now).
 * reason is copied. Does nothing once it is ending. */
void sockit__relay_end(sockit_relay *r, int code, const char *reason, double linger);
bool sockit__relay_ending(const sockit_relay *r);
/* Whether dir's sender is paused for what dir holds. */
bool sockit__relay_paused(const sockit_relay *r, int dir);

#endif
