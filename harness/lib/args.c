/*
 * args.c - typed arguments: Process(args=(...), kwargs={...}) for C.
 *
 * CPython pickles a Process's args into the child (or, under fork, the child
 * simply has them).  libmp encodes the values when the process is made, the
 * same bytes under every start method, and hands each queue, connection and
 * synchronisation object over as a descriptor among the process's handles
 * (process.c's conns, tagged MP__USE_ARG), so a value is never an address
 * that means nothing in another program.  A Condition is two handles: its
 * page and its lock's (the same one when the lock is its own); so is a
 * synchronized Value or Array: its memory and its lock's.  The child
 * decodes the bytes once, on first use, with every length and index
 * checked: under spawn and forkserver they come from another process.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* constructors */

mp_arg mp_arg_int(long long v)
{
    mp_arg a = { .type = MP_ARG_INT };
    a.u.i = v;
    return a;
}

mp_arg mp_arg_uint(unsigned long long v)
{
    mp_arg a = { .type = 0 }; /* not a type: check() refuses it */

    if (v <= (unsigned long long)LLONG_MAX)
        return mp_arg_int((long long)v);
    a.u.i = (long long)v;
    return a;
}

mp_arg mp_arg_double(double v)
{
    mp_arg a = { .type = MP_ARG_DOUBLE };
    a.u.d = v;
    return a;
}

mp_arg mp_arg_str(const char *s)
{
    mp_arg a = { .type = MP_ARG_STR };
    a.u.s = s;
    return a;
}

mp_arg mp_arg_bytes(const void *buf, size_t len)
{
    mp_arg a = { .type = MP_ARG_BYTES };
    a.u.b.buf = buf;
    a.u.b.len = len;
    return a;
}

mp_arg mp_arg_queue(mp_queue *q)
{
    mp_arg a = { .type = MP_ARG_QUEUE };
    a.u.q = q;
    return a;
}

mp_arg mp_arg_conn(mp_conn *c)
{
    mp_arg a = { .type = MP_ARG_CONN };
    a.u.c = c;
    return a;
}

mp_arg mp_arg_lock(mp_lock *l)
{
    mp_arg a = { .type = MP_ARG_LOCK };
    a.u.l = l;
    return a;
}

mp_arg mp_arg_cond(mp_cond *c)
{
    mp_arg a = { .type = MP_ARG_COND };
    a.u.cv = c;
    return a;
}

mp_arg mp_arg_event(mp_event *e)
{
    mp_arg a = { .type = MP_ARG_EVENT };
    a.u.e = e;
    return a;
}

mp_arg mp_arg_barrier(mp_barrier *b)
{
    mp_arg a = { .type = MP_ARG_BARRIER };
    a.u.br = b;
    return a;
}

mp_arg mp_arg_value(mp_value *v)
{
    mp_arg a = { .type = MP_ARG_VALUE };
    a.u.v = v;
    return a;
}

mp_arg mp_arg_named(const char *name, mp_arg a)
{
    a.name = name;
    return a;
}

mp_arg mp_arg_of(mp_arg a)
{
    return a;
}

/* encoding, in the parent */

/* The handle a value hands over: a queue's or a synchronisation object's
 * memfd, or the connection. */
static mp_conn *handle_of(const mp_arg *a)
{
    switch (a->type) {
    case MP_ARG_QUEUE:
        return a->u.q != NULL ? mp__queue_handle(a->u.q) : NULL;
    case MP_ARG_LOCK:
        return a->u.l != NULL ? mp__lock_handle(a->u.l) : NULL;
    case MP_ARG_COND:
        return a->u.cv != NULL ? mp__cond_handle(a->u.cv) : NULL;
    case MP_ARG_EVENT:
        return a->u.e != NULL ? mp__event_handle(a->u.e) : NULL;
    case MP_ARG_BARRIER:
        return a->u.br != NULL ? mp__barrier_handle(a->u.br) : NULL;
    case MP_ARG_VALUE:
        return a->u.v != NULL ? mp__value_handle(a->u.v) : NULL;
    default:
        return a->u.c;
    }
}

/* A Condition's second handle, and a synchronized value's: its lock's
 * (NULL: a raw value's, which has none). */
static mp_conn *lock_handle_of(const mp_arg *a)
{
    mp_lock *l = a->type == MP_ARG_COND ? mp_cond_lock(a->u.cv)
                                        : mp__value_lock(a->u.v);

    return l != NULL ? mp__lock_handle(l) : NULL;
}

/* Its index among handles[0..*nh), added if it is not there yet: an object
 * given twice is handed over once, so the child has one object too, as
 * CPython's pickle keeps identity. */
static size_t handle_index(mp_conn **handles, size_t *nh, mp_conn *h)
{
    size_t k = 0;

    while (k < *nh && handles[k] != h)
        k++;
    if (k == *nh)
        handles[(*nh)++] = h;
    return k;
}

static int check(const mp_arg *v, size_t n)
{
    size_t handles = 0;

    if (v == NULL && n > 0)
        return MP_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const mp_arg *a = &v[i];
        switch (a->type) {
        case MP_ARG_INT:
        case MP_ARG_DOUBLE:
            break;
        case MP_ARG_STR:
            if (a->u.s == NULL)
                return MP_EINVAL;
            break;
        case MP_ARG_BYTES:
            if (a->u.b.buf == NULL && a->u.b.len > 0)
                return MP_EINVAL;
            break;
        case MP_ARG_QUEUE:
        case MP_ARG_CONN:
        case MP_ARG_LOCK:
        case MP_ARG_EVENT:
        case MP_ARG_BARRIER:
            if (handle_of(a) == NULL)
                return MP_EINVAL;
            handles++;
            break;
        case MP_ARG_COND: /* its page and its lock's */
        case MP_ARG_VALUE:
            if (handle_of(a) == NULL)
                return MP_EINVAL;
            handles += lock_handle_of(a) != NULL ? 2 : 1;
            break;
        default:
            return MP_EINVAL;
        }
        if (a->name == NULL)
            continue;
        if (a->name[0] == '\0' || strlen(a->name) > MP_TARGET_NAME_MAX)
            return MP_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (v[j].name != NULL && strcmp(v[j].name, a->name) == 0)
                return MP_EINVAL;
    }
    return handles > MP__MAX_HANDLES ? MP_EINVAL : 0;
}

/* Appends the encoding of n checked values to o. */
static void encode_to(struct mp__out *o, const mp_arg *v, size_t n,
                      mp_conn **handles, size_t *nh)
{
    mp__put_u64(o, n);
    for (size_t i = 0; i < n; i++) {
        const mp_arg *a = &v[i];
        uint64_t bits;

        mp__put_u64(o, (uint64_t)a->type);
        mp__put_str(o, a->name != NULL ? a->name : "",
                a->name != NULL ? strlen(a->name) : 0);
        switch (a->type) {
        case MP_ARG_INT:
            mp__put_u64(o, (uint64_t)a->u.i);
            break;
        case MP_ARG_DOUBLE:
            memcpy(&bits, &a->u.d, sizeof(bits));
            mp__put_u64(o, bits);
            break;
        case MP_ARG_STR:
            mp__put_str(o, a->u.s, strlen(a->u.s));
            break;
        case MP_ARG_BYTES:
            mp__put_str(o, a->u.b.len > 0 ? a->u.b.buf : "", a->u.b.len);
            break;
        default: /* a handle: its index among the process's handles */
            mp__put_u64(o, handle_index(handles, nh, handle_of(a)));
            if (a->type == MP_ARG_COND)
                mp__put_u64(o, handle_index(handles, nh, lock_handle_of(a)));
            /* A value's lock: 0 for none (raw), else 1 + its index. */
            if (a->type == MP_ARG_VALUE)
                mp__put_u64(o, lock_handle_of(a) == NULL
                                   ? 0
                                   : 1 + handle_index(handles, nh,
                                                      lock_handle_of(a)));
            /* Which of the four a lock is, for the messages of a child
             * that has not mapped it. */
            if (a->type == MP_ARG_LOCK)
                mp__put_u64(o, (uint64_t)mp__lock_kind(a->u.l));
            break;
        }
    }
}

int mp__args_encode(const mp_arg *v, size_t n, char **out, size_t *len,
                    mp_conn **handles, size_t *nhandles)
{
    struct mp__out o = { 0 };
    size_t nh = 0;
    int r = check(v, n);

    *out = NULL;
    *len = 0;
    *nhandles = 0;
    if (r < 0)
        return r;
    encode_to(&o, v, n, handles, &nh);
    if (o.failed) {
        free(o.p);
        return -ENOMEM;
    }
    *out = o.p;
    *len = o.len;
    *nhandles = nh;
    return 0;
}

/* Pool tasks: values only, as CPython pickles a task's arguments, which
 * refuses its queues and synchronisation objects (assert_spawning). */

/* The class CPython names when it refuses to pickle the object a handle
 * value stands for: an Event and a Barrier pickle their Condition. */
static const char *refused_name(const mp_arg *a)
{
    static const char *const locks[] = { "Lock", "Lock", "RLock",
                                         "Semaphore", "BoundedSemaphore" };
    int kind;

    switch (a->type) {
    case MP_ARG_QUEUE:
        return a->u.q != NULL ? mp__queue_kind_name(a->u.q) : "Queue";
    case MP_ARG_CONN:
        return "Connection";
    case MP_ARG_LOCK:
        kind = a->u.l != NULL ? mp__lock_kind(a->u.l) : 1;
        return locks[kind >= 1 && kind <= 4 ? kind : 1];
    default:
        return "Condition";
    }
}

int mp__args_check_plain(const mp_arg *v, size_t n)
{
    if (v == NULL && n > 0)
        return MP_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (v[i].type == MP_ARG_VALUE)
            return mp__value_refuse(v[i].u.v);
        else if (v[i].type >= MP_ARG_QUEUE && v[i].type <= MP_ARG_BARRIER)
            return mp_raise("RuntimeError", "%s objects should only be "
                            "shared between processes through inheritance",
                            refused_name(&v[i]));
    return check(v, n);
}

void mp__args_encode_plain(struct mp__out *o, const mp_arg *v, size_t n)
{
    encode_to(o, v, n, NULL, NULL);
}

/* decoding, in the child */

struct arg {
    int type;
    char *name;    /* NULL: none */
    long long i;
    double d;
    char *buf;     /* str, bytes: NUL-terminated */
    size_t len;
    mp_conn *conn; /* a handle */
    mp_conn *conn2; /* a Condition's lock's handle, a value's (or NULL) */
    int kind;      /* a lock's: 1 Lock, 2 RLock, 3 Semaphore, 4 Bounded */
    mp_queue *q;   /* the queue's view, made on first use */
    /* A synchronisation object's view, made on first use, and a
     * Condition's lock's; views that values share are freed once. */
    void *view;
    mp_lock *lock;
};

struct mp_args {
    size_t n;
    struct arg *v;
    /* mp__args_decode_reuse()'s: the room in v, and the memory its
     * strings and names are copied to */
    size_t cap;
    char *arena;
    size_t arena_cap;
};

/* Whether a view was met before value i (as a view or a lock). */
static bool seen_before(const mp_args *a, size_t i, const void *view)
{
    for (size_t j = 0; j < i; j++)
        if (a->v[j].view == view || (void *)a->v[j].lock == view)
            return true;
    return false;
}

static void args_free(mp_args *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        struct arg *e = &a->v[i];
        size_t j = 0;

        free(e->name);
        free(e->buf);
        /* A view that values share is freed with the first of them. */
        while (j < i && a->v[j].q != e->q)
            j++;
        if (j == i)
            mp__queue_view_free(e->q);
        if (e->view != NULL && !seen_before(a, i, e->view)) {
            switch (e->type) {
            case MP_ARG_LOCK:
                mp__lock_view_free(e->view);
                break;
            case MP_ARG_COND:
                mp__cond_view_free(e->view);
                break;
            case MP_ARG_VALUE:
                mp__value_view_free(e->view);
                break;
            case MP_ARG_EVENT:
                mp__event_view_free(e->view);
                break;
            default:
                mp__barrier_view_free(e->view);
                break;
            }
        }
        if (e->lock != NULL && e->lock != e->view &&
            !seen_before(a, i, e->lock))
            mp__lock_view_free(e->lock);
    }
    free(a->v);
    free(a);
}

/* Whether handle k can be a value of this type: given as an argument, and
 * a queue's, a synchronisation object's or a connection, as the type
 * says. */
static bool handle_fits(uint64_t k, int type, mp_conn *const *conns,
                        const unsigned char *use, size_t nconns)
{
    unsigned f;

    if (k >= nconns || use[k] != MP__USE_ARG)
        return false;
    f = mp__conn_flags(conns[k]) & (MP__CONN_QUEUE | MP__CONN_SYNC);
    switch (type) {
    case MP_ARG_QUEUE:
        return f == MP__CONN_QUEUE;
    case MP_ARG_CONN:
        return f == 0;
    default:
        return f == MP__CONN_SYNC;
    }
}

int mp__args_decode(const char *buf, size_t len, mp_conn *const *conns,
                    const unsigned char *use, size_t nconns, mp_args **out)
{
    struct mp__in r = { buf, len, false };
    mp_args *a = calloc(1, sizeof(*a));
    uint64_t n;

    *out = NULL;
    if (a == NULL)
        return -ENOMEM;
    n = len > 0 ? mp__get_u64(&r) : 0;
    /* Every value takes three words at least: a count beyond that is a lie
     * that must not size an allocation. */
    if (n > r.left / 24)
        goto bad;
    if (n > 0 && (a->v = calloc((size_t)n, sizeof(*a->v))) == NULL) {
        args_free(a);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct arg *e = &a->v[i];
        uint64_t type = mp__get_u64(&r), k, bits;
        size_t nlen = 0;

        a->n = i + 1;
        e->type = type <= MP_ARG_VALUE ? (int)type : 0;
        e->name = mp__get_str(&r, MP_TARGET_NAME_MAX, &nlen);
        /* A name or a str is what strlen() gave the encoder: a NUL inside
         * is corruption, which would reach the target cut short. */
        if (e->name != NULL && strlen(e->name) != nlen)
            goto bad;
        if (e->name != NULL && nlen == 0) {
            free(e->name);
            e->name = NULL;
        }
        switch (e->type) {
        case MP_ARG_INT:
            e->i = (long long)mp__get_u64(&r);
            break;
        case MP_ARG_DOUBLE:
            bits = mp__get_u64(&r);
            memcpy(&e->d, &bits, sizeof(bits));
            break;
        case MP_ARG_STR:
        case MP_ARG_BYTES:
            e->buf = mp__get_str(&r, SIZE_MAX, &e->len);
            if (e->type == MP_ARG_STR && e->buf != NULL &&
                strlen(e->buf) != e->len)
                goto bad;
            break;
        case MP_ARG_QUEUE:
        case MP_ARG_CONN:
        case MP_ARG_LOCK:
        case MP_ARG_COND:
        case MP_ARG_EVENT:
        case MP_ARG_BARRIER:
        case MP_ARG_VALUE:
            k = mp__get_u64(&r);
            if (!handle_fits(k, e->type, conns, use, nconns))
                goto bad;
            e->conn = conns[k];
            if (e->type == MP_ARG_COND) {
                k = mp__get_u64(&r);
                if (!handle_fits(k, MP_ARG_LOCK, conns, use, nconns))
                    goto bad;
                e->conn2 = conns[k];
            }
            if (e->type == MP_ARG_VALUE && (k = mp__get_u64(&r)) != 0) {
                if (!handle_fits(k - 1, MP_ARG_LOCK, conns, use, nconns))
                    goto bad;
                e->conn2 = conns[k - 1];
            }
            if (e->type == MP_ARG_LOCK) {
                k = mp__get_u64(&r);
                if (k < 1 || k > 4)
                    goto bad;
                e->kind = (int)k;
            }
            break;
        default:
            goto bad;
        }
        if (r.failed)
            goto bad;
    }
    if (r.left != 0)
        goto bad;
    *out = a;
    return 0;
bad:
    args_free(a);
    return -EPROTO;
}

void mp__args_free(mp_args *a)
{
    args_free(a);
}

/* A value of a pool task: plain types only, its strings copied to *at in
 * the arena (room for them was made). */
static bool decode_plain(struct mp__in *r, struct arg *e, char **at)
{
    uint64_t type = mp__get_u64(r), n, bits;

    e->type = type >= MP_ARG_INT && type <= MP_ARG_BYTES ? (int)type : 0;
    e->name = NULL;
    e->buf = NULL;
    e->len = 0;
    for (int k = 0; k < 2; k++) {
        if (k == 1 && e->type != MP_ARG_STR && e->type != MP_ARG_BYTES)
            break;
        n = mp__get_u64(r);
        if (r->failed || n > r->left || (k == 0 && n > MP_TARGET_NAME_MAX))
            return false;
        if (k == 0 && n == 0)
            continue;
        memcpy(*at, r->p, (size_t)n);
        (*at)[n] = '\0';
        if ((e->type == MP_ARG_STR || k == 0) && strlen(*at) != n)
            return false; /* a NUL inside: what strlen() never gave */
        if (k == 0) {
            e->name = *at;
        } else {
            e->buf = *at;
            e->len = (size_t)n;
        }
        *at += n + 1;
        r->p += n;
        r->left -= (size_t)n;
    }
    switch (e->type) {
    case MP_ARG_INT:
        e->i = (long long)mp__get_u64(r);
        return !r->failed;
    case MP_ARG_DOUBLE:
        bits = mp__get_u64(r);
        memcpy(&e->d, &bits, sizeof(bits));
        return !r->failed;
    case MP_ARG_STR:
    case MP_ARG_BYTES:
        return true;
    default:
        return false;
    }
}

int mp__args_decode_reuse(mp_args **out, const char *buf, size_t len)
{
    struct mp__in r = { buf, len, false };
    mp_args *a = *out;
    uint64_t n;
    char *at;

    if (a == NULL && (a = *out = calloc(1, sizeof(*a))) == NULL)
        return -ENOMEM;
    a->n = 0;
    n = mp__get_u64(&r);
    if (r.failed || n > r.left / 16) /* a value takes two words at least */
        return -EPROTO;
    if (n > a->cap) {
        struct arg *v = realloc(a->v, (size_t)n * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        memset(v, 0, (size_t)n * sizeof(*v));
        a->v = v;
        a->cap = (size_t)n;
    }
    /* Every string and name is at most what is left, plus its NUL. */
    if (len + 2 * (size_t)n + 1 > a->arena_cap) {
        char *grown = realloc(a->arena, len + 2 * (size_t)n + 1);
        if (grown == NULL)
            return -ENOMEM;
        a->arena = grown;
        a->arena_cap = len + 2 * (size_t)n + 1;
    }
    at = a->arena;
    for (size_t i = 0; i < n; i++)
        if (!decode_plain(&r, &a->v[i], &at))
            return -EPROTO;
    if (r.left != 0)
        return -EPROTO;
    for (size_t i = 0; i < n; i++) /* names are unique, as check() saw */
        for (size_t j = 0; a->v[i].name != NULL && j < i; j++)
            if (a->v[j].name != NULL &&
                strcmp(a->v[j].name, a->v[i].name) == 0)
                return -EPROTO;
    a->n = (size_t)n;
    return 0;
}

void mp__args_reuse_free(mp_args *a)
{
    if (a == NULL)
        return;
    free(a->v);
    free(a->arena);
    free(a);
}

mp_args *mp__args_prefix(const mp_args *a, size_t n)
{
    mp_args *p = calloc(1, sizeof(*p));

    if (p != NULL && a != NULL) {
        p->n = n < a->n ? n : a->n;
        p->v = a->v;
    }
    return p;
}

/* What mp_child_args() returns in a pool worker while it runs a task or
 * its initializer. */
static _Thread_local const mp_args *task_args;

void mp__set_task_args(const mp_args *a)
{
    task_args = a;
}

/* reading */

/* Decoding and attaching queues happen once, under this lock, whichever
 * thread asks first. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_release(void) { pthread_mutex_unlock(&lock); }
static void init(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static const mp_args empty;

const mp_args *mp_child_args(void)
{
    const mp_args *a = task_args;

    if (a != NULL)
        return a;
    /* Every target asks (MP_TARGET), most have no typed arguments: then
     * nothing to decode, and no fork handlers to register in a child that
     * would write libc's list of them and wake the once's waiters. */
    if (!mp__current_has_args())
        return &empty;
    pthread_once(&once, init);
    pthread_mutex_lock(&lock);
    a = mp__current_args();
    pthread_mutex_unlock(&lock);
    return a != NULL ? a : &empty;
}

static const char *type_name(int type)
{
    static const char *const names[] = {
        [MP_ARG_INT] = "int",         [MP_ARG_DOUBLE] = "float",
        [MP_ARG_STR] = "str",         [MP_ARG_BYTES] = "bytes",
        [MP_ARG_QUEUE] = "Queue",     [MP_ARG_CONN] = "Connection",
        [MP_ARG_LOCK] = "Lock",       [MP_ARG_COND] = "Condition",
        [MP_ARG_EVENT] = "Event",     [MP_ARG_BARRIER] = "Barrier",
        [MP_ARG_VALUE] = "Value",
    };
    return type > 0 && type <= MP_ARG_VALUE ? names[type] : "?";
}

/* A value's type as a message names it: a lock by its class. */
static const char *value_type_name(const struct arg *e)
{
    static const char *const locks[] = { "Lock", "Lock", "RLock",
                                         "Semaphore", "BoundedSemaphore" };

    if (e->type == MP_ARG_LOCK && e->kind >= 1 && e->kind <= 4)
        return locks[e->kind];
    return type_name(e->type);
}

size_t mp_args_count(const mp_args *args)
{
    return args != NULL ? args->n : 0;
}

/* The position of `name`, or -1 when there is none. */
static long position(const mp_args *args, const char *name)
{
    for (size_t i = 0; i < args->n; i++)
        if (args->v[i].name != NULL && strcmp(args->v[i].name, name) == 0)
            return (long)i;
    return -1;
}

int mp_args_index(const mp_args *args, const char *name)
{
    long i;

    if (args == NULL || name == NULL)
        return MP_EINVAL;
    i = position(args, name);
    return i >= 0 ? (int)i : mp_raise("KeyError", "'%s'", name);
}

static int out_of_range(const mp_args *args, size_t i)
{
    return mp_raise("IndexError", "argument %zu is out of range (%zu given)",
                    i, args->n);
}

int mp_args_type(const mp_args *args, size_t i)
{
    if (args == NULL)
        return MP_EINVAL;
    return i < args->n ? args->v[i].type : out_of_range(args, i);
}

const char *mp_args_name(const mp_args *args, size_t i)
{
    return args != NULL && i < args->n ? args->v[i].name : NULL;
}

/* The value at i if it has the type wanted, else the error naming it. */
static int find(const mp_args *args, size_t i, int want, struct arg **out)
{
    struct arg *e;

    *out = NULL;
    if (args == NULL)
        return MP_EINVAL;
    if (i >= args->n)
        return out_of_range(args, i);
    e = &args->v[i];
    if (e->type != want && !(want == MP_ARG_DOUBLE && e->type == MP_ARG_INT)) {
        if (e->name != NULL)
            return mp_raise("TypeError", "argument %zu ('%s') is %s, not %s",
                            i, e->name, value_type_name(e), type_name(want));
        return mp_raise("TypeError", "argument %zu is %s, not %s", i,
                        value_type_name(e), type_name(want));
    }
    *out = e;
    return 0;
}

int mp_args_get_int(const mp_args *args, size_t i, long long *v)
{
    struct arg *e;
    int r = find(args, i, MP_ARG_INT, &e);

    if (r == 0 && v != NULL)
        *v = e->i;
    return r;
}

int mp_args_get_double(const mp_args *args, size_t i, double *v)
{
    struct arg *e;
    int r = find(args, i, MP_ARG_DOUBLE, &e);

    if (r == 0 && v != NULL)
        *v = e->type == MP_ARG_INT ? (double)e->i : e->d;
    return r;
}

int mp_args_get_str(const mp_args *args, size_t i, const char **s)
{
    struct arg *e;
    int r = find(args, i, MP_ARG_STR, &e);

    if (r == 0 && s != NULL)
        *s = e->buf;
    return r;
}

int mp_args_get_bytes(const mp_args *args, size_t i, const void **buf,
                      size_t *len)
{
    struct arg *e;
    int r = find(args, i, MP_ARG_BYTES, &e);

    if (r == 0) {
        if (buf != NULL)
            *buf = e->buf;
        if (len != NULL)
            *len = e->len;
    }
    return r;
}

int mp_args_get_queue(const mp_args *args, size_t i, mp_queue **q)
{
    struct arg *e;
    mp_queue *view;
    int r = find(args, i, MP_ARG_QUEUE, &e);

    if (r < 0)
        return r;
    pthread_once(&once, init);
    pthread_mutex_lock(&lock);
    /* Values that name one handle share one view: one queue object. */
    for (size_t j = 0; e->q == NULL && j < args->n; j++)
        if (args->v[j].conn == e->conn)
            e->q = args->v[j].q;
    if (e->q == NULL)
        e->q = mp__queue_view(e->conn);
    view = e->q;
    pthread_mutex_unlock(&lock);
    if (view == NULL)
        return mp_raise("OSError", "argument %zu: cannot map the queue", i);
    if (q != NULL)
        *q = view;
    return 0;
}

int mp_args_get_conn(const mp_args *args, size_t i, mp_conn **c)
{
    struct arg *e;
    int r = find(args, i, MP_ARG_CONN, &e);

    if (r == 0 && c != NULL)
        *c = e->conn;
    return r;
}

/* synchronisation objects: views made on first use, under `lock`.  Values
 * that name one handle give one object; a Condition's lock is the lock
 * given with the same handle, if any, so its owner checks hold. */

/* The view of the lock handle h names, if some value made it already. */
static mp_lock *lock_seen(const mp_args *args, mp_conn *h)
{
    for (size_t j = 0; j < args->n; j++) {
        const struct arg *e = &args->v[j];
        if (e->type == MP_ARG_LOCK && e->conn == h && e->view != NULL)
            return e->view;
        if ((e->type == MP_ARG_COND || e->type == MP_ARG_VALUE) &&
            e->conn2 == h && e->lock != NULL)
            return e->lock;
    }
    return NULL;
}

/* A value of the same type and handle that has its view already. */
static void *view_seen(const mp_args *args, const struct arg *e)
{
    for (size_t j = 0; j < args->n; j++)
        if (args->v[j].type == e->type && args->v[j].conn == e->conn &&
            args->v[j].view != NULL)
            return args->v[j].view;
    return NULL;
}

static void *sync_view(const mp_args *args, struct arg *e)
{
    if (e->view != NULL)
        return e->view;
    if ((e->view = view_seen(args, e)) != NULL)
        return e->view;
    switch (e->type) {
    case MP_ARG_LOCK:
        if ((e->view = lock_seen(args, e->conn)) == NULL)
            e->view = mp__lock_view(e->conn);
        break;
    case MP_ARG_COND:
        if (e->lock == NULL && (e->lock = lock_seen(args, e->conn2)) == NULL)
            e->lock = mp__lock_view(e->conn2);
        if (e->lock != NULL)
            e->view = mp__cond_view(e->conn, e->lock);
        break;
    case MP_ARG_EVENT:
        e->view = mp__event_view(e->conn);
        break;
    case MP_ARG_VALUE:
        if (e->conn2 != NULL && e->lock == NULL &&
            (e->lock = lock_seen(args, e->conn2)) == NULL &&
            (e->lock = mp__lock_view(e->conn2)) == NULL)
            break;
        e->view = mp__value_view(e->conn, e->lock);
        break;
    default:
        e->view = mp__barrier_view(e->conn);
        break;
    }
    return e->view;
}

static int get_sync(const mp_args *args, size_t i, int type, void **out)
{
    struct arg *e;
    void *view;
    int r = find(args, i, type, &e);

    if (r < 0)
        return r;
    pthread_once(&once, init);
    pthread_mutex_lock(&lock);
    view = sync_view(args, e);
    pthread_mutex_unlock(&lock);
    if (view == NULL && type == MP_ARG_VALUE)
        return mp_raise("OSError", "argument %zu: %s", i,
                        e->conn2 != NULL && e->lock == NULL
                            ? "cannot map the value's lock"
                            : "not a libmp shared value (bad shared memory)");
    if (view == NULL)
        return mp_raise("OSError", "argument %zu: cannot map the %s", i,
                        value_type_name(e));
    if (out != NULL)
        *out = view;
    return 0;
}

int mp_args_get_lock(const mp_args *args, size_t i, mp_lock **l)
{
    return get_sync(args, i, MP_ARG_LOCK, (void **)l);
}

int mp_args_get_cond(const mp_args *args, size_t i, mp_cond **c)
{
    return get_sync(args, i, MP_ARG_COND, (void **)c);
}

int mp_args_get_event(const mp_args *args, size_t i, mp_event **e)
{
    return get_sync(args, i, MP_ARG_EVENT, (void **)e);
}

int mp_args_get_barrier(const mp_args *args, size_t i, mp_barrier **b)
{
    return get_sync(args, i, MP_ARG_BARRIER, (void **)b);
}

int mp_args_get_value(const mp_args *args, size_t i, mp_value **v)
{
    return get_sync(args, i, MP_ARG_VALUE, (void **)v);
}

/* raising */

size_t mp_args_at(const mp_args *args, const char *name)
{
    int r = mp_args_index(args, name);

    if (r < 0)
        mp__uncaught(r);
    return (size_t)r;
}

/* The position of `name` for the getters with a default: -1 when there
 * is none. */
static long named(const mp_args *args, const char *name)
{
    if (args == NULL || name == NULL)
        mp__uncaught(MP_EINVAL);
    return position(args, name);
}

long long mp_args_int_or(const mp_args *args, const char *name,
                         long long dflt)
{
    long i = named(args, name);

    return i < 0 ? dflt : mp_args_int(args, (size_t)i);
}

double mp_args_double_or(const mp_args *args, const char *name, double dflt)
{
    long i = named(args, name);

    return i < 0 ? dflt : mp_args_double(args, (size_t)i);
}

const char *mp_args_str_or(const mp_args *args, const char *name,
                           const char *dflt)
{
    long i = named(args, name);

    return i < 0 ? dflt : mp_args_str(args, (size_t)i);
}

long long mp_args_int(const mp_args *args, size_t i)
{
    long long v = 0;
    int r = mp_args_get_int(args, i, &v);

    if (r < 0)
        mp__uncaught(r);
    return v;
}

double mp_args_double(const mp_args *args, size_t i)
{
    double v = 0;
    int r = mp_args_get_double(args, i, &v);

    if (r < 0)
        mp__uncaught(r);
    return v;
}

const char *mp_args_str(const mp_args *args, size_t i)
{
    const char *s = NULL;
    int r = mp_args_get_str(args, i, &s);

    if (r < 0)
        mp__uncaught(r);
    return s;
}

const void *mp_args_bytes(const mp_args *args, size_t i, size_t *len)
{
    const void *buf = NULL;
    int r = mp_args_get_bytes(args, i, &buf, len);

    if (r < 0)
        mp__uncaught(r);
    return buf;
}

/* The handle getters that raise: each is its mp_args_get_ twin, with an
 * error taken as uncaught (mp__uncaught() does not return). */
#define MP__HANDLE_GETTER(type, name)                                         \
    type *mp_args_##name(const mp_args *args, size_t i)                       \
    {                                                                         \
        type *h = NULL;                                                       \
        int r = mp_args_get_##name(args, i, &h);                              \
                                                                              \
        if (r < 0)                                                            \
            mp__uncaught(r);                                                  \
        return h;                                                             \
    }

MP__HANDLE_GETTER(mp_queue, queue)
MP__HANDLE_GETTER(mp_conn, conn)
MP__HANDLE_GETTER(mp_lock, lock)
MP__HANDLE_GETTER(mp_cond, cond)
MP__HANDLE_GETTER(mp_event, event)
MP__HANDLE_GETTER(mp_barrier, barrier)
MP__HANDLE_GETTER(mp_value, value)
