/*
 * helper_shm.c - a program unrelated to the tests' processes, for
 * SharedMemory:
 *   helper_shm attach NAME      attaches, prints "size=N data=<text at 0>",
 *                               writes "written by helper_shm" at 300;
 *   helper_shm leftovers FILE   a TAP test: every name FILE lists (one a
 *                               line: what the tests made) is gone from
 *                               /dev/shm, waiting up to 30 s for reapers
 *                               still at work (inotify, not a sleep loop).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "mp.h"

static int attach(const char *name)
{
    mp_shm *s;
    char line[200];
    int r = mp_shm_new(&s, name, 0, 0);

    if (r < 0) {
        mp_format_exception(r, line, sizeof(line));
        fprintf(stderr, "%s\n", line);
        return 1;
    }
    printf("size=%zu data=%.*s\n", mp_shm_size(s),
           (int)strnlen(mp_shm_buf(s), mp_shm_size(s)),
           (char *)mp_shm_buf(s));
    if (mp_shm_size(s) >= 400)
        strcpy((char *)mp_shm_buf(s) + 300, "written by helper_shm");
    mp_shm_free(s);
    return 0;
}

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* How many listed names are still in /dev/shm (diagnostics name them). */
static int count_left(FILE *f, int say)
{
    char name[300], path[320];
    int left = 0;

    rewind(f);
    while (fgets(name, sizeof(name), f) != NULL) {
        name[strcspn(name, "\n")] = '\0';
        if (name[0] == '\0')
            continue;
        snprintf(path, sizeof(path), "/dev/shm/%s", name);
        if (access(path, F_OK) == 0) {
            left++;
            if (say)
                printf("# left in /dev/shm: %s\n", name);
        }
    }
    return left;
}

static int leftovers(const char *file)
{
    FILE *f = fopen(file, "r");
    double deadline = now() + 30;
    int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), left;

    printf("TAP version 13\n1..1\n");
    if (f == NULL) {
        printf("ok 1 - no SharedMemory segment left behind # SKIP "
               "nothing recorded in %s\n", file);
        return 0;
    }
    if (ino < 0 || inotify_add_watch(ino, "/dev/shm", IN_DELETE) < 0) {
        printf("not ok 1 - no SharedMemory segment left behind # inotify\n");
        return 1;
    }
    while ((left = count_left(f, 0)) > 0 && now() < deadline) {
        struct pollfd p = { .fd = ino, .events = POLLIN };
        char buf[4096];
        if (poll(&p, 1, (int)((deadline - now()) * 1000) + 1) > 0)
            while (read(ino, buf, sizeof(buf)) > 0)
                ;
    }
    left = count_left(f, 1);
    printf("%s 1 - no SharedMemory segment left behind\n",
           left == 0 ? "ok" : "not ok");
    fclose(f);
    return left != 0;
}

int main(int argc, char **argv)
{
    mp_main(argc, argv);
    if (argc == 3 && strcmp(argv[1], "attach") == 0)
        return attach(argv[2]);
    if (argc == 3 && strcmp(argv[1], "leftovers") == 0)
        return leftovers(argv[2]);
    fprintf(stderr, "usage: helper_shm attach NAME | leftovers FILE\n");
    return 2;
}
