/* Placeholder replaced by the netcat implementation. */
#include "cli.h"
int cmd_listen(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail("listen: not implemented yet");
}
