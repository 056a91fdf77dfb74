/*
 * test_error.c - error codes, CPython exception names and messages, and
 * mp_raise() (error.c).
 */
#include <errno.h>
#include <pthread.h>

#include "check.h"

TEST(cpython_messages_letter_for_letter)
{
    static const struct { int code; const char *exc, *msg; } want[] = {
        { MP_ESTARTTWICE, "AssertionError", "cannot start a process twice" },
        { MP_ENOTCREATOR, "AssertionError",
          "can only start a process object created by current process" },
        { MP_EDAEMONIC, "AssertionError",
          "daemonic processes are not allowed to have children" },
        { MP_ENOTSTARTEDJOIN, "AssertionError",
          "can only join a started process" },
        { MP_ENOTCHILD, "AssertionError", "can only join a child process" },
        { MP_ENOTCHILDTEST, "AssertionError", "can only test a child process" },
        { MP_EHASSTARTED, "AssertionError", "process has already started" },
        { MP_ENAME, "AssertionError", "name must be a string" },
        { MP_ERUNNING, "ValueError",
          "Cannot close a process while it is still running. You should first "
          "call join() or terminate()." },
        { MP_ECLOSED, "ValueError", "process object is closed" },
        { MP_ENOTSTARTED, "ValueError", "process not started" },
        { MP_ENOPOPENTERM, "AttributeError",
          "'NoneType' object has no attribute 'terminate'" },
        { MP_ENOPOPENKILL, "AttributeError",
          "'NoneType' object has no attribute 'kill'" },
        { MP_ENOCPU, "NotImplementedError", "cannot determine number of cpus" },
    };

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ASSERT_STREQ(want[i].exc, mp_exception_name(want[i].code));
        ASSERT_STREQ(want[i].msg, mp_strerror(want[i].code));
    }
    ASSERT_STREQ("MP_ECLOSED", mp_err_name(MP_ECLOSED));
}

TEST(errno_codes_map_to_oserror_subclasses)
{
    ASSERT_STREQ("ChildProcessError", mp_exception_name(-ECHILD));
    ASSERT_STREQ("ProcessLookupError", mp_exception_name(-ESRCH));
    ASSERT_STREQ("TimeoutError", mp_exception_name(MP_ETIMEDOUT));
    ASSERT_STREQ("PermissionError", mp_exception_name(-EPERM));
    ASSERT_STREQ("BlockingIOError", mp_exception_name(-EAGAIN));
    ASSERT_STREQ("OSError", mp_exception_name(-EIO));
    ASSERT_STREQ("ValueError", mp_exception_name(MP_EINVAL));
    ASSERT_STREQ("ETIMEDOUT", mp_err_name(MP_ETIMEDOUT));
    ASSERT_STREQ("No child processes", mp_strerror(-ECHILD));
    ASSERT_STREQ("unknown error", mp_strerror(-3999));
    ASSERT_STREQ("EUNKNOWN", mp_err_name(-3999));
}

static void *raise_in_thread(void *arg)
{
    (void)arg;
    mp_raise("KeyError", "other thread");
    return NULL;
}

TEST(raise_records_name_and_message_per_thread)
{
    pthread_t t;

    ASSERT_EQ(MP_ERAISED, mp_raise("ValueError", "boom %d", 42));
    ASSERT_STREQ("ValueError", mp_exception_name(MP_ERAISED));
    ASSERT_STREQ("boom 42", mp_strerror(MP_ERAISED));
    ASSERT_EQ(0, pthread_create(&t, NULL, raise_in_thread, NULL));
    ASSERT_EQ(0, pthread_join(t, NULL));
    ASSERT_STREQ("ValueError", mp_exception_name(MP_ERAISED)); /* ours */
    ASSERT_EQ(MP_ERAISED, mp_raise(NULL, NULL));
    ASSERT_STREQ("Exception", mp_exception_name(MP_ERAISED));
    ASSERT_STREQ("", mp_strerror(MP_ERAISED));
}

TEST(format_exception_as_cpython_prints_it)
{
    char buf[256];

    ASSERT_EQ(44, mp_format_exception(MP_ESTARTTWICE, buf, sizeof(buf)));
    ASSERT_STREQ("AssertionError: cannot start a process twice", buf);
    mp_format_exception(-ENOENT, buf, sizeof(buf));
    ASSERT_STREQ("FileNotFoundError: [Errno 2] No such file or directory", buf);
    mp_format_exception(-EIO, buf, sizeof(buf));
    ASSERT_STREQ("OSError: [Errno 5] Input/output error", buf);
    mp_format_exception(MP_EINVAL, buf, sizeof(buf));
    ASSERT_STREQ("ValueError: invalid argument", buf);
    mp_raise("KeyboardInterrupt", NULL);
    mp_format_exception(MP_ERAISED, buf, sizeof(buf));
    ASSERT_STREQ("KeyboardInterrupt", buf);
    ASSERT_EQ(44, mp_format_exception(MP_ESTARTTWICE, buf, 5));
    ASSERT_STREQ("Asse", buf);
}
