/* libFuzzer target for the netcat pair's command line (`sockit connect` and
 * `sockit listen`, cli/netcat/netopts.c): the input is the arguments, one a line,
 * the first byte's low bit picking the command. Beyond "did not crash": the parser
 * returns "go on" or an exit status it documents; going on, the port, family and
 * times are in their ranges, and the host points into the operands; and what was
 * allocated is freed (LeakSanitizer). Replayed from fuzz/corpus/cli_args in every
 * test run (tests/fuzz_replay.c). */
#include "netopts.h"

#include "fuzz_broken.h"
#include <getopt.h>
#include <math.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARGS_MAX  24
#define INPUT_MAX 2048

/* A parse that stopped inside an option group ("-uvz") leaves getopt pointing into
 * that input's arguments; the real command parses once, the fuzzer again and again,
 * so getopt is made to forget (optind 0 reinitialises it). */
static void reset_getopt(void)
{
    char prog[] = "x";
    char *argv[] = {prog, NULL};
    optind = 0;
    opterr = 0;
    getopt(1, argv, "");
}

/* Rule files are read by path: keep the fuzzer from naming ones that never end or
 * block (a terminal, a FIFO). */
static bool names_a_rule_file(char *const *argv, int argc)
{
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "--allowf", 8) == 0 || strncmp(argv[i], "--denyf", 7) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > INPUT_MAX)
        return 0;
    bool listen = (data[0] & 1) != 0;
    char text[INPUT_MAX + 1];
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *argv[ARGS_MAX + 2];
    char prog[16];
    snprintf(prog, sizeof prog, "%s", listen ? "listen" : "connect");
    cli_cmd = prog;
    int argc = 0;
    argv[argc++] = prog;
    for (char *p = text; p != NULL && argc <= ARGS_MAX;) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        argv[argc++] = p;
        p = nl != NULL ? nl + 1 : NULL;
    }
    argv[argc] = NULL;
    if (names_a_rule_file(argv, argc))
        return 0;
    reset_getopt();
    netopts o;
    memset(&o, 0, sizeof o);
    int rc = netopts_parse(argc, argv, listen, &o);
    if (rc != -1) {
        if (rc != CLI_OK && rc != CLI_USAGE && rc != CLI_FAIL)
            fuzz_broken("netopts_parse returned an exit status it does not document");
        return 0;
    }
    if (o.listen != listen)
        fuzz_broken("parsed for the other command");
    if (!o.is_unix && (o.port < (listen ? 0 : 1) || o.port > 65535))
        fuzz_broken("a port out of range was accepted");
    if (o.family != AF_UNSPEC && o.family != AF_INET && o.family != AF_INET6)
        fuzz_broken("a family that is neither -4 nor -6");
    if (isnan(o.wait) || isnan(o.idle) || isnan(o.linger))
        fuzz_broken("a NaN time was accepted");
    if (o.host != NULL && o.host != o.target.host)
        fuzz_broken("the host does not point into the operands");
    if (o.max_clients < 0)
        fuzz_broken("a negative -m was accepted");
    netopts_free(&o);
    return 0;
}
