/*
 * check.h - a small kselftest-style unit test harness printing TAP 13.
 *
 * TEST(name) { ... } registers a test before main() runs.  check.c's main()
 * runs each test in its own forked process and process group under a
 * deadline, then kills whatever the test left behind: a test that hangs,
 * crashes or leaks a process fails alone and names the problem.  The runner
 * is a child subreaper, so a test's orphaned grandchildren come back to it.
 *
 * Environment: CHECK_TIMEOUT (seconds a test may take, default 60, and
 * twice STRESS_SECONDS more when that is set), CHECK_SLOWDOWN (factor for
 * tolerance windows, e.g. under valgrind), STRESS_SECONDS (a test that has
 * a long form runs it for about that many seconds: the stress suite).
 * Arguments: substrings; only tests whose name contains one of them run.
 */
#ifndef CHECK_H
#define CHECK_H

#include <semaphore.h>
#include <stdio.h>
#include <string.h>

#include "mp.h"

/* Which sanitizer a test program is built with (1, else 0): a test whose
 * mechanism a sanitizer defeats skips there, saying why. */
#if defined(__SANITIZE_ADDRESS__)
#define CHECK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHECK_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CHECK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHECK_TSAN 1
#endif
#endif
#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
#define CHECK_MSAN 1
#endif
#endif
#ifndef CHECK_ASAN
#define CHECK_ASAN 0
#endif
#ifndef CHECK_TSAN
#define CHECK_TSAN 0
#endif
#ifndef CHECK_MSAN
#define CHECK_MSAN 0
#endif

typedef void (*check_fn)(void);

void check_register(const char *name, check_fn fn);
_Noreturn void check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints a TAP diagnostic line ("# ..."). */
void check_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes a formatted message to fd in one write() (children report to the
 * test this way); _exit(99) if it cannot. */
void check_say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Marks the running test as skipped, with a reason, and ends it. */
_Noreturn void check_skip(const char *reason);
/* CHECK_SLOWDOWN: multiply the upper bounds of timing windows by this. */
double check_slowdown(void);
/* Forks a child whose stdout is a pipe and calls child(arg) there (it
 * execs, or _exit()s; returning is _exit(127)); reads what the child and
 * its descendants write until EOF into out (NUL-terminated, at most size -
 * 1 bytes) and returns the child's wait status. */
int check_output(void (*child)(void *), void *arg, char *out, size_t size);
/* Whether libmp runs on pidfds here (not on its pipe fallback: forced by
 * LIBMP_NO_PIDFD, or no pidfd_open, as under valgrind 3.19). */
int check_uses_pidfds(void);
/* CLOCK_MONOTONIC seconds, for measuring durations in tests. */
double check_now(void);
/* A thread about to block announces itself (check_announce(), from that
 * thread); check_await_asleep() waits for the announcement, then until the
 * kernel reports the thread asleep (state S in /proc), failing the test
 * after 30 s times CHECK_SLOWDOWN.  Nothing but /proc says a thread
 * sleeps, hence short sleeps between its reads.  A thread that waits
 * for valgrind's scheduler is in state S too: a test passes either way,
 * it only checks less. */
struct check_sleeper {
    sem_t ready;
    int tid;
};
void check_sleeper_init(struct check_sleeper *s);
void check_sleeper_destroy(struct check_sleeper *s);
void check_announce(struct check_sleeper *s);
void check_await_asleep(struct check_sleeper *s);
/* STRESS_SECONDS: how long a test with a long form runs it; 0 (unset):
 * the short form that make check runs. */
double check_stress_seconds(void);

#define TEST(name)                                                            \
    static void test_##name(void);                                            \
    __attribute__((constructor)) static void check_reg_##name(void)           \
    {                                                                         \
        check_register(#name, test_##name);                                   \
    }                                                                         \
    static void test_##name(void)

#define ASSERT_TRUE(cond)                                                     \
    do {                                                                      \
        if (!(cond))                                                          \
            check_fail(__FILE__, __LINE__, "expected true: %s", #cond);       \
    } while (0)

#define ASSERT_EQ(expected, actual)                                           \
    do {                                                                      \
        long long e_ = (long long)(expected), a_ = (long long)(actual);       \
        if (e_ != a_)                                                         \
            check_fail(__FILE__, __LINE__, "%s == %s: expected %lld, got %lld"\
                       "%s%s", #expected, #actual, e_, a_,                    \
                       a_ < 0 && a_ > -5000 ? " = " : "",                     \
                       a_ < 0 && a_ > -5000 ? mp_err_name((int)a_) : "");     \
    } while (0)

#define ASSERT_STREQ(expected, actual)                                        \
    do {                                                                      \
        const char *e_ = (expected), *a_ = (actual);                          \
        if (a_ == NULL || strcmp(e_, a_) != 0)                                \
            check_fail(__FILE__, __LINE__, "%s: expected \"%s\", got \"%s\"", \
                       #actual, e_, a_ != NULL ? a_ : "(null)");              \
    } while (0)

/* A libmp call that must succeed (return >= 0). */
#define ASSERT_OK(call)                                                       \
    do {                                                                      \
        int r_ = (call);                                                      \
        if (r_ < 0)                                                           \
            check_fail(__FILE__, __LINE__, "%s failed: %s (%s: %s)", #call,   \
                       mp_err_name(r_), mp_exception_name(r_),                \
                       mp_strerror(r_));                                      \
    } while (0)

/* lo <= value <= hi, for durations (hi is scaled by CHECK_SLOWDOWN). */
#define ASSERT_WITHIN(lo, hi, value)                                          \
    do {                                                                      \
        double l_ = (lo), h_ = (hi) * check_slowdown(), v_ = (value);         \
        if (!(v_ >= l_ && v_ <= h_))                                          \
            check_fail(__FILE__, __LINE__, "%s = %.6f, not in [%.6f, %.6f]",  \
                       #value, v_, l_, h_);                                   \
    } while (0)

#endif /* CHECK_H */
