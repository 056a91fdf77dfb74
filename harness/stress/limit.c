/*
 * limit.c - the stress suite's limit on its processes (stress.h): a fork
 * loop gone wrong must hit a wall, not the machine.
 *
 * RLIMIT_NPROC counts every task (thread) of the real user, and the kernel
 * does not apply it to root (nor to CAP_SYS_RESOURCE or CAP_SYS_ADMIN).  So
 * the driver sets it to what the user has now plus the allowance and, as
 * root, also moves itself into a pids cgroup of its own (pids.max: the
 * allowance) where a pids hierarchy is mounted and writable, v2 or v1.  It
 * moves back and removes the cgroup at the end; a cgroup left by a run
 * that was killed is empty and removed by the next run.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stress.h"

static char cg_dir[4096];  /* the cgroup made, or "" */
static char cg_home[4096]; /* the cgroup.procs to go back to */

/* Tasks (threads) of the real user uid, from /proc/<pid>/status. */
static long user_tasks(uid_t uid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long n = 0;

    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[300], line[256];
        long real = -1, threads = 0;
        FILE *f;

        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%.20s/status", e->d_name);
        if ((f = fopen(path, "re")) == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "Uid:", 4) == 0)
                real = strtol(line + 4, NULL, 10);
            else if (strncmp(line, "Threads:", 8) == 0)
                threads = strtol(line + 8, NULL, 10);
        }
        fclose(f);
        if (real == (long)uid)
            n += threads;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;
    size_t len = strlen(text);

    if (fd < 0)
        return -errno;
    if (write(fd, text, len) != (ssize_t)len)
        r = -errno;
    close(fd);
    return r;
}

/* The directory of this process's cgroup in the pids hierarchy: a cgroup2
 * mount whose root holds pids (0::path), or a v1 mount with pids (N:pids:
 * path), the mount's own root taken off the path.  1 when found. */
static int pids_cgroup(char *dir, size_t size)
{
    FILE *mi = fopen("/proc/self/mountinfo", "re");
    char line[4096], root[1024], mnt[1024], fstype[64], super[1024];
    char cgpath[2048] = "", v1path[2048] = "";
    int found = 0;
    FILE *cg = fopen("/proc/self/cgroup", "re");

    while (cg != NULL && fgets(line, sizeof(line), cg) != NULL) {
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;

        if (b == NULL)
            continue;
        b[strcspn(b, "\n")] = '\0';
        if (strncmp(line, "0::", 3) == 0)
            snprintf(cgpath, sizeof(cgpath), "%s", b + 1);
        else if (strncmp(a + 1, "pids:", 5) == 0)
            snprintf(v1path, sizeof(v1path), "%s", b + 1);
    }
    if (cg != NULL)
        fclose(cg);
    while (!found && mi != NULL && fgets(line, sizeof(line), mi) != NULL) {
        char *dash = strstr(line, " - ");
        const char *path, *rel;
        char ctl[4200];

        if (dash == NULL ||
            sscanf(line, "%*s %*s %*s %1023s %1023s", root, mnt) != 2 ||
            sscanf(dash + 3, "%63s %*s %1023s", fstype, super) != 2)
            continue;
        if (strcmp(fstype, "cgroup2") == 0)
            path = cgpath;
        else if (strcmp(fstype, "cgroup") == 0 &&
                 strstr(super, "pids") != NULL)
            path = v1path;
        else
            continue;
        if (path[0] == '\0')
            continue;
        rel = strncmp(path, root, strlen(root)) == 0 && strcmp(root, "/")
                  ? path + strlen(root) : path;
        if (snprintf(dir, size, "%s%s", mnt, strcmp(rel, "/") ? rel : "") >=
            (int)size)
            continue; /* too long a path to hold */
        snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", dir);
        if (strcmp(fstype, "cgroup2") == 0) {
            FILE *c = fopen(ctl, "re");
            char ctls[512] = "";

            if (c != NULL) {
                if (fgets(ctls, sizeof(ctls), c) == NULL)
                    ctls[0] = '\0';
                fclose(c);
            }
            found = strstr(ctls, "pids") != NULL;
        } else {
            found = 1;
        }
    }
    if (mi != NULL)
        fclose(mi);
    return found;
}

/* Removes the empty cgroups that killed runs left in dir. */
static void remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[4500];

        if (strncmp(e->d_name, "mp-stress.", 10) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (kill((pid_t)atol(e->d_name + 10), 0) < 0 && errno == ESRCH)
            rmdir(path); /* fails, harmlessly, while it has processes */
    }
    if (d != NULL)
        closedir(d);
}

static int cgroup_limit(long n)
{
    char dir[2048], path[4600], num[32];

    if (!pids_cgroup(dir, sizeof(dir)))
        return -ENOENT;
    remove_stale(dir);
    snprintf(cg_dir, sizeof(cg_dir), "%s/mp-stress.%ld", dir, (long)getpid());
    snprintf(cg_home, sizeof(cg_home), "%s/cgroup.procs", dir);
    if (mkdir(cg_dir, 0755) < 0 && errno != EEXIST) {
        cg_dir[0] = '\0';
        return -errno;
    }
    snprintf(num, sizeof(num), "%ld", n);
    snprintf(path, sizeof(path), "%s/pids.max", cg_dir);
    if (write_file(path, num) < 0)
        goto fail;
    snprintf(num, sizeof(num), "%ld", (long)getpid());
    snprintf(path, sizeof(path), "%s/cgroup.procs", cg_dir);
    if (write_file(path, num) < 0)
        goto fail;
    return 0;
fail:
    rmdir(cg_dir);
    cg_dir[0] = '\0';
    return -EPERM;
}

void stress_limit_procs(long n, char *buf, size_t size)
{
    long used = user_tasks(getuid());
    struct rlimit rl;

    if (getrlimit(RLIMIT_NPROC, &rl) == 0 &&
        (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)(used + n))) {
        rl.rlim_cur = (rlim_t)(used + n);
        setrlimit(RLIMIT_NPROC, &rl);
    }
    if (geteuid() != 0) {
        snprintf(buf, size, "process limit: RLIMIT_NPROC %ld (%ld above the "
                 "user's %ld tasks)", used + n, n, used);
        return;
    }
    if (cgroup_limit(n) == 0)
        snprintf(buf, size, "process limit: %ld tasks (pids cgroup %s)", n,
                 cg_dir);
    else
        snprintf(buf, size, "no process limit: root is exempt from "
                 "RLIMIT_NPROC and no pids cgroup could be made");
}

void stress_unlimit_procs(void)
{
    char num[32];

    if (cg_dir[0] == '\0')
        return;
    snprintf(num, sizeof(num), "%ld", (long)getpid());
    write_file(cg_home, num);
    rmdir(cg_dir);
    cg_dir[0] = '\0';
}
