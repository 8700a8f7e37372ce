/* A command run for one connection (--exec, --sh-exec): started with the
 * connection as its stdin and stdout, waited for, told to stop. Shared by the
 * subcommands that hand connections to programs (listen, connect, forward).
 *
 * The command is started with posix_spawn: the C library then runs the child in
 * the parent's memory until the exec (vfork-style), so no page table of a process
 * that holds many connections is copied, the call is safe in a process with
 * threads (the loop's resolver), and glibc (2.24 on) and musl hand the exec's errno
 * back to the parent as posix_spawn's result, so a command that cannot start is
 * said here, once, rather than being a silent exit 127 of the child. */
#ifndef SOCKIT_CLI_CHILD_H
#define SOCKIT_CLI_CHILD_H

#include <stdbool.h>
#include <sys/types.h>

/* Starts cmd with fd as its stdin and stdout (stderr stays ours). shell: run it as
 * /bin/sh -c cmd (--sh-exec); else split cmd into words on blanks (spaces and
 * tabs: no quoting beyond that) and execvp the first (--exec). fd is made blocking
 * (the file description is shared: it is the child's from now on). The child gets
 * default SIGPIPE, SIGINT, SIGTERM, SIGQUIT and SIGCHLD dispositions and an empty
 * signal mask, leads a process group of its own (its pid: child_kill reaches a
 * pipeline whole), and has no other descriptor of ours: every one of ours is
 * close-on-exec, and where the C library can (glibc 2.34 on) every descriptor past
 * 2 is closed in the child as well. Returns 0 and *pid, or -1 having said why in
 * one line ("sockit: --exec 'nosuchprog': No such file or directory"). */
int child_start(const char *cmd, bool shell, int fd, pid_t *pid);

/* --exec's check before anything connects or listens: cmd has a first word, and
 * that program is found as execvp would find it (in PATH unless it has a '/') and
 * is executable. --sh-exec: cmd is not blank. Returns 0, or -1 having said why in
 * one line, as child_start would have. */
int child_check(const char *cmd, bool shell);

/* Waits for pid up to timeout seconds (< 0: forever; 0: only looks); returns its
 * exit status as a shell would ($?: 128+signal for a child killed by a signal), or
 * -1 on timeout (errno ETIMEDOUT) or when pid is not a child of ours (ECHILD). */
int child_wait(pid_t pid, double timeout);

/* Reaps any one child that has ended, without waiting: its status (as child_wait)
 * and *pid, or -1 when none has (also when there are no children). For a loop that
 * watches SIGCHLD: call it until -1. */
int child_reap(pid_t *pid);

/* Sends sig to pid's process group (the command and whatever it started), or to
 * pid alone when it has left its group. Returns 0 or -errno (-ESRCH: gone). */
int child_kill(pid_t pid, int sig);

#endif
