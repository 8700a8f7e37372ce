/* Commands run for connections: posix_spawn with the connection on 0 and 1, and
 * waiting for them (child.h says why posix_spawn). */
#include "child.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* posix_spawn_file_actions_addclosefrom_np came with glibc 2.34. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define CHILD_HAVE_CLOSEFROM 1
#endif

#define CHILD_BLANKS " \t"

static const char *option(bool shell) { return shell ? "--sh-exec" : "--exec"; }

static bool blank(const char *cmd) { return cmd[strspn(cmd, CHILD_BLANKS)] == '\0'; }

/* argv for --exec: the words of a copy of cmd (freed with *copy). NULL when out of
 * memory. */
static char **words(const char *cmd, char **copy)
{
    *copy = strdup(cmd);
    if (*copy == NULL)
        return NULL;
    size_t n = 0;
    for (const char *p = cmd; *p != '\0';) {
        p += strspn(p, CHILD_BLANKS);
        if (*p != '\0')
            n++;
        p += strcspn(p, CHILD_BLANKS);
    }
    char **argv = calloc(n + 1, sizeof *argv);
    if (argv == NULL) {
        free(*copy);
        return NULL;
    }
    char *save = NULL;
    size_t i = 0;
    for (char *w = strtok_r(*copy, CHILD_BLANKS, &save); w != NULL;
         w = strtok_r(NULL, CHILD_BLANKS, &save))
        argv[i++] = w;
    return argv;
}

/* An executable regular file: 0, or the errno execve would give. */
static int runnable(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno;
    if (!S_ISREG(st.st_mode))
        return EACCES;
    return access(path, X_OK) == 0 ? 0 : errno;
}

/* execvp's search: a name with a '/' as is, else each directory of PATH (the
 * system's default path when PATH is unset); EACCES wins over ENOENT, as there. */
static int find_program(const char *name)
{
    if (strchr(name, '/') != NULL)
        return runnable(name);
    const char *path = getenv("PATH");
    char fallback[256];
    if (path == NULL) {
        size_t n = confstr(_CS_PATH, fallback, sizeof fallback);
        path = n > 0 && n <= sizeof fallback ? fallback : "/bin:/usr/bin";
    }
    int why = ENOENT;
    for (const char *dir = path;; dir++) {
        size_t len = strcspn(dir, ":");
        char full[PATH_MAX];
        /* An empty entry is the current directory. */
        int n = len == 0 ? snprintf(full, sizeof full, "%s", name)
                         : snprintf(full, sizeof full, "%.*s/%s", (int)len, dir, name);
        if (n > 0 && (size_t)n < sizeof full) {
            int err = runnable(full);
            if (err == 0)
                return 0;
            if (err == EACCES)
                why = EACCES;
        }
        dir += len;
        if (*dir == '\0')
            return why;
    }
}

int child_check(const char *cmd, bool shell)
{
    if (blank(cmd)) {
        cli_fail("%s '%s': no command to run", option(shell), cmd);
        return -1;
    }
    if (shell)
        return 0;
    const char *start = cmd + strspn(cmd, CHILD_BLANKS);
    size_t len = strcspn(start, CHILD_BLANKS);
    char name[PATH_MAX];
    if (len >= sizeof name) {
        cli_fail("%s '%.40s...': %s", option(shell), cmd, strerror(ENAMETOOLONG));
        return -1;
    }
    memcpy(name, start, len);
    name[len] = '\0';
    int err = find_program(name);
    if (err != 0) {
        cli_fail("%s '%s': %s", option(shell), cmd, strerror(err));
        return -1;
    }
    return 0;
}

/* The attributes every child gets: the signals a shell's job would have by
 * default (sockit ignores SIGPIPE, and a background job of a non-interactive shell
 * starts with SIGINT and SIGQUIT ignored; exec keeps what is ignored), nothing
 * blocked, and a process group of its own. */
static int child_attributes(posix_spawnattr_t *at)
{
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    const int signals[] = {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        sigaddset(&dflt, signals[i]);
    int rc = posix_spawnattr_setsigmask(at, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(at, &dflt);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(at, 0);
    if (rc == 0)
        rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                              POSIX_SPAWN_SETPGROUP);
    return rc;
}

/* fd on 0 and 1, and (where the library can) nothing past 2. fd is past 2. */
static int child_files(posix_spawn_file_actions_t *fa, int fd)
{
    int rc = posix_spawn_file_actions_adddup2(fa, fd, STDIN_FILENO);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(fa, fd, STDOUT_FILENO);
#ifdef CHILD_HAVE_CLOSEFROM
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(fa, STDERR_FILENO + 1);
#endif
    return rc;
}

/* Clears O_NONBLOCK (a child expects blocking stdio) and gives a descriptor past 2,
 * so that the dup2 onto 0 and 1 moves it: *moved is a close-on-exec copy to close
 * after the spawn, or -1. Returns 0 or an errno. */
static int prepare_fd(int fd, int *use, int *moved)
{
    *moved = -1;
    *use = fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return errno;
    if ((flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
        return errno;
    if (fd > STDERR_FILENO)
        return 0;
    *moved = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    if (*moved < 0)
        return errno;
    *use = *moved;
    return 0;
}

int child_start(const char *cmd, bool shell, int fd, pid_t *pid)
{
    if (blank(cmd)) {
        cli_fail("%s '%s': no command to run", option(shell), cmd);
        return -1;
    }
    char *copy = NULL;
    char **argv = NULL;
    char *sh_argv[] = {"sh", "-c", NULL, NULL};
    if (shell) {
        copy = strdup(cmd);
        sh_argv[2] = copy;
    } else {
        argv = words(cmd, &copy);
    }
    if (copy == NULL || (!shell && argv == NULL)) {
        cli_fail("%s '%s': out of memory", option(shell), cmd);
        return -1;
    }
    int use, moved;
    int rc = prepare_fd(fd, &use, &moved);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    bool fa_made = false, at_made = false;
    if (rc == 0)
        fa_made = (rc = posix_spawn_file_actions_init(&fa)) == 0;
    if (rc == 0)
        at_made = (rc = posix_spawnattr_init(&at)) == 0;
    if (rc == 0)
        rc = child_files(&fa, use);
    if (rc == 0)
        rc = child_attributes(&at);
    if (rc == 0)
        rc = shell ? posix_spawn(pid, "/bin/sh", &fa, &at, sh_argv, environ)
                   : posix_spawnp(pid, argv[0], &fa, &at, argv, environ);
    if (at_made)
        posix_spawnattr_destroy(&at);
    if (fa_made)
        posix_spawn_file_actions_destroy(&fa);
    if (moved >= 0)
        close(moved);
    free(argv);
    free(copy);
    if (rc != 0) {
        cli_fail("%s '%s': %s", option(shell), cmd, strerror(rc));
        return -1;
    }
    return 0;
}

static int shell_status(int ws)
{
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    if (WIFSIGNALED(ws))
        return 128 + WTERMSIG(ws);
    return 128; /* stopped or continued: waitpid here never asks for those */
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A descriptor that becomes readable when pid ends (Linux 5.3 on), or -1: the wait
 * then looks at growing intervals instead. */
static int pid_fd(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd >= 0 && fd <= INT_MAX ? (int)fd : -1;
#else
    (void)pid;
    return -1;
#endif
}

int child_wait(pid_t pid, double timeout)
{
    int ws;
    if (timeout < 0) {
        while (waitpid(pid, &ws, 0) < 0)
            if (errno != EINTR)
                return -1;
        return shell_status(ws);
    }
    double until = mono_now() + timeout, step = 0.001;
    int pfd = -1;
    bool pfd_tried = false;
    for (;;) {
        pid_t got = waitpid(pid, &ws, WNOHANG);
        if (got == pid || (got < 0 && errno != EINTR)) {
            int err = errno;
            if (pfd >= 0)
                close(pfd);
            errno = err;
            return got == pid ? shell_status(ws) : -1;
        }
        double left = until - mono_now();
        if (left <= 0) {
            if (pfd >= 0)
                close(pfd);
            errno = ETIMEDOUT;
            return -1;
        }
        if (!pfd_tried) {
            pfd = pid_fd(pid);
            pfd_tried = true;
        }
        if (pfd >= 0) {
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            poll(&p, 1, (int)(left * 1000) + 1); /* EINTR: the loop looks again */
        } else {
            double nap = left < step ? left : step;
            struct timespec ts = {.tv_sec = (time_t)nap,
                                  .tv_nsec = (long)((nap - (double)(time_t)nap) * 1e9)};
            nanosleep(&ts, NULL);
            step = step * 2 < 0.05 ? step * 2 : 0.05;
        }
    }
}

int child_reap(pid_t *pid)
{
    int ws;
    pid_t got;
    do
        got = waitpid(-1, &ws, WNOHANG);
    while (got < 0 && errno == EINTR);
    if (got <= 0)
        return -1;
    *pid = got;
    return shell_status(ws);
}

int child_kill(pid_t pid, int sig)
{
    if (pid <= 0)
        return -EINVAL;
    if (kill(-pid, sig) == 0)
        return 0;
    if (errno == ESRCH && kill(pid, sig) == 0)
        return 0;
    return -errno;
}
