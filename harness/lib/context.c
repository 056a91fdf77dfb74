/*
 * context.c - start methods and contexts (CPython: context.py).
 *
 * Three concrete contexts, one per start method, and the default context,
 * whose method is fixed the first time anything asks for it (get_context(),
 * get_start_method(), a process's start()), after which set_start_method()
 * raises RuntimeError unless forced.  The default method is CPython 3.13's on
 * Linux: fork.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

struct mp_context {
    const char *name;          /* "fork" */
    const char *process_type;  /* "ForkProcess": names and repr */
    const struct mp_start_ops *ops;
};

static const mp_context contexts[] = {
    { "fork", "ForkProcess", &mp__start_fork },
    { "spawn", "SpawnProcess", &mp__start_spawn },
    { "forkserver", "ForkServerProcess", &mp__start_forkserver },
};

#define DEFAULT_CONTEXT (&contexts[0])

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const mp_context *actual; /* NULL: not set yet */

/* Held across fork(), so a child never inherits it locked. */
static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_release(void) { pthread_mutex_unlock(&lock); }

static void init(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static void init_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, init);
}

static const mp_context *find(const char *method)
{
    for (size_t i = 0; i < ARRAY_SIZE(contexts); i++)
        /* A process's method is its context's own name: no strcmp() in a
         * fork child, whose every code page touched is a page fault. */
        if (method == contexts[i].name ||
            (method != NULL && strcmp(method, contexts[i].name) == 0))
            return &contexts[i];
    return NULL;
}

static int not_found(const char *method)
{
    char msg[160];

    /* CPython: ValueError('cannot find context for %r' % method) */
    snprintf(msg, sizeof(msg), "cannot find context for '%.100s'",
             method != NULL ? method : "None");
    return mp__set_raised("ValueError", msg);
}

const mp_context *mp__default_context(void)
{
    const mp_context *c;

    init_once();
    pthread_mutex_lock(&lock);
    if (actual == NULL)
        actual = DEFAULT_CONTEXT;
    c = actual;
    pthread_mutex_unlock(&lock);
    return c;
}

void mp__force_start_method(const char *method)
{
    const mp_context *c = find(method);

    init_once();
    if (c != NULL) {
        pthread_mutex_lock(&lock);
        actual = c;
        pthread_mutex_unlock(&lock);
    }
}

const struct mp_start_ops *mp__context_ops(const mp_context *ctx)
{
    return ctx->ops;
}

const char *mp__context_type(const mp_context *ctx)
{
    return ctx->process_type;
}

int mp_get_context(mp_context **out, const char *method)
{
    const mp_context *c;

    if (out == NULL)
        return MP_EINVAL;
    c = method == NULL ? mp__default_context() : find(method);
    if (c == NULL)
        return not_found(method);
    *out = (mp_context *)c;
    return 0;
}

const char *mp_context_name(const mp_context *ctx)
{
    return ctx != NULL ? ctx->name : "";
}

int mp_context_set_start_method(mp_context *ctx, const char *method,
                                int force)
{
    (void)ctx;
    (void)method;
    (void)force;
    return MP_ECONCRETE;
}

int mp_set_start_method(const char *method, int force)
{
    const mp_context *c = NULL;
    int r = 0;

    init_once();
    pthread_mutex_lock(&lock);
    if (actual != NULL && !force)
        r = MP_ECONTEXTSET;
    else if (method == NULL && force)
        actual = NULL;
    else if (method == NULL) /* get_context(None): the default, fixed */
        actual = DEFAULT_CONTEXT;
    else if ((c = find(method)) == NULL)
        r = not_found(method);
    else
        actual = c;
    pthread_mutex_unlock(&lock);
    return r;
}

const char *mp_get_start_method(int allow_none)
{
    const char *name = NULL;

    init_once(); /* before the lock is ever taken: see atfork_prepare */
    pthread_mutex_lock(&lock);
    if (actual == NULL && !allow_none)
        actual = DEFAULT_CONTEXT;
    if (actual != NULL)
        name = actual->name;
    pthread_mutex_unlock(&lock);
    return name;
}

size_t mp_get_all_start_methods(const char **out, size_t n)
{
    for (size_t i = 0; i < n && i < ARRAY_SIZE(contexts); i++)
        out[i] = contexts[i].name;
    return ARRAY_SIZE(contexts);
}
