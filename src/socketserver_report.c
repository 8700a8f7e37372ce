/* The default handle_error: a line on stderr per failure, within a budget. A client
 * that resets 500 connections must not write 500 lines: each one-second window
 * prints at most SOCKIT__LOG_BURST lines, the rest are counted, and the count is
 * printed as one summary line when the next window opens (or at close).
 *
 * The budget lives in the server's shared page, so the children of a process server
 * draw on the same one. It is lock-free: a child killed mid-report cannot leave it
 * locked. Near a window's edge a line or two more than the burst may pass; the
 * bound is what matters, not its exact value. */
#include "socketserver.h"

#include <stdio.h>

#define SOCKIT__LOG_BURST     10
#define SOCKIT__LOG_WINDOW_NS 1000000000LL

static void print_summary(int suppressed)
{
    fprintf(stderr, "sockit_server: %d more failure%s not shown (at most %d lines a second)\n",
            suppressed, suppressed == 1 ? "" : "s", SOCKIT__LOG_BURST);
}

/* True when this line may be printed; false when it was counted instead. */
static bool admit(sockit__errlog *log)
{
    int64_t w = sockit__now_ns() / SOCKIT__LOG_WINDOW_NS;
    int64_t cur = atomic_load(&log->window);
    /* Whoever moves the window on prints what the last ones held back. */
    if (w != cur && atomic_compare_exchange_strong(&log->window, &cur, w)) {
        atomic_store(&log->shown, 0);
        int n = atomic_exchange(&log->suppressed, 0);
        if (n > 0)
            print_summary(n);
    }
    if (atomic_fetch_add(&log->shown, 1) < SOCKIT__LOG_BURST)
        return true;
    atomic_fetch_add(&log->suppressed, 1);
    return false;
}

void sockit__srv_report(sockit_server *srv, sockit_request *req, int code)
{
    if (srv->cfg.handle_error != NULL) {
        srv->cfg.handle_error(req, code, srv->cfg.user);
        return;
    }
    /* Read before admit, which may print: the message is this thread's last one. */
    const char *why = sockit_errcode() == code ? sockit_errmsg() : sockit_strerror(code);
    if (!admit(&srv->shared->log))
        return;
    if (req != NULL) {
        char peer[SOCKIT_ADDRSTRLEN];
        sockit__addr_text(&req->peer, peer, sizeof peer);
        fprintf(stderr, "sockit_server: request from %s failed: %s\n", peer, why);
    } else {
        fprintf(stderr, "sockit_server: %s\n", why);
    }
}

void sockit__srv_report_flush(sockit_server *srv)
{
    int n = atomic_exchange(&srv->shared->log.suppressed, 0);
    if (n > 0)
        print_summary(n);
}
