/* How a fuzz target reports a broken invariant: one line, then abort() (libFuzzer
 * keeps the input). libFuzzer runs with the target's stderr closed (make fuzz's
 * -close_fd_mask, for the parsers' own messages), so the corpus replay
 * (tests/fuzz_replay.c), which does the same, names a descriptor of its own here:
 * replay a crash's input to read the line. */
#ifndef SOCKIT_FUZZ_BROKEN_H
#define SOCKIT_FUZZ_BROKEN_H

#include <stdio.h>
#include <stdlib.h>

__attribute__((weak)) int fuzz_report_fd = -1;

__attribute__((noreturn)) static void fuzz_broken(const char *what)
{
    dprintf(fuzz_report_fd >= 0 ? fuzz_report_fd : 2, "invariant broken: %s\n", what);
    abort();
}

#endif
