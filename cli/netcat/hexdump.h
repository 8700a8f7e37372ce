/* -x: a hex dump of the traffic, hexdump -C style, one line per 16 bytes:
 *   > 00000010  68 65 6c 6c 6f 0a                                |hello.|
 * '>' is data sent to the network, '<' data received. Offsets count each
 * direction's bytes from 0, so a dump can be matched against the stream. */
#ifndef SOCKIT_CLI_HEXDUMP_H
#define SOCKIT_CLI_HEXDUMP_H

#include <stddef.h>
#include <stdio.h>

/* Writes len bytes of data as dump lines to out, starting at *offset, which is
 * advanced by len. A chunk that ends mid-line ends its line there; the next chunk
 * starts a new line at its own offset. */
void hexdump(FILE *out, char direction, unsigned long long *offset, const void *data, size_t len);

#endif
