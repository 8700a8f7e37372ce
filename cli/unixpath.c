/* A unix: path that exists and is not a socket. bind and connect report it as
 * "Address already in use" and "Connection refused", which send people looking for
 * a server; the file is rightly left alone, so the tool says what it is instead. */
#include "cli.h"

#include <string.h>
#include <sys/stat.h>

static const char *kind_of(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISLNK(mode))
        return "a symbolic link";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a socket";
}

int cli_check_unix_path(const char *host, bool listening)
{
    if (strncmp(host, "unix:", 5) != 0 || host[5] == '@')
        return 0; /* not a path; an abstract name has no file */
    const char *path = host + 5;
    struct stat st;
    /* bind does not follow a symbolic link (the link itself is in the way); connect
     * does. */
    int rc = listening ? lstat(path, &st) : stat(path, &st);
    if (rc < 0 || S_ISSOCK(st.st_mode))
        return 0; /* missing, or a socket: bind and connect say the rest */
    return cli_fail("%s: the path exists and is %s, not a socket (left alone)", host,
                    kind_of(st.st_mode));
}
