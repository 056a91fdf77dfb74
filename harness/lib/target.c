/*
 * target.c - targets registered by name (CPython pickles a target by its
 * qualified name; a child started by exec can only be told a name, too).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NAME_MAX_LEN 63

struct target {
    char name[NAME_MAX_LEN + 1];
    mp_target_fn fn;
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

int mp_target_register(const char *name, mp_target_fn fn)
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
        r = t->fn == fn ? 0 : -EEXIST;
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
    count++;
out:
    pthread_mutex_unlock(&lock);
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
    fn = t != NULL ? t->fn : NULL;
    pthread_mutex_unlock(&lock);
    return fn;
}
