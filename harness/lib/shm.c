/*
 * shm.c - SharedMemory: a named POSIX shared memory segment, created or
 * attached by name, mapped whole (CPython: multiprocessing/shared_memory.py).
 *
 * Every open of a segment (the creator's and each attacher's) holds a
 * shared flock(2) on its open file description for as long as the segment
 * is mapped: the descriptor is closed once the segment is mapped, and the
 * mapping keeps the description, hence the lock, alive (in fork children
 * too, which inherit the mapping).  The creator also hands its description
 * to its reaper (shm_reaper.c), which keeps it, lock and all, until the
 * creating process has exited, then removes the name once nobody holds a
 * lock any more.  An attacher re-checks, once it holds its lock, that the
 * name still refers to the segment it opened: a name the reaper removed in
 * between is FileNotFoundError, never a mapping of a segment nobody can
 * reach by name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "pyrepr.h"
#ifdef MP_TEST_HOOKS
#include "test_hooks.h"

void (*mp__shm_opened_hook)(const char *name);
#endif

struct mp_shm {
    char *path;  /* "/" + name: CPython's _name, what shm_open() is given */
    size_t size;
    void *buf;   /* NULL once closed */
};

/* An OSError as CPython's os and _posixshmem functions raise it: the
 * subclass for errno, "[Errno N] text" and, when a file is named, ": " and
 * its repr.  EINVAL and ENOMEM stay OSError here (mp_exception_name() maps
 * them as libmp's own argument and allocation errors). */
static int raise_os(int err, const char *path)
{
    const char *exc = err == EINVAL || err == ENOMEM
                          ? "OSError" : mp_exception_name(-err);
    char r[1100];

    if (path == NULL)
        return mp_raise(exc, "[Errno %d] %s", err, strerrordesc_np(err));
    mp__py_repr_str(r, sizeof(r), path);
    return mp_raise(exc, "[Errno %d] %s: %s", err, strerrordesc_np(err), r);
}

/* The name as the file under /dev/shm: glibc's shm_open() drops every
 * leading '/'. */
static const char *base_name(const char *path)
{
    while (*path == '/')
        path++;
    return path;
}

/* CPython's _make_filename(): "/psm_" and 4 random bytes in hex. */
static int make_name(char out[14])
{
    unsigned char b[4];
    ssize_t n;

    do
        n = getrandom(b, sizeof(b), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(b))
        return n < 0 ? -errno : -EIO;
    snprintf(out, 14, "/psm_%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
    return 0;
}

static int lock_shared(int fd)
{
    int r;

    do
        r = flock(fd, LOCK_SH);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

/* The creating open: O_EXCL (a generated name is drawn again while taken,
 * as CPython's loop does), handed to the reaper at once so that a creator
 * killed from here on leaves nothing behind, then locked and sized. */
static int open_new(mp_shm *s, const char *name, size_t size, int *fd)
{
    char gen[14];
    int r;

    for (;;) {
        if (name == NULL && (r = make_name(gen)) < 0)
            return raise_os(-r, NULL);
        if (name == NULL)
            s->path = strdup(gen);
        else if ((s->path = malloc(strlen(name) + 2)) != NULL)
            sprintf(s->path, "/%s", name);
        if (s->path == NULL)
            return -ENOMEM;
        *fd = shm_open(s->path, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (*fd >= 0)
            break;
        r = errno;
        if (name != NULL || r != EEXIST)
            return raise_os(r, s->path);
        free(s->path);
        s->path = NULL;
    }
    mp__shm_track(*fd, base_name(s->path));
    if ((r = lock_shared(*fd)) < 0 || ftruncate(*fd, (off_t)size) < 0) {
        r = r < 0 ? -r : errno;
        shm_unlink(s->path);
        return raise_os(r, NULL);
    }
    s->size = size;
    return 0;
}

/* The attaching open: once locked, the name must still be this segment's
 * (the reaper removes names under an exclusive lock, which a shared one
 * waits for). */
static int open_existing(mp_shm *s, const char *name, int *fd)
{
    char dev_path[sizeof("/dev/shm/") + 256];
    struct stat st, ns;
    int r;

    if ((s->path = malloc(strlen(name) + 2)) == NULL)
        return -ENOMEM;
    sprintf(s->path, "/%s", name);
    *fd = shm_open(s->path, O_RDWR, 0600);
    if (*fd < 0)
        return raise_os(errno, s->path);
#ifdef MP_TEST_HOOKS
    if (mp__shm_opened_hook != NULL)
        mp__shm_opened_hook(mp_shm_name(s));
#endif
    if ((r = lock_shared(*fd)) < 0 || fstat(*fd, &st) < 0)
        return raise_os(r < 0 ? -r : errno, NULL);
    snprintf(dev_path, sizeof(dev_path), "/dev/shm/%s", base_name(s->path));
    if (stat(dev_path, &ns) < 0 || ns.st_dev != st.st_dev ||
        ns.st_ino != st.st_ino)
        return raise_os(ENOENT, s->path);
    if (st.st_size == 0)
        return mp_raise("ValueError", "cannot mmap an empty file");
    if ((uintmax_t)st.st_size > SIZE_MAX)
        return raise_os(EOVERFLOW, NULL);
    s->size = (size_t)st.st_size;
    return 0;
}

int mp_shm_new(mp_shm **out, const char *name, int create, size_t size)
{
    mp_shm *s;
    int fd = -1, r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    /* CPython's checks, in its order; a size_t above SSIZE_MAX is a
     * negative size that was converted. */
    if ((ssize_t)size < 0)
        return mp_raise("ValueError", "'size' must be a positive integer");
    if (create && size == 0)
        return mp_raise("ValueError",
                        "'size' must be a positive number different from zero");
    if (name == NULL && !create)
        return mp_raise("ValueError",
                        "'name' can only be None if create=True");
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return -ENOMEM;
    r = create ? open_new(s, name, size, &fd) : open_existing(s, name, &fd);
    if (r == 0) {
        s->buf = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                      0);
        if (s->buf == MAP_FAILED) {
            s->buf = NULL;
            r = raise_os(errno, NULL);
            /* CPython unlinks here even what it attached; libmp removes
             * only what this call made. */
            if (create)
                shm_unlink(s->path);
        }
    }
    fd = mp__fd_close(fd);
    if (r < 0) {
        free(s->path);
        free(s);
        return r;
    }
    *out = s;
    return 0;
}

const char *mp_shm_name(const mp_shm *s)
{
    return s != NULL ? s->path + 1 : NULL;
}

size_t mp_shm_size(const mp_shm *s)
{
    return s != NULL ? s->size : 0;
}

void *mp_shm_buf(mp_shm *s)
{
    return s != NULL ? s->buf : NULL;
}

int mp_shm_close(mp_shm *s)
{
    if (s == NULL)
        return MP_EINVAL;
    /* The lock goes with the mapping (never LOCK_UN: a fork child that
     * inherited the mapping shares the lock, and still uses the segment). */
    if (s->buf != NULL)
        munmap(s->buf, s->size);
    s->buf = NULL;
    return 0;
}

int mp_shm_unlink(mp_shm *s)
{
    if (s == NULL)
        return MP_EINVAL;
    if (shm_unlink(s->path) < 0)
        return raise_os(errno, s->path);
    return 0;
}

int mp_shm_repr(const mp_shm *s, char *buf, size_t size)
{
    char r[1100];

    if (s == NULL)
        return MP_EINVAL;
    mp__py_repr_str(r, sizeof(r), mp_shm_name(s));
    return snprintf(buf, size, "SharedMemory(%s, size=%zu)", r, s->size);
}

mp_shm *mp_shm_free(mp_shm *s)
{
    if (s != NULL) {
        mp_shm_close(s);
        free(s->path);
        free(s);
    }
    return NULL;
}
