/* sockit bench --server-pid: a process's CPU time from /proc, so the report can
 * give server CPU per request over exactly the measured window. */
#include "bench.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* utime + stime + cutime + cstime (fields 14-17 of /proc/PID/stat) in clock ticks.
 * The process-wide line already sums its threads, live and exited, and cutime/cstime
 * its reaped children. The command name (field 2) may hold spaces and parentheses,
 * so fields are counted from its last ')'. */
static long long stat_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long v[4];
    /* After ") ": state, then fields 4..13 skipped, then 14..17. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &v[0],
               &v[1], &v[2], &v[3]) != 4)
        return -1;
    return (long long)(v[0] + v[1] + v[2] + v[3]);
}

/* Children not yet reaped are in no parent field: add theirs (forking servers). */
static long long children_ticks(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[300];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", pid, e->d_name);
        FILE *f = fopen(cpath, "re");
        if (f == NULL)
            continue;
        int child;
        while (fscanf(f, "%d", &child) == 1) {
            long long t = stat_ticks(child);
            if (t > 0)
                total += t;
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

double bench_process_cpu(int pid)
{
    long long ticks = stat_ticks(pid);
    if (ticks < 0)
        return -1;
    ticks += children_ticks(pid);
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}
