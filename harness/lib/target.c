/*
 * target.c - targets registered by name (CPython pickles a target by its
 * qualified name; a child started by exec can only be told a name, too).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NAME_MAX_LEN MP_TARGET_NAME_MAX

struct target {
    char name[NAME_MAX_LEN + 1];
    mp_target_fn fn;
    bool withdrawn; /* two MP_TARGET()s claimed it */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct target *targets;
static size_t count, capacity;

/* Held across fork(), so a child never inherits it locked by a thread that
 * does not exist there. */
static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_release(void) { pthread_mutex_unlock(&lock); }

static void init(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static struct target *find(const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(targets[i].name, name) == 0)
            return &targets[i];
    return NULL;
}

static int target_add(const char *name, mp_target_fn fn, bool define)
{
    struct target *t;
    int r = 0;

    if (name == NULL || fn == NULL || name[0] == '\0' ||
        strlen(name) > NAME_MAX_LEN)
        return MP_EINVAL;
    {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, init);
    }
    pthread_mutex_lock(&lock);
    if ((t = find(name)) != NULL) {
        r = t->fn == fn && !t->withdrawn ? 0 : -EEXIST;
        if (r < 0 && define)
            t->withdrawn = true;
        goto out;
    }
    if (count == capacity) {
        size_t n = capacity != 0 ? capacity * 2 : 32;
        struct target *grown = realloc(targets, n * sizeof(*grown));
        if (grown == NULL) {
            r = -ENOMEM;
            goto out;
        }
        targets = grown;
        capacity = n;
    }
    strcpy(targets[count].name, name);
    targets[count].fn = fn;
    targets[count].withdrawn = false;
    count++;
out:
    pthread_mutex_unlock(&lock);
    return r;
}

int mp_target_register(const char *name, mp_target_fn fn)
{
    return target_add(name, fn, false);
}

int mp_target_define(const char *name, mp_target_fn fn)
{
    int r = target_add(name, fn, true);

    if (r == -EEXIST)
        fprintf(stderr, "libmp: MP_TARGET(%s) is defined by two functions "
                        "(in two files or shared objects): neither can be "
                        "started by that name\n", name);
    else if (r < 0)
        fprintf(stderr, "libmp: MP_TARGET(%s) cannot be registered: %s\n",
                name != NULL ? name : "(null)", mp_strerror(r));
    return r;
}

mp_target_fn mp_target_lookup(const char *name)
{
    struct target *t;
    mp_target_fn fn;

    if (name == NULL)
        return NULL;
    pthread_mutex_lock(&lock);
    t = find(name);
    fn = t != NULL && !t->withdrawn ? t->fn : NULL;
    pthread_mutex_unlock(&lock);
    return fn;
}

int mp__target_missing(const char *name)
{
    struct target *t;
    bool withdrawn;
    char msg[256];

    pthread_mutex_lock(&lock);
    t = find(name);
    withdrawn = t != NULL && t->withdrawn;
    pthread_mutex_unlock(&lock);
    if (!withdrawn)
        return MP_ENOTARGET;
    snprintf(msg, sizeof(msg), "target '%s' is defined by two functions "
             "(MP_TARGET(%s) in two shared objects of one program)", name,
             name);
    return mp__set_raised("ValueError", msg);
}
