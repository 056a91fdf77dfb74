/*
 * test_shm_death.c - the lifetime of SharedMemory segments when processes
 * die (shm_reaper.c): a segment is never removed while a process maps it,
 * its creator's included, and its name goes once every user has gone,
 * SIGKILL included.  Creators are spawn children (each has a reaper of its
 * own); attachers are fork children.  That the reaper has seen a creator
 * die and waits is read from /proc/locks (its exclusive request, blocked).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/close_range.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "shm_check.h"
#include "test_hooks.h"

enum { PAUSE, CLOSE_ON_GO, FORK_HOLDER, EXIT_ON_GO, MANY, MORE_ON_GO };

/* Creates segments and reports their names and its reaper's pid on q,
 * then, by mode: pauses until killed; closes without unlinking when `go`
 * is set, says "closed", and returns when `end` is set; forks a raw child
 * that keeps the inherited mapping (its pid on q), closes, pauses; returns
 * when `go` is set; makes 20 segments, closes them all, pauses; makes 3
 * more when `go` is set (their names on q), pauses. */
MP_TARGET(creator)
{
    mp_queue *q = mp_args_queue(args, 0);
    mp_event *go = mp_args_event(args, 1), *end = mp_args_event(args, 2);
    long long mode = mp_args_int(args, 3);
    int n = mode == MANY ? 20 : 1;
    mp_shm *s[20];

    for (int i = 0; i < n; i++) {
        mp_check(mp_shm_new(&s[i], NULL, 1, 4096));
        shm_record(mp_shm_name(s[i]));
        strcpy(mp_shm_buf(s[i]), "alive");
        mp_check(mp_queue_put_str(q, mp_shm_name(s[i])));
    }
    mp_check(mp_queue_put_i64(q, mp__shm_reaper_pid()));
    switch (mode) {
    case CLOSE_ON_GO:
        mp_event_wait(go, MP_FOREVER);
        mp_shm_close(s[0]);
        mp_check(mp_queue_put_str(q, "closed"));
        mp_event_wait(end, MP_FOREVER);
        mp_shm_free(s[0]);
        return 0;
    case FORK_HOLDER: {
        pid_t pid = fork();
        if (pid == 0) {
            /* Only the mapping: a sentinel pipe's end held here would
             * keep the creator's join (pidfd-less, as under valgrind)
             * waiting for this child too. */
            close_range(3, ~0U, 0);
            for (;;)
                pause();
        }
        mp_check(mp_queue_put_i64(q, pid));
        mp_shm_close(s[0]);
        break;
    }
    case EXIT_ON_GO:
        mp_event_wait(go, MP_FOREVER);
        mp_shm_free(s[0]);
        return 0;
    case MANY:
        for (int i = 0; i < n; i++)
            mp_shm_close(s[i]);
        break;
    case MORE_ON_GO:
        mp_event_wait(go, MP_FOREVER);
        for (int i = 1; i < 4; i++) {
            mp_check(mp_shm_new(&s[i], NULL, 1, 4096));
            shm_record(mp_shm_name(s[i]));
            mp_check(mp_queue_put_str(q, mp_shm_name(s[i])));
        }
        break;
    }
    for (;;)
        pause();
}

/* Attaches to every name given after the event, sets the event, pauses. */
MP_TARGET(attacher)
{
    mp_shm *s;

    for (size_t i = 1; i < mp_args_count(args); i++) {
        mp_check(mp_shm_new(&s, mp_args_str(args, i), 0, 0));
        if (strcmp(mp_shm_buf(s), "alive") != 0)
            return 3;
    }
    mp_check(mp_event_set(mp_args_event(args, 0)));
    for (;;)
        pause();
}

struct creator {
    mp_process *p;
    mp_queue *q;
    mp_event *go, *end;
    char *names[20];
    int n;
    long long reaper;
};

static void start_creator(struct creator *c, int mode)
{
    mp_process_options o = { 0 };

    memset(c, 0, sizeof(*c));
    c->n = mode == MANY ? 20 : 1;
    ASSERT_OK(mp_queue_new(&c->q, 0));
    ASSERT_OK(mp_event_new(&c->go));
    ASSERT_OK(mp_event_new(&c->end));
    ASSERT_OK(mp_get_context(&o.context, "spawn"));
    ASSERT_OK(mp_process_create(&c->p, &creator_target,
                                MP_ARGS(c->q, c->go, c->end, mode), &o));
    ASSERT_OK(mp_process_start(c->p));
    for (int i = 0; i < c->n; i++) {
        ASSERT_OK(mp_queue_get_str(c->q, &c->names[i], 60));
        shm_record(c->names[i]);
    }
    ASSERT_OK(mp_queue_get_i64(c->q, &c->reaper, 60));
    ASSERT_TRUE(c->reaper > 0);
}

static void end_creator(struct creator *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->names[i]);
    mp_process_free(c->p);
    mp_queue_free(c->q);
    mp_event_free(c->go);
    mp_event_free(c->end);
}

/* A fork child attached to names[0..n). */
static mp_process *start_attacher(char **names, int n)
{
    mp_process_options o = { 0 };
    mp_arg v[21];
    mp_event *ready;
    mp_process *p;

    ASSERT_TRUE(n <= 20);
    ASSERT_OK(mp_event_new(&ready));
    v[0] = mp_arg_event(ready);
    for (int i = 0; i < n; i++)
        v[i + 1] = mp_arg_str(names[i]);
    ASSERT_OK(mp_get_context(&o.context, "fork"));
    ASSERT_OK(mp_process_create(&p, &attacher_target, v, (size_t)n + 1, &o));
    ASSERT_OK(mp_process_start(p));
    ASSERT_EQ(1, mp_event_wait(ready, 60));
    mp_event_free(ready);
    return p;
}

static void kill_it(mp_process *p)
{
    int code = 0;

    ASSERT_OK(mp_process_kill(p));
    ASSERT_OK(mp_process_join(p, 60));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(-SIGKILL, code);
}

/* Waits until /proc/locks shows an exclusive flock request blocked on the
 * segment `name` (the reaper's): the reaper has seen its creator go and
 * waits for the users left.  /proc is the only witness, hence the naps. */
static void await_reaper_waiting(const char *name)
{
    char path[300], line[256], ino[40];
    double deadline = check_now() + 30 * check_slowdown();
    struct stat st;

    snprintf(path, sizeof(path), "/dev/shm/%s", name);
    if (stat(path, &st) < 0)
        check_fail(__FILE__, __LINE__, "%s was removed while in use", name);
    snprintf(ino, sizeof(ino), ":%lu ", (unsigned long)st.st_ino);
    for (;;) {
        FILE *f = fopen("/proc/locks", "r");
        int seen = 0;
        ASSERT_TRUE(f != NULL);
        while (!seen && fgets(line, sizeof(line), f) != NULL)
            seen = strstr(line, "-> FLOCK") != NULL &&
                   strstr(line, "WRITE") != NULL && strstr(line, ino) != NULL;
        fclose(f);
        if (seen)
            return;
        if (check_now() > deadline)
            check_fail(__FILE__, __LINE__, "no reaper waits on %s", name);
        nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
    }
}

/* The reaper is gone once it has nothing left to do. */
static void await_exit(long long pid)
{
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    struct pollfd p = { .fd = fd, .events = POLLIN };

    if (fd < 0) {
        ASSERT_TRUE(errno == ESRCH || errno == ENOSYS);
        return;
    }
    ASSERT_EQ(1, poll(&p, 1, (int)(30000 * check_slowdown())));
    close(fd);
}

static void attach_and_check(const char *name)
{
    mp_shm *s;

    ASSERT_OK(mp_shm_new(&s, name, 0, 0));
    ASSERT_STREQ("alive", (char *)mp_shm_buf(s));
    mp_shm_free(s);
}

TEST(creator_killed_while_an_attacher_lives)
{
    struct creator c;
    mp_process *a;

    start_creator(&c, PAUSE);
    a = start_attacher(c.names, 1);
    kill_it(c.p);
    await_reaper_waiting(c.names[0]);
    ASSERT_TRUE(shm_exists(c.names[0]));
    attach_and_check(c.names[0]);
    kill_it(a);
    ASSERT_EQ(1, shm_wait_gone(c.names[0], 30));
    await_exit(c.reaper);
    mp_process_free(a);
    end_creator(&c);
}

TEST(an_attacher_killed_leaves_the_segment_to_its_live_creator)
{
    struct creator c;
    mp_process *a;
    char *said;
    int code = -1;

    start_creator(&c, CLOSE_ON_GO);
    a = start_attacher(c.names, 1);
    kill_it(a);
    ASSERT_TRUE(shm_exists(c.names[0]));
    attach_and_check(c.names[0]);
    /* Closed without unlink: attachable while the creator lives. */
    ASSERT_OK(mp_event_set(c.go));
    ASSERT_OK(mp_queue_get_str(c.q, &said, 60));
    ASSERT_STREQ("closed", said);
    free(said);
    attach_and_check(c.names[0]);
    ASSERT_OK(mp_event_set(c.end));
    ASSERT_OK(mp_process_join(c.p, 60));
    ASSERT_EQ(1, mp_process_exitcode(c.p, &code));
    ASSERT_EQ(0, code);
    ASSERT_EQ(1, shm_wait_gone(c.names[0], 30));
    await_exit(c.reaper);
    mp_process_free(a);
    end_creator(&c);
}

TEST(everyone_killed)
{
    struct creator c;
    mp_process *a;

    start_creator(&c, PAUSE);
    a = start_attacher(c.names, 1);
    kill_it(a);
    kill_it(c.p);
    ASSERT_EQ(1, shm_wait_gone(c.names[0], 30));
    await_exit(c.reaper);
    mp_process_free(a);
    end_creator(&c);
}

TEST(a_fork_child_holding_the_inherited_mapping_is_a_user)
{
    struct creator c;
    long long holder;

    start_creator(&c, FORK_HOLDER);
    ASSERT_OK(mp_queue_get_i64(c.q, &holder, 60));
    ASSERT_TRUE(holder > 0);
    kill_it(c.p);
    await_reaper_waiting(c.names[0]);
    ASSERT_TRUE(shm_exists(c.names[0]));
    attach_and_check(c.names[0]);
    ASSERT_EQ(0, kill((pid_t)holder, SIGKILL));
    ASSERT_EQ(1, shm_wait_gone(c.names[0], 30));
    end_creator(&c);
}

TEST(many_segments_go_as_their_users_do)
{
    struct creator c;
    mp_process *a;

    start_creator(&c, MANY);
    a = start_attacher(c.names, 10); /* the first ten are in use */
    kill_it(c.p);
    for (int i = 10; i < 20; i++)
        ASSERT_EQ(1, shm_wait_gone(c.names[i], 30));
    for (int i = 0; i < 10; i++) {
        await_reaper_waiting(c.names[i]);
        ASSERT_TRUE(shm_exists(c.names[i]));
    }
    kill_it(a);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(1, shm_wait_gone(c.names[i], 30));
    await_exit(c.reaper);
    mp_process_free(a);
    end_creator(&c);
}

static struct creator *racing;

/* Between the attacher's open and its lock: the creator exits and the
 * reaper removes the name (the open description holds no lock yet). */
static void let_the_reaper_win(const char *name)
{
    int code = -1;

    ASSERT_OK(mp_event_set(racing->go));
    ASSERT_OK(mp_process_join(racing->p, 60));
    ASSERT_EQ(1, mp_process_exitcode(racing->p, &code));
    ASSERT_EQ(0, code);
    ASSERT_EQ(1, shm_wait_gone(name, 30));
}

TEST(an_attach_that_loses_the_race_with_the_reaper_is_filenotfound)
{
    struct creator c;
    char want[200];
    mp_shm *s;
    int r;

    start_creator(&c, EXIT_ON_GO);
    racing = &c;
    mp__shm_opened_hook = let_the_reaper_win;
    r = mp_shm_new(&s, c.names[0], 0, 0);
    mp__shm_opened_hook = NULL;
    snprintf(want, sizeof(want),
             "FileNotFoundError: [Errno 2] No such file or directory: '/%s'",
             c.names[0]);
    ASSERT_EQ(MP_ERAISED, r);
    ASSERT_STREQ(want, shm_exc(r));
    end_creator(&c);
}

TEST(a_killed_reaper_is_replaced_and_loses_nothing)
{
    mp_shm *s1, *s2;
    pid_t first;

    int fd;

    ASSERT_OK(shm_new_rec(&s1, NULL, 1, 100));
    first = mp__shm_reaper_pid();
    ASSERT_TRUE(first > 0);
    /* Its death must be seen before the next create (a pidfd). */
    fd = (int)syscall(SYS_pidfd_open, first, 0);
    if (fd < 0) {
        mp_shm_unlink(s1);
        mp_shm_free(s1);
        check_skip("no pidfds here (valgrind): nothing to await a death by");
    }
    close(fd);
    ASSERT_EQ(0, kill(first, SIGKILL));
    await_exit(first);
    /* Its segment stays (nothing unlinks it any more but unlink()). */
    ASSERT_TRUE(shm_exists(mp_shm_name(s1)));
    ASSERT_OK(mp_shm_close(s1));
    ASSERT_TRUE(shm_exists(mp_shm_name(s1)));
    ASSERT_OK(shm_new_rec(&s2, NULL, 1, 100));
    ASSERT_TRUE(mp__shm_reaper_pid() > 0);
    ASSERT_TRUE(mp__shm_reaper_pid() != first);
    ASSERT_OK(mp_shm_unlink(s1));
    ASSERT_OK(mp_shm_unlink(s2));
    mp_shm_free(s1);
    mp_shm_free(s2);
}

/* The reaper's descriptors: their count, and whether /dev/shm/name is one
 * of them; -1 when the numbers have a gap. */
static int reaper_fds(long long pid, const char *name, int *holds)
{
    char dir[64], link[400], target[400], want[300];
    DIR *d;
    struct dirent *e;
    int n = 0, top = -1;

    snprintf(dir, sizeof(dir), "/proc/%lld/fd", pid);
    snprintf(want, sizeof(want), "/dev/shm/%s", name);
    *holds = 0;
    ASSERT_TRUE((d = opendir(dir)) != NULL);
    while ((e = readdir(d)) != NULL) {
        ssize_t k;
        if (e->d_name[0] == '.')
            continue;
        n++;
        if (atoi(e->d_name) > top)
            top = atoi(e->d_name);
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        k = readlink(link, target, sizeof(target) - 1);
        target[k > 0 ? k : 0] = '\0';
        *holds |= strcmp(target, want) == 0;
    }
    closedir(d);
    return top + 1 == n ? n : -1;
}

/* Waits until the reaper holds /dev/shm/name; its descriptor count then
 * (/proc is the only witness, hence the naps). */
static int await_reaper_holds(long long pid, const char *name)
{
    double deadline = check_now() + 30 * check_slowdown();
    int holds, n;

    for (;;) {
        n = reaper_fds(pid, name, &holds);
        if (holds)
            return n;
        if (check_now() > deadline)
            check_fail(__FILE__, __LINE__, "the reaper never took %s", name);
        nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
    }
}

TEST(a_reaper_at_its_descriptor_limit_removes_all_it_holds)
{
    struct creator c;
    struct rlimit rl;
    int n;

    start_creator(&c, MORE_ON_GO);
    n = await_reaper_holds(c.reaper, c.names[0]);
    if (n < 0)
        check_skip("the reaper's descriptors have a gap");
    /* Room for exactly three more: every one taken once they are in. */
    rl.rlim_cur = rl.rlim_max = (rlim_t)n + 3;
    ASSERT_EQ(0, prlimit((pid_t)c.reaper, RLIMIT_NOFILE, &rl, NULL));
    ASSERT_OK(mp_event_set(c.go));
    for (int i = 1; i < 4; i++) {
        ASSERT_OK(mp_queue_get_str(c.q, &c.names[i], 60));
        shm_record(c.names[i]);
    }
    c.n = 4;
    ASSERT_EQ(n + 3, await_reaper_holds(c.reaper, c.names[3]));
    kill_it(c.p);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(1, shm_wait_gone(c.names[i], 30));
    await_exit(c.reaper);
    end_creator(&c);
}
