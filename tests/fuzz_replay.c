/* Replays a fuzz target's corpus: every file in the directories (or the files)
 * named on the command line goes through the target's LLVMFuzzerTestOneInput once,
 * as libFuzzer would give it, so each target's invariants hold on its corpus in
 * every test run without clang. A broken invariant aborts in the target and names
 * itself; this says which file did it. What the code under test prints (usage
 * errors, --help) is sent to /dev/null. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (1 << 20)

static FILE *report;
int fuzz_report_fd = -1; /* fuzz/fuzz_broken.h: where a broken invariant is told */
static unsigned char input[INPUT_MAX];

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(report, "fuzz_replay: %s: cannot open\n", path);
        return -1;
    }
    size_t n = fread(input, 1, sizeof input, f);
    fclose(f);
    fprintf(report, "%s\n", path);
    fflush(report);
    /* A copy of exactly n bytes, so that ASan sees a read past the input. */
    unsigned char *copy = malloc(n > 0 ? n : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, input, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
    return 0;
}

static int replay(const char *path, int *files)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(report, "fuzz_replay: %s: no such file or directory\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*files)++;
        return replay_file(path);
    }
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, de->d_name);
        (*files)++;
        rc = replay_file(full);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    /* The report keeps the real stderr; the code under test gets /dev/null. The
     * last file named is the one that broke an invariant, if one did. */
    fuzz_report_fd = dup(2);
    report = fdopen(dup(2), "w");
    int null = open("/dev/null", O_WRONLY);
    if (report == NULL || null < 0)
        return 1;
    int saved_out = dup(1);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
    int files = 0, rc = 0;
    for (int i = 1; i < argc && rc == 0; i++)
        rc = replay(argv[i], &files);
    fflush(stdout);
    dup2(saved_out, 1);
    close(saved_out);
    fprintf(report, "fuzz_replay: %d inputs, every invariant held\n", files);
    if (rc == 0 && files == 0) {
        fprintf(report, "fuzz_replay: an empty corpus proves nothing\n");
        rc = -1;
    }
    fclose(report);
    return rc == 0 ? 0 : 1;
}
