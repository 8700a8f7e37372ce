/* Placeholder replaced by the netcat implementation. */
#include "cli.h"
int cmd_connect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("connect: not implemented yet");
}
