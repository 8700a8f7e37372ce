/* Late calls: the calls the loop owes its objects (a stream's deferred start,
 * delivery, write-done calls, on_close; an endpoint's on_close). call_soon's queue
 * is an array that grows, so queueing there can fail; these cannot, since each
 * object embeds its node, and an on_close that could not be queued would have to
 * run inside the close that asked for it, under a caller still using the object. */
#include "loop_internal.h"

void sockit__late_queue(sockit_loop *loop, sockit__late *n)
{
    if (n->queued)
        return;
    n->queued = true;
    n->next = NULL;
    if (loop->late_tail != NULL)
        loop->late_tail->next = n;
    else
        loop->late_head = n;
    loop->late_tail = n;
}

void sockit__late_run(sockit_loop *loop)
{
    sockit__late *n = loop->late_head;
    loop->late_head = loop->late_tail = NULL;
    while (n != NULL) {
        /* The node may be queued again, or its object freed, by its own run. */
        sockit__late *next = n->next;
        n->queued = false;
        n->run(loop, n);
        n = next;
    }
}
