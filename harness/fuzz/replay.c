/*
 * replay.c - a fuzz target's main() without libFuzzer: runs every file
 * named on the command line (a directory: every file below it, in sorted
 * order) through LLVMFuzzerTestOneInput() once.  Linked with each target
 * by every build (make all), so make check replays the committed corpus
 * and regression inputs with whatever compiler built the tree, and make
 * sanitize under ASan, UBSan and LSan; no clang needed.  A crash or a
 * sanitizer's report fails it; it names each input on stderr before it
 * runs it, and prints how many ran.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long ran;

/* The input in a buffer of exactly its size, so an overread is caught. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long size;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        perror(path);
        if (f != NULL)
            fclose(f);
        return -1;
    }
    buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    fprintf(stderr, "running %s\n", path); /* what a crash was running */
    LLVMFuzzerTestOneInput(buf, (size_t)size);
    free(buf);
    ran++;
    return 0;
}

static int run_path(const char *path)
{
    struct dirent **list;
    struct stat st;
    int n, r = 0;

    if (stat(path, &st) < 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    if ((n = scandir(path, &list, NULL, alphasort)) < 0) {
        perror(path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char sub[4096];
        if (list[i]->d_name[0] != '.' &&
            snprintf(sub, sizeof(sub), "%s/%s", path, list[i]->d_name) <
                (int)sizeof(sub) &&
            run_path(sub) < 0)
            r = -1;
        free(list[i]);
    }
    free(list);
    return r;
}

int main(int argc, char **argv)
{
    int r = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (run_path(argv[i]) < 0)
            r = 1;
    printf("%s: %lu inputs\n", argv[0], ran);
    return r;
}
