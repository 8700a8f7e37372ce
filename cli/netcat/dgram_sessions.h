/* `listen -u -k`: a datagram listener that serves many peers at once, as -k does for
 * TCP. Each peer address that sends (and that --allow/--deny let in, datagram by
 * datagram) gets a session with its first datagram, said as a connection ("connection
 * from 127.0.0.1:5555", a connected event); --conn-rate limits new sessions per
 * source address. Every datagram received goes to stdout whole; each stdin datagram
 * (dgram.h's rule: a line) goes to every session (broadcast; one that starts while a
 * datagram is going out gets the next one on). A session ends after -i seconds without a datagram
 * from its peer (what is sent to it does not count: a peer that went away must not be kept alive by
 * stdin), said as "idle timeout, closed PEER". At most -m sessions: a datagram from a
 * new peer when they are all in use is dropped and counted, said at most once a
 * second. A send that fails ends that peer's session only (said), never the
 * listener. */
#ifndef SOCKIT_CLI_DGRAM_SESSIONS_H
#define SOCKIT_CLI_DGRAM_SESSIONS_H

#include "relay.h"

/* -i when not given: UDP never says that a peer has gone, so without an expiry the
 * table would fill with peers long gone and lock new ones out. A minute is longer
 * than the keepalive interval of the protocols that send one (WireGuard's 25 s, NAT
 * keepalives of 15-30 s) and shorter than the 2 minutes NATs keep a mapping (RFC
 * 4787), so a live peer keeps its session and a dead one leaves within a minute. */
#define DGRAM_SESSION_IDLE 60.0
/* -m when not given: sessions cost no descriptor, only memory (under 400 bytes each,
 * so about 1.5 MiB when full), and each stdin line is one send per session. */
#define DGRAM_SESSIONS_DEFAULT 4096

/* Serves on the datagram socket s (taken: closed before returning) as above, with
 * cfg's idle (< 0: sessions never expire), max_clients, hexdump, gate and wait
 * (>= 0: fail, reason "timeout", unless a datagram arrives within that many seconds).
 * stdin is read only while at least one session exists (lines wait in stdin until
 * someone is there to get them, as with -k over TCP); its end changes nothing.
 * A Unix datagram sender that bound no name cannot be answered: its datagrams go to
 * stdout but it gets no session. Ends on SIGINT/SIGTERM (CLI_OK), a closed stdout
 * (CLI_OK) or -w (CLI_FAIL). Returns the exit status. */
int dgram_sessions_serve(sockit *s, const relay_config *cfg);

#endif
