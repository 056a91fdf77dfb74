/*
 * test_live.c - telling a thread dead by its identity (live.c): threads and
 * processes that live, ended, or are zombies; ids a peer wrote; namespaces
 * that differ; a fork child's own identity.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "live.h"

static struct mp__thread_id self_id(void)
{
    struct mp__thread_id id;

    if (!mp__thread_self(&id))
        check_skip("this thread cannot be told dead here (/proc)");
    return id;
}

static void *record(void *arg)
{
    ASSERT_TRUE(mp__thread_self(arg));
    return NULL;
}

TEST(this_thread_lives)
{
    struct mp__thread_id id = self_id();

    ASSERT_EQ(getpid(), id.pid);
    ASSERT_TRUE(id.start != 0 && id.ns != 0);
    ASSERT_TRUE(!mp__thread_dead(&id));
}

TEST(a_thread_that_ended_is_dead)
{
    struct mp__thread_id me = self_id(), id;
    pthread_t t;

    ASSERT_EQ(0, pthread_create(&t, NULL, record, &id));
    ASSERT_EQ(0, pthread_join(t, NULL));
    ASSERT_EQ(me.pid, id.pid);
    ASSERT_TRUE(id.tid != me.tid);
    ASSERT_TRUE(mp__thread_dead(&id));
}

/* A child that lives, then a zombie, then reaped. */
TEST(a_process_is_dead_once_it_ends)
{
    struct mp__thread_id id;
    int up[2], down[2], st;
    siginfo_t si;
    char c = 0;
    pid_t pid;

    self_id();
    ASSERT_EQ(0, pipe(up));
    ASSERT_EQ(0, pipe(down));
    fflush(stdout);
    if ((pid = fork()) == 0) {
        bool ok = mp__thread_self(&id);
        if (!ok || write(up[1], &id, sizeof(id)) != (ssize_t)sizeof(id) ||
            read(down[0], &c, 1) != 1)
            _exit(1);
        _exit(0);
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(sizeof(id), read(up[0], &id, sizeof(id)));
    ASSERT_EQ(pid, id.pid); /* its own, not its parent's */
    ASSERT_EQ(pid, id.tid);
    ASSERT_TRUE(!mp__thread_dead(&id));
    id.start++; /* the same tid, another thread */
    ASSERT_TRUE(mp__thread_dead(&id));
    id.start--;
    ASSERT_EQ(1, write(down[1], &c, 1));
    ASSERT_EQ(0, waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT));
    ASSERT_TRUE(mp__thread_dead(&id)); /* a zombie */
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    ASSERT_EQ(0, st);
    ASSERT_TRUE(mp__thread_dead(&id));
}

/* What a peer may write: ids no thread has are nobody's, so dead; ids
 * of another namespace, or no namespace, cannot be told. */
TEST(ids_a_peer_wrote)
{
    struct mp__thread_id me = self_id(), id;
    const int32_t bad[] = { 0, -1, (1 << 22) + 1, INT32_MAX };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        id = me;
        id.pid = bad[i];
        ASSERT_TRUE(mp__thread_dead(&id));
        id = me;
        id.tid = bad[i];
        ASSERT_TRUE(mp__thread_dead(&id));
    }
    id = me;
    id.pid = bad[0];
    id.ns++;
    ASSERT_TRUE(!mp__thread_dead(&id));
    id.ns = 0;
    ASSERT_TRUE(!mp__thread_dead(&id));
    id = me;
    id.pid = bad[0];
    id.tns++;
    ASSERT_TRUE(!mp__thread_dead(&id));
}
