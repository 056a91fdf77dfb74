/*
 * unit_long.c - the "signals" and "faults" parts: the long forms of two
 * unit tests, harness/tests/test_signals.c (signal storms without
 * SA_RESTART during every blocking call, each timeout checked neither
 * early nor late) and harness/tests/test_faults.c (EMFILE, EAGAIN and
 * ENOMEM at every step of start, pipe, queue and hand-over).  Their short
 * forms run in make check; here each test repeats its rounds for
 * STRESS_SECONDS, and each "stress: ..." line it prints is passed on and
 * kept in the JSON file, under its label, as text.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stress.h"

extern char **environ;

/* The test program, built beside this one: <dir of mp-stress>/tests/name. */
static bool test_path(struct stress_run *r, const char *name, char *path,
                      size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n < 0)
        return stress_fail(r, "readlink /proc/self/exe: %s", strerror(errno));
    self[n] = '\0';
    if ((size_t)snprintf(path, size, "%s/tests/%s", dirname(self), name) >=
        size)
        return stress_fail(r, "the path of %s is too long", name);
    if (access(path, X_OK) != 0)
        return stress_fail(r, "%s: %s (make builds it)", path,
                           strerror(errno));
    return true;
}

/* Runs the test with STRESS_SECONDS=seconds, passing on its "stress:"
 * lines; fails the run when the test fails. */
static void run_long(struct stress_run *r, const char *name, int seconds)
{
    char path[PATH_MAX], env_s[32], line[1024], *argv[] = { NULL, NULL };
    char **env = NULL;
    posix_spawn_file_actions_t fa;
    int fds[2], status, lines = 0, failed = 0;
    size_t nenv = 0;
    pid_t pid;
    FILE *in;

    if (!r->full) {
        snprintf(r->text, sizeof(r->text),
                 "the short form runs in make check's unit tests");
        return;
    }
    if (!test_path(r, name, path, sizeof(path)))
        return;
    argv[0] = path;
    snprintf(env_s, sizeof(env_s), "STRESS_SECONDS=%d", seconds);
    while (environ[nenv] != NULL)
        nenv++;
    if ((env = calloc(nenv + 2, sizeof(*env))) == NULL) {
        stress_fail(r, "out of memory");
        return;
    }
    for (size_t i = 0, k = 0; i < nenv; i++)
        if (strncmp(environ[i], "STRESS_SECONDS=", 15) != 0)
            env[k++] = environ[i];
    for (size_t k = 0;; k++)
        if (env[k] == NULL) {
            env[k] = env_s;
            break;
        }
    if (pipe2(fds, O_CLOEXEC) < 0) {
        free(env);
        stress_fail(r, "pipe: %s", strerror(errno));
        return;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    errno = posix_spawn(&pid, path, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fds[1]);
    if (errno != 0) {
        close(fds[0]);
        stress_fail(r, "posix_spawn %s: %s", path, strerror(errno));
        return;
    }
    if ((in = fdopen(fds[0], "r")) == NULL) {
        close(fds[0]);
        stress_fail(r, "fdopen: %s", strerror(errno));
    } else {
        while (fgets(line, sizeof(line), in) != NULL) {
            char *label = strchr(line, '['), *end;

            line[strcspn(line, "\n")] = '\0';
            if (strncmp(line, "not ok", 6) == 0 && failed++ == 0)
                stress_fail(r, "%s: %s", name, line);
            if (strncmp(line, "stress: ", 8) != 0 || label == NULL ||
                (end = strstr(label, "]: ")) == NULL)
                continue;
            printf("  %s\n", line);
            fflush(stdout);
            *end = '\0';
            json_object_set_new(r->figures, label + 1, json_string(end + 3));
            lines++;
        }
        fclose(in);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        stress_fail(r, "%s ended with status %#x", name, (unsigned)status);
    stress_figure(r, "tests", lines, "%.0f long tests (their lines above)");
}

static void signals(struct stress_run *r) { run_long(r, "test_signals", 20); }
static void faults(struct stress_run *r) { run_long(r, "test_faults", 8); }

STRESS_PART(signals,
            .name = "signals",
            .about = "test_signals' long form: signal storms, every "
                     "blocking call",
            .methods = 0, .order = 90,
            .timeout_full = 600, .timeout_short = 10,
            .run = signals)

STRESS_PART(faults,
            .name = "faults",
            .about = "test_faults' long form: EMFILE, EAGAIN, ENOMEM at "
                     "every step",
            .methods = 0, .order = 91,
            .timeout_full = 600, .timeout_short = 10,
            .run = faults)
