/*
 * shm_check.h - what the SharedMemory tests share: the record of the names
 * they make (MP_SHM_RECORD, which `make run-tests` checks at its end for
 * leftovers in /dev/shm), waits for a name to go, driven by inotify, and
 * the exception line of an error.
 */
#ifndef SHM_CHECK_H
#define SHM_CHECK_H

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

#define SHM_UNUSED __attribute__((unused))

/* Appends name to the file MP_SHM_RECORD names, if set (one write() with
 * O_APPEND: children record too). */
SHM_UNUSED static void shm_record(const char *name)
{
    const char *path = getenv("MP_SHM_RECORD");
    char line[300];
    int fd, n;

    if (path == NULL || path[0] == '\0')
        return;
    n = snprintf(line, sizeof(line), "%s\n", name);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) != n)
            check_diag("could not record %s", name);
        close(fd);
    }
}

/* mp_shm_new() that records the name it made. */
SHM_UNUSED static int shm_new_rec(mp_shm **s, const char *name, int create,
                                  size_t size)
{
    int r = mp_shm_new(s, name, create, size);

    if (r == 0 && create)
        shm_record(mp_shm_name(*s));
    return r;
}

SHM_UNUSED static int shm_exists(const char *name)
{
    char path[300];

    snprintf(path, sizeof(path), "/dev/shm/%s", name);
    return access(path, F_OK) == 0;
}

/* Waits until /dev/shm/name is gone: 1, or 0 after `timeout` seconds
 * (scaled by CHECK_SLOWDOWN).  inotify wakes it for every entry that goes;
 * it looks again each time. */
SHM_UNUSED static int shm_wait_gone(const char *name, double timeout)
{
    double deadline = check_now() + timeout * check_slowdown();
    int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), gone = 0;

    ASSERT_TRUE(ino >= 0);
    ASSERT_TRUE(inotify_add_watch(ino, "/dev/shm",
                                  IN_DELETE | IN_MOVED_FROM) >= 0);
    for (;;) {
        struct pollfd p = { .fd = ino, .events = POLLIN };
        char buf[4096];
        double left = deadline - check_now();
        if (!shm_exists(name)) {
            gone = 1;
            break;
        }
        if (left <= 0)
            break;
        if (poll(&p, 1, (int)(left * 1000) + 1) > 0)
            while (read(ino, buf, sizeof(buf)) > 0)
                ;
    }
    close(ino);
    return gone;
}

/* The line CPython would print for the error r. */
SHM_UNUSED static const char *shm_exc(int r)
{
    static char line[1200];

    mp_format_exception(r, line, sizeof(line));
    return line;
}

#endif /* SHM_CHECK_H */
