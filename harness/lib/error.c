/*
 * error.c - error codes, their CPython exception names and messages, and
 * mp_raise() (CPython: the exceptions process.py raises; PEP 3151's mapping
 * of errno values to OSError subclasses).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Codes above this are -errno; below it, libmp's own (MP_E*). */
#define MP__ERRNO_MAX (-4000)

struct mp_error_info {
    int code;
    const char *name;
    const char *exception;
    const char *message;
};

#define MP__ERROR_INFO(name, code, exc, msg) { code, "MP_" #name, exc, msg },
static const struct mp_error_info errors[] = { MP_ERROR_MAP(MP__ERROR_INFO) };
#undef MP__ERROR_INFO

/* errno values CPython raises as a subclass of OSError (PEP 3151). */
static const struct { int err; const char *exception; } os_errors[] = {
    { EAGAIN, "BlockingIOError" },    { EALREADY, "BlockingIOError" },
    { EINPROGRESS, "BlockingIOError" }, { ECHILD, "ChildProcessError" },
    { EPIPE, "BrokenPipeError" },     { ESHUTDOWN, "BrokenPipeError" },
    { ECONNABORTED, "ConnectionAbortedError" },
    { ECONNREFUSED, "ConnectionRefusedError" },
    { ECONNRESET, "ConnectionResetError" }, { EEXIST, "FileExistsError" },
    { ENOENT, "FileNotFoundError" },  { EINTR, "InterruptedError" },
    { EISDIR, "IsADirectoryError" },  { ENOTDIR, "NotADirectoryError" },
    { EACCES, "PermissionError" },    { EPERM, "PermissionError" },
    { ESRCH, "ProcessLookupError" },  { ETIMEDOUT, "TimeoutError" },
    /* Not OSError in CPython: a failed allocation and a bad argument. */
    { ENOMEM, "MemoryError" },        { EINVAL, "ValueError" },
};

static _Thread_local char raised_exception[64];
static _Thread_local char raised_message[512];

static const struct mp_error_info *find(int err)
{
    for (size_t i = 0; i < ARRAY_SIZE(errors); i++)
        if (errors[i].code == err)
            return &errors[i];
    return NULL;
}

const char *mp_strerror(int err)
{
    const struct mp_error_info *e = find(err);
    const char *s;

    if (err == MP_ERAISED && raised_exception[0] != '\0')
        return raised_message;
    if (e != NULL)
        return e->message;
    if (err == MP_EINVAL)
        return "invalid argument";
    s = err < 0 ? strerrordesc_np(-err) : NULL;
    return s != NULL ? s : "unknown error";
}

const char *mp_exception_name(int err)
{
    const struct mp_error_info *e = find(err);

    if (err == MP_ERAISED && raised_exception[0] != '\0')
        return raised_exception;
    if (e != NULL)
        return e->exception;
    for (size_t i = 0; i < ARRAY_SIZE(os_errors); i++)
        if (-os_errors[i].err == err)
            return os_errors[i].exception;
    return "OSError";
}

const char *mp_err_name(int err)
{
    const struct mp_error_info *e = find(err);
    const char *s;

    if (e != NULL)
        return e->name;
    s = err < 0 ? strerrorname_np(-err) : NULL;
    return s != NULL ? s : "EUNKNOWN";
}

int mp_format_exception(int err, char *buf, size_t size)
{
    const char *exc = mp_exception_name(err), *msg = mp_strerror(err);

    /* CPython words an OSError "[Errno N] text"; ValueError and MemoryError
     * (EINVAL, ENOMEM here) carry the text alone. */
    if (err < 0 && err > MP__ERRNO_MAX && strcmp(exc, "ValueError") != 0 &&
        strcmp(exc, "MemoryError") != 0)
        return snprintf(buf, size, "%s: [Errno %d] %s", exc, -err, msg);
    return snprintf(buf, size, "%s%s%s", exc, msg[0] != '\0' ? ": " : "",
                    msg);
}

int mp__set_raised(const char *exc, const char *msg)
{
    snprintf(raised_exception, sizeof(raised_exception), "%s",
             exc != NULL && exc[0] != '\0' ? exc : "Exception");
    snprintf(raised_message, sizeof(raised_message), "%s",
             msg != NULL ? msg : "");
    return MP_ERAISED;
}

int mp_raise(const char *exc, const char *fmt, ...)
{
    char msg[sizeof(raised_message)] = "";
    va_list ap;

    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    return mp__set_raised(exc, msg);
}
