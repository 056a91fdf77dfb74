/*
 * value.c - Value, RawValue, Array and RawArray (CPython: sharedctypes.py,
 * and the conversions of the ctypes types it makes).
 *
 * A value is a memfd of its own, sealed against shrinking and growing so
 * that no process can cut it short under another's mapping, holding a
 * header (magic, version, typecode, element size and count) and the
 * elements from byte 64 on.  A process reads the header once, when it
 * creates or maps the value, and bounds it against the memfd's size then;
 * after that it goes by its own copy, so a peer that writes over the
 * header changes nothing, and the elements hold no index or length to
 * trust.  The lock of a synchronized value is an mp_lock of sync.c
 * (CPython's Value makes an RLock the same way), handed to a child beside
 * the value's memfd, as a Condition's lock is.
 *
 * An access takes the lock, moves one element with a relaxed atomic load
 * or store (a plain move on the machines this runs on; it keeps a raw
 * value's accesses from different threads defined) and gives the lock
 * back: no system call while the lock is free.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

#include "internal.h"

#define VMAGIC 0x6c61566d7062696cULL /* "libmpVal" */
#define VVERSION 1
#define VDATA 64 /* where the elements start: aligned for any of them */

enum { VF_ARRAY = 1 };

struct value_page {
    _Atomic uint64_t magic; /* written last: the rest is ready */
    uint32_t version;
    uint32_t typecode;
    uint64_t count;
    uint32_t itemsize;
    uint32_t flags;
};

_Static_assert(sizeof(struct value_page) <= VDATA, "the header fits");

/* How a typecode's elements convert. */
enum { SIGNED, UNSIGNED, REAL, CHAR, WCHAR };

struct vtype {
    char code;
    unsigned char size;
    unsigned char kind;
    const char *ctype; /* its ctypes name */
};

struct mp_value {
    bool borrowed; /* a child's argument: the list frees it */
    bool array;
    const struct vtype *t;
    size_t n;
    mp_lock *lock; /* a reference of the value's own; NULL: raw */
    mp_conn *handle;
    void *base;
    size_t maplen;
    unsigned char *data;
};

/* ctypes' aliases: c_int is c_long where the two have one size, and
 * c_longlong is c_long where those do (Lib/ctypes/__init__.py). */
#if INT_MAX == LONG_MAX
#define INT_NAME "c_long"
#define UINT_NAME "c_ulong"
#else
#define INT_NAME "c_int"
#define UINT_NAME "c_uint"
#endif
#if LONG_MAX == LLONG_MAX
#define LL_NAME "c_long"
#define ULL_NAME "c_ulong"
#else
#define LL_NAME "c_longlong"
#define ULL_NAME "c_ulonglong"
#endif

static const struct vtype *vtype_of(char code)
{
    static const struct vtype types[] = {
        { 'b', 1, SIGNED, "c_byte" },      { 'B', 1, UNSIGNED, "c_ubyte" },
        { 'h', 2, SIGNED, "c_short" },     { 'H', 2, UNSIGNED, "c_ushort" },
        { 'i', sizeof(int), SIGNED, INT_NAME },
        { 'I', sizeof(int), UNSIGNED, UINT_NAME },
        { 'l', sizeof(long), SIGNED, "c_long" },
        { 'L', sizeof(long), UNSIGNED, "c_ulong" },
        { 'q', 8, SIGNED, LL_NAME },       { 'Q', 8, UNSIGNED, ULL_NAME },
        { 'f', 4, REAL, "c_float" },       { 'd', 8, REAL, "c_double" },
        { 'c', 1, CHAR, "c_char" },
        { 'u', sizeof(wchar_t), WCHAR, "c_wchar" },
    };

    for (size_t i = 0; code != '\0' && i < ARRAY_SIZE(types); i++)
        if (types[i].code == code)
            return &types[i];
    return NULL;
}

/* names, as CPython's messages give them */

/* The class of the object: "Synchronized", "c_int", ... */
static const char *class_name(const mp_value *v, char *buf, size_t size)
{
    if (v->lock != NULL)
        return !v->array           ? "Synchronized"
               : v->t->kind == CHAR ? "SynchronizedString"
                                   : "SynchronizedArray";
    if (!v->array)
        return v->t->ctype;
    snprintf(buf, size, "%s_Array_%zu", v->t->ctype, v->n);
    return buf;
}

/* The ctypes object's own type: "c_int", "c_int_Array_5". */
static const char *obj_name(const mp_value *v, char *buf, size_t size)
{
    if (!v->array)
        return v->t->ctype;
    snprintf(buf, size, "%s_Array_%zu", v->t->ctype, v->n);
    return buf;
}

static int no_attribute(const mp_value *v, const char *attr)
{
    char buf[64];

    return mp_raise("AttributeError", "'%s' object has no attribute '%s'",
                    class_name(v, buf, sizeof(buf)), attr);
}

static int not_subscriptable(const mp_value *v)
{
    char buf[64];

    return mp_raise("TypeError", "'%s' object is not subscriptable",
                    class_name(v, buf, sizeof(buf)));
}

/* The Python type of an argument, as a TypeError names it. */
static const char *arg_type_name(const mp_arg *x, char *buf, size_t size)
{
    static const char *const locks[] = { "Lock", "Lock", "RLock",
                                         "Semaphore", "BoundedSemaphore" };
    int k;

    switch (x->type) {
    case MP_ARG_NONE:
        return x->u.i != 0 ? "int" : "NoneType";
    case MP_ARG_INT:
        return "int";
    case MP_ARG_DOUBLE:
        return "float";
    case MP_ARG_STR:
        return "str";
    case MP_ARG_BYTES:
        return "bytes";
    case MP_ARG_QUEUE:
        return x->u.q != NULL ? mp__queue_kind_name(x->u.q) : "Queue";
    case MP_ARG_CONN:
        return "Connection";
    case MP_ARG_LOCK:
        k = x->u.l != NULL ? mp__lock_kind(x->u.l) : 1;
        return locks[k >= 1 && k <= 4 ? k : 1];
    case MP_ARG_COND:
        return "Condition";
    case MP_ARG_EVENT:
        return "Event";
    case MP_ARG_BARRIER:
        return "Barrier";
    case MP_ARG_VALUE:
        return x->u.v != NULL ? class_name(x->u.v, buf, size) : "Synchronized";
    default:
        return "object";
    }
}

/* conversions in */

/* The one code point of a UTF-8 string: 1 and *cp, 0 for another count,
 * -1 for what is not UTF-8 (overlong forms and surrogates included). */
static int utf8_single(const char *s, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s;
    int count = 0;

    while (*p != '\0') {
        uint32_t c = *p, min;
        int more;

        if (c < 0x80) {
            more = 0, min = 0;
        } else if ((c & 0xe0) == 0xc0) {
            more = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, min = 0x10000, c &= 0x07;
        } else {
            return -1;
        }
        p++;
        for (int k = 0; k < more; k++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
            c = c << 6 | (*p & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return -1;
        *cp = c;
        count++;
    }
    return count == 1 ? 1 : 0;
}

/* x as the bits of one element of type t (its low t->size bytes). */
static int convert(const struct vtype *t, const mp_arg *x, uint64_t *bits)
{
    char buf[64];
    const char *tn = arg_type_name(x, buf, sizeof(buf));
    bool is_int = x->type == MP_ARG_INT ||
                  (x->type == MP_ARG_NONE && x->u.i != 0);
    uint32_t cp;
    float f;
    double d;
    int r;

    switch (t->kind) {
    case SIGNED:
    case UNSIGNED:
        if (!is_int)
            return mp_raise("TypeError", "'%s' object cannot be interpreted "
                            "as an integer", tn);
        *bits = (uint64_t)x->u.i; /* wrapped as ctypes' masks do */
        return 0;
    case REAL:
        if (x->type == MP_ARG_DOUBLE)
            d = x->u.d;
        else if (x->type == MP_ARG_INT)
            d = (double)x->u.i;
        else if (is_int)
            d = (double)(uint64_t)x->u.i;
        else
            return mp_raise("TypeError", "must be real number, not %s", tn);
        if (t->size == 8) {
            memcpy(bits, &d, 8);
        } else {
            uint32_t b;
            f = (float)d; /* IEEE 754: the nearest, or inf */
            memcpy(&b, &f, 4);
            *bits = b;
        }
        return 0;
    case CHAR:
        if (x->type == MP_ARG_BYTES && x->u.b.len == 1 && x->u.b.buf != NULL)
            *bits = *(const unsigned char *)x->u.b.buf;
        else if (x->type == MP_ARG_INT && x->u.i >= 0 && x->u.i <= 255)
            *bits = (uint64_t)x->u.i;
        else
            return mp_raise("TypeError", "one character bytes, bytearray or "
                            "integer expected");
        return 0;
    default: /* WCHAR */
        if (x->type != MP_ARG_STR)
            return mp_raise("TypeError", "unicode string expected instead "
                            "of %s instance", tn);
        if (x->u.s == NULL || (r = utf8_single(x->u.s, &cp)) < 0)
            return MP_EINVAL;
        if (r == 0)
            return mp_raise("TypeError", "one character unicode string "
                            "expected");
        *bits = cp;
        return 0;
    }
}

/* elements */

static uint64_t load(const mp_value *v, size_t i)
{
    unsigned char *p = v->data + i * v->t->size;

    switch (v->t->size) {
    case 1:
        return __atomic_load_n(p, __ATOMIC_RELAXED);
    case 2:
        return __atomic_load_n((uint16_t *)(void *)p, __ATOMIC_RELAXED);
    case 4:
        return __atomic_load_n((uint32_t *)(void *)p, __ATOMIC_RELAXED);
    default:
        return __atomic_load_n((uint64_t *)(void *)p, __ATOMIC_RELAXED);
    }
}

static void store(mp_value *v, size_t i, uint64_t bits)
{
    unsigned char *p = v->data + i * v->t->size;

    switch (v->t->size) {
    case 1:
        __atomic_store_n(p, (uint8_t)bits, __ATOMIC_RELAXED);
        break;
    case 2:
        __atomic_store_n((uint16_t *)(void *)p, (uint16_t)bits,
                         __ATOMIC_RELAXED);
        break;
    case 4:
        __atomic_store_n((uint32_t *)(void *)p, (uint32_t)bits,
                         __ATOMIC_RELAXED);
        break;
    default:
        __atomic_store_n((uint64_t *)(void *)p, bits, __ATOMIC_RELAXED);
        break;
    }
}

/* An element's bits as a signed integer of its width. */
static long long sign_extend(uint64_t bits, unsigned size)
{
    switch (size) {
    case 1:
        return (int8_t)bits;
    case 2:
        return (int16_t)bits;
    case 4:
        return (int32_t)bits;
    default:
        return (int64_t)bits;
    }
}

static double real_of(const struct vtype *t, uint64_t bits)
{
    double d;
    float f;
    uint32_t b = (uint32_t)bits;

    if (t->size == 8) {
        memcpy(&d, &bits, 8);
        return d;
    }
    memcpy(&f, &b, 4);
    return f;
}

/* A c_wchar's code point, or the ValueError of one no str holds. */
static int wchar_of(uint64_t bits, unsigned size, uint32_t *cp)
{
    uint32_t c = size == 4 ? (uint32_t)bits : (uint32_t)(bits & 0xffff);

    if (c > 0x10ffff)
        return mp_raise("ValueError", "character U+%" PRIx32 " is not in "
                        "range [U+0000; U+10ffff]", c);
    *cp = c;
    return 0;
}

static int int_of(const struct vtype *t, uint64_t bits, long long *out)
{
    uint32_t cp = 0;
    int r;

    switch (t->kind) {
    case SIGNED:
        *out = sign_extend(bits, t->size);
        return 0;
    case UNSIGNED:
    case CHAR:
        *out = (long long)bits;
        return 0;
    case WCHAR:
        if ((r = wchar_of(bits, t->size, &cp)) < 0)
            return r;
        *out = cp;
        return 0;
    default:
        return mp_raise("TypeError", "'float' object cannot be interpreted "
                        "as an integer");
    }
}

static int double_of(const struct vtype *t, uint64_t bits, double *out)
{
    switch (t->kind) {
    case SIGNED:
        *out = (double)sign_extend(bits, t->size);
        return 0;
    case UNSIGNED:
        *out = (double)bits;
        return 0;
    case REAL:
        *out = real_of(t, bits);
        return 0;
    default:
        return mp_raise("TypeError", "must be real number, not %s",
                        t->kind == CHAR ? "bytes" : "str");
    }
}

/* locking: every access through the calls below */

/* 0 with the lock (or none to take), *dead set when a robust lock's
 * holder died; an error otherwise. */
static int lock_in(mp_value *v, bool *dead)
{
    int r;

    *dead = false;
    if (v->lock == NULL)
        return 0;
    r = mp_lock_acquire(v->lock, 1, MP_FOREVER);
    if (r == MP_EOWNERDEAD) {
        *dead = true;
        return 0;
    }
    return r == 1 ? 0 : r < 0 ? r : MP_ESYNCCORRUPT;
}

/* Gives the lock back: r, or the release's error, or MP_EOWNERDEAD. */
static long long lock_out(mp_value *v, bool dead, long long r)
{
    int u = v->lock != NULL ? mp_lock_release(v->lock) : 0;

    if (r < 0)
        return r;
    if (u < 0)
        return u;
    return dead ? MP_EOWNERDEAD : r;
}

/* making */

static size_t page_round(size_t n)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t p = ps > 0 ? (size_t)ps : 4096;

    return (n + p - 1) / p * p;
}

static void value_release(mp_value *v)
{
    if (v->base != NULL)
        munmap(v->base, v->maplen);
    if (!v->borrowed)
        mp_conn_free(v->handle);
    mp__lock_unref(v->lock);
    free(v);
}

static int value_make(mp_value **out, char code, size_t n, bool array,
                      const mp_value_options *o)
{
    const struct vtype *t = vtype_of(code);
    struct value_page *p;
    mp_value *v;
    size_t len;
    int fd, r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (t == NULL)
        return MP_EVALSIZE;
    if (o != NULL && o->raw && o->lock != NULL)
        return MP_EINVAL;
    if (n > (SIZE_MAX / 2 - VDATA) / t->size)
        return -ENOMEM; /* no memory holds it: CPython's MemoryError */
    len = page_round(VDATA + n * t->size);
    if ((v = calloc(1, sizeof(*v))) == NULL)
        return -ENOMEM;
    v->t = t;
    v->n = n;
    v->array = array;
    if ((fd = memfd_create("libmp-value", MFD_CLOEXEC | MFD_ALLOW_SEALING)) <
        0) {
        r = -errno;
        free(v);
        return r;
    }
    if ((v->handle = mp__conn_wrap(fd, MP__CONN_SYNC)) == NULL) {
        close(fd);
        free(v);
        return -ENOMEM;
    }
    if (ftruncate(fd, (off_t)len) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
            0 ||
        (v->base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                        0)) == MAP_FAILED) {
        r = -errno;
        v->base = NULL;
        value_release(v);
        return r;
    }
    v->maplen = len;
    v->data = (unsigned char *)v->base + VDATA;
    if (o != NULL && o->lock != NULL)
        v->lock = mp__lock_ref(o->lock);
    else if ((o == NULL || !o->raw) && (r = mp_rlock_new(&v->lock)) < 0) {
        v->lock = NULL;
        value_release(v);
        return r;
    }
    p = v->base;
    p->version = VVERSION;
    p->typecode = (unsigned char)code;
    p->count = n;
    p->itemsize = t->size;
    p->flags = array ? VF_ARRAY : 0;
    atomic_store_explicit(&p->magic, VMAGIC, memory_order_release);
    *out = v;
    return 0;
}

mp_arg mp_arg_none(void)
{
    mp_arg a = { .type = MP_ARG_NONE };

    a.u.i = 0;
    return a;
}

int mp_value_new(mp_value **v, char typecode, mp_arg init,
                 const mp_value_options *opts)
{
    const struct vtype *t = vtype_of(typecode);
    bool none = init.type == MP_ARG_NONE && init.u.i == 0;
    uint64_t bits = 0;
    int r;

    if (v == NULL)
        return MP_EINVAL;
    *v = NULL;
    if (t == NULL)
        return MP_EVALSIZE;
    if (!none && (r = convert(t, &init, &bits)) < 0)
        return r;
    if ((r = value_make(v, typecode, 1, false, opts)) < 0)
        return r;
    store(*v, 0, bits);
    return 0;
}

int mp_array_new(mp_value **a, char typecode, size_t n,
                 const mp_value_options *opts)
{
    return value_make(a, typecode, n, true, opts);
}

int mp_array_from(mp_value **a, char typecode, const mp_arg *init, size_t n,
                  const mp_value_options *opts)
{
    uint64_t bits;
    int r;

    if (a != NULL)
        *a = NULL;
    if (init == NULL && n > 0)
        return MP_EINVAL;
    if ((r = value_make(a, typecode, n, true, opts)) < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if ((r = convert((*a)->t, &init[i], &bits)) < 0) {
            *a = mp_value_free(*a);
            return r;
        }
        store(*a, i, bits);
    }
    return 0;
}

int mp_array_from_native(mp_value **a, char typecode, const void *init,
                         size_t n, const mp_value_options *opts)
{
    int r;

    if (a != NULL)
        *a = NULL;
    if (init == NULL && n > 0)
        return MP_EINVAL;
    if ((r = value_make(a, typecode, n, true, opts)) < 0)
        return r;
    if (n > 0)
        memcpy((*a)->data, init, n * (*a)->t->size);
    return 0;
}

mp_value *mp_value_free(mp_value *v)
{
    if (v != NULL && !v->borrowed)
        value_release(v);
    return NULL;
}

/* .value */

/* v's one element, read under the lock.  An array has no .value but a
 * character array's, bytes (str for 'u'), which is no number. */
static int value_read(mp_value *v, uint64_t *bits, bool want_int)
{
    bool dead;
    int r;

    if (v->array && (v->t->kind == CHAR ||
                     (v->t->kind == WCHAR && v->lock == NULL))) {
        const char *tn = v->t->kind == CHAR ? "bytes" : "str";
        return want_int ? mp_raise("TypeError", "'%s' object cannot be "
                                   "interpreted as an integer", tn)
                        : mp_raise("TypeError", "must be real number, not "
                                   "%s", tn);
    }
    if (v->array)
        return no_attribute(v, "value");
    if ((r = lock_in(v, &dead)) < 0)
        return r;
    *bits = load(v, 0);
    return (int)lock_out(v, dead, 0);
}

int mp_value_get_int(mp_value *v, long long *out)
{
    uint64_t bits = 0;
    long long x = 0;
    int r, c;

    if (v == NULL || out == NULL)
        return MP_EINVAL;
    if ((r = value_read(v, &bits, true)) < 0 && r != MP_EOWNERDEAD)
        return r;
    if ((c = int_of(v->t, bits, &x)) < 0)
        return c;
    *out = x;
    return r;
}

int mp_value_get_double(mp_value *v, double *out)
{
    uint64_t bits = 0;
    double x = 0;
    int r, c;

    if (v == NULL || out == NULL)
        return MP_EINVAL;
    if ((r = value_read(v, &bits, false)) < 0 && r != MP_EOWNERDEAD)
        return r;
    if ((c = double_of(v->t, bits, &x)) < 0)
        return c;
    *out = x;
    return r;
}

int mp_value_set(mp_value *v, mp_arg x)
{
    uint64_t bits;
    bool dead;
    int r;

    if (v == NULL)
        return MP_EINVAL;
    if (v->array) {
        if (v->t->kind != CHAR)
            return no_attribute(v, "value");
        if (x.type != MP_ARG_BYTES) {
            char buf[64];
            return mp_raise("TypeError", "bytes expected instead of %s "
                            "instance", arg_type_name(&x, buf, sizeof(buf)));
        }
        return mp_array_set_value(v, x.u.b.buf, x.u.b.len);
    }
    if ((r = convert(v->t, &x, &bits)) < 0)
        return r;
    if ((r = lock_in(v, &dead)) < 0)
        return r;
    store(v, 0, bits);
    return (int)lock_out(v, dead, 0);
}

/* indexing */

static int index_of(const mp_value *a, long long i, size_t *out)
{
    if (!a->array)
        return not_subscriptable(a);
    if (i < 0)
        i += (long long)a->n;
    if (i < 0 || (unsigned long long)i >= a->n)
        return MP_EVALINDEX;
    *out = (size_t)i;
    return 0;
}

static int element_read(mp_value *a, long long index, uint64_t *bits)
{
    size_t i = 0;
    bool dead;
    int r;

    if ((r = index_of(a, index, &i)) < 0 || (r = lock_in(a, &dead)) < 0)
        return r;
    *bits = load(a, i);
    return (int)lock_out(a, dead, 0);
}

int mp_array_get_int(mp_value *a, long long index, long long *out)
{
    uint64_t bits = 0;
    long long x = 0;
    int r, c;

    if (a == NULL || out == NULL)
        return MP_EINVAL;
    if ((r = element_read(a, index, &bits)) < 0 && r != MP_EOWNERDEAD)
        return r;
    if ((c = int_of(a->t, bits, &x)) < 0)
        return c;
    *out = x;
    return r;
}

int mp_array_get_double(mp_value *a, long long index, double *out)
{
    uint64_t bits = 0;
    double x = 0;
    int r, c;

    if (a == NULL || out == NULL)
        return MP_EINVAL;
    if ((r = element_read(a, index, &bits)) < 0 && r != MP_EOWNERDEAD)
        return r;
    if ((c = double_of(a->t, bits, &x)) < 0)
        return c;
    *out = x;
    return r;
}

int mp_array_set(mp_value *a, long long index, mp_arg x)
{
    uint64_t bits = 0;
    size_t i = 0;
    bool dead;
    int r;

    if (a == NULL)
        return MP_EINVAL;
    /* CPython looks at the index first, then converts. */
    if ((r = index_of(a, index, &i)) < 0 ||
        (r = convert(a->t, &x, &bits)) < 0 || (r = lock_in(a, &dead)) < 0)
        return r;
    store(a, i, bits);
    return (int)lock_out(a, dead, 0);
}

/* slices */

/* PySlice_AdjustIndices() for step 1: the slice's start and length. */
static void slice_of(size_t n, long long start, long long stop, size_t *from,
                     size_t *len)
{
    long long len_ = (long long)n;

    if (start < 0) {
        start += len_;
        if (start < 0)
            start = 0;
    } else if (start > len_) {
        start = len_;
    }
    if (stop < 0) {
        stop += len_;
        if (stop < 0)
            stop = 0;
    } else if (stop > len_) {
        stop = len_;
    }
    *from = (size_t)start;
    *len = stop > start ? (size_t)(stop - start) : 0;
}

long long mp_array_read(mp_value *a, long long start, long long stop,
                        void *out, size_t out_elems)
{
    size_t from, len, copy;
    bool dead;
    int r;

    if (a == NULL || (out == NULL && out_elems > 0))
        return MP_EINVAL;
    if (!a->array)
        return not_subscriptable(a);
    slice_of(a->n, start, stop, &from, &len);
    copy = len < out_elems ? len : out_elems;
    if ((r = lock_in(a, &dead)) < 0)
        return r;
    if (copy > 0)
        memcpy(out, a->data + from * a->t->size, copy * a->t->size);
    return lock_out(a, dead, (long long)len);
}

int mp_array_write(mp_value *a, long long start, long long stop,
                   const void *in, size_t n)
{
    size_t from, len;
    bool dead;
    int r;

    if (a == NULL || (in == NULL && n > 0))
        return MP_EINVAL;
    if (!a->array)
        return not_subscriptable(a);
    slice_of(a->n, start, stop, &from, &len);
    if (len != n)
        return MP_EVALSLICE;
    if ((r = lock_in(a, &dead)) < 0)
        return r;
    if (n > 0)
        memcpy(a->data + from * a->t->size, in, n * a->t->size);
    return (int)lock_out(a, dead, 0);
}

/* .value and .raw of character arrays */

/* Whether a has the attribute: .value on 'c' arrays and raw 'u' ones,
 * .raw on 'c' arrays (ctypes' c_char and c_wchar arrays; CPython's
 * SynchronizedString wraps the first only).  A Value's .value is read
 * with mp_value_get_*(). */
static int text_check(const mp_value *a, bool raw)
{
    if (!a->array && !raw)
        return MP_EINVAL;
    if (a->array && (a->t->kind == CHAR ||
                     (!raw && a->t->kind == WCHAR && a->lock == NULL)))
        return 0;
    return no_attribute(a, raw ? "raw" : "value");
}

/* The elements up to the first 0 (raw: all), copied as mp_array_read()
 * copies. */
static long long text_read(mp_value *a, void *out, size_t cap, bool raw)
{
    size_t len = 0, size, copy;
    bool dead;
    int r;

    if (a == NULL || (out == NULL && cap > 0))
        return MP_EINVAL;
    if ((r = text_check(a, raw)) < 0)
        return r;
    size = a->t->size;
    if ((r = lock_in(a, &dead)) < 0)
        return r;
    if (raw)
        len = a->n;
    else
        while (len < a->n && load(a, len) != 0)
            len++;
    copy = len < cap ? len : cap;
    if (copy > 0)
        memcpy(out, a->data, copy * size);
    if (copy < cap)
        memset((unsigned char *)out + copy * size, 0, size);
    return lock_out(a, dead, (long long)len);
}

long long mp_array_value(mp_value *a, void *out, size_t cap)
{
    return text_read(a, out, cap, false);
}

long long mp_array_raw(mp_value *a, void *out, size_t cap)
{
    return text_read(a, out, cap, true);
}

static int text_write(mp_value *a, const void *buf, size_t len, bool raw)
{
    size_t size;
    bool dead;
    int r;

    if (a == NULL || (buf == NULL && len > 0))
        return MP_EINVAL;
    if ((r = text_check(a, raw)) < 0)
        return r;
    if (len > a->n)
        return mp_raise("ValueError", "%s too long",
                        a->t->kind == CHAR ? "byte string" : "string");
    size = a->t->size;
    if ((r = lock_in(a, &dead)) < 0)
        return r;
    if (len > 0)
        memcpy(a->data, buf, len * size);
    if (!raw && len < a->n)
        store(a, len, 0);
    return (int)lock_out(a, dead, 0);
}

int mp_array_set_value(mp_value *a, const void *buf, size_t len)
{
    return text_write(a, buf, len, false);
}

int mp_array_set_raw(mp_value *a, const void *buf, size_t len)
{
    return text_write(a, buf, len, true);
}

/* the object */

size_t mp_value_len(const mp_value *v)
{
    return v != NULL ? v->n : 0;
}

char mp_value_typecode(const mp_value *v)
{
    return v != NULL ? v->t->code : '\0';
}

size_t mp_value_itemsize(const mp_value *v)
{
    return v != NULL ? v->t->size : 0;
}

int mp_value_is_raw(const mp_value *v)
{
    return v != NULL && v->lock == NULL;
}

void *mp_value_ptr(mp_value *v)
{
    return v != NULL ? v->data : NULL;
}

int mp_value_get_lock(mp_value *v, mp_lock **lock)
{
    if (v == NULL || lock == NULL)
        return MP_EINVAL;
    *lock = v->lock;
    return v->lock != NULL ? 0 : no_attribute(v, "get_lock");
}

int mp_value_acquire(mp_value *v, int block, double timeout)
{
    if (v == NULL)
        return MP_EINVAL;
    return v->lock != NULL ? mp_lock_acquire(v->lock, block, timeout)
                           : no_attribute(v, "acquire");
}

int mp_value_release(mp_value *v)
{
    if (v == NULL)
        return MP_EINVAL;
    return v->lock != NULL ? mp_lock_release(v->lock)
                           : no_attribute(v, "release");
}

/* repr() */

/* Python's repr() of a float: the shortest digits that read back as x,
 * in exponent form when the point is more than 16 places right or 4
 * places left of them (float_repr_style 'short'). */
static void float_repr(double x, char *out, size_t size)
{
    char e[40], digits[24], exp[16];
    int prec, ex, nd = 0, point;
    char *s, *mant;

    if (isnan(x) || isinf(x)) {
        snprintf(out, size, "%s", isnan(x) ? "nan" : x < 0 ? "-inf" : "inf");
        return;
    }
    for (prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec, x);
        if (strtod(e, NULL) == x)
            break;
    }
    s = e;
    mant = s[0] == '-' ? s + 1 : s;
    for (char *c = mant; *c != 'e'; c++)
        if (*c != '.')
            digits[nd++] = *c;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    ex = atoi(strchr(mant, 'e') + 1);
    point = ex + 1;
    if (point > 16 || point <= -4) {
        snprintf(exp, sizeof(exp), "e%c%02d", ex < 0 ? '-' : '+',
                 ex < 0 ? -ex : ex);
        snprintf(out, size, "%s%c%s%s%s", s[0] == '-' ? "-" : "", digits[0],
                 nd > 1 ? "." : "", digits + 1, exp);
    } else if (point <= 0) {
        snprintf(out, size, "%s0.%.*s%s", s[0] == '-' ? "-" : "", -point,
                 "0000", digits);
    } else if (point >= nd) {
        snprintf(out, size, "%s%s%.*s.0", s[0] == '-' ? "-" : "", digits,
                 point - nd, "0000000000000000");
    } else {
        snprintf(out, size, "%s%.*s.%s", s[0] == '-' ? "-" : "", point,
                 digits, digits + point);
    }
}

/* Code points Python's str.isprintable() rejects, as far as ranges can
 * say: controls, spaces but ' ', format characters, surrogates, private
 * use, non-characters (not those Unicode leaves unassigned). */
static bool printable(uint32_t c)
{
    static const uint32_t no[][2] = {
        { 0x0000, 0x001f },   { 0x007f, 0x00a0 },   { 0x00ad, 0x00ad },
        { 0x0600, 0x0605 },   { 0x061c, 0x061c },   { 0x06dd, 0x06dd },
        { 0x070f, 0x070f },   { 0x08e2, 0x08e2 },   { 0x1680, 0x1680 },
        { 0x180e, 0x180e },   { 0x2000, 0x200f },   { 0x2028, 0x202f },
        { 0x205f, 0x2064 },   { 0x2066, 0x206f },   { 0x3000, 0x3000 },
        { 0xd800, 0xf8ff },   { 0xfdd0, 0xfdef },   { 0xfeff, 0xfeff },
        { 0xfff9, 0xfffb },   { 0x110bd, 0x110bd }, { 0x110cd, 0x110cd },
        { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a },
        { 0xe0001, 0xe0001 }, { 0xe0020, 0xe007f }, { 0xf0000, 0x10ffff },
    };

    if ((c & 0xfffe) == 0xfffe)
        return false;
    for (size_t i = 0; i < ARRAY_SIZE(no); i++)
        if (c >= no[i][0] && c <= no[i][1])
            return false;
    return true;
}

/* Python's repr() of a one-element bytes (is_str 0) or str: the quotes
 * and escapes CPython chooses. */
static void char_repr(uint32_t c, bool is_str, char *out, size_t size)
{
    char q = c == '\'' ? '"' : '\'', body[16];

    if (c == '\\' || c == (uint32_t)q)
        snprintf(body, sizeof(body), "\\%c", (char)c);
    else if (c == '\t' || c == '\n' || c == '\r')
        snprintf(body, sizeof(body), "\\%c",
                 c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
    else if (c >= 0x20 && c < 0x7f)
        snprintf(body, sizeof(body), "%c", (char)c);
    else if (!is_str || c < 0x80 || (!printable(c) && c < 0x100))
        snprintf(body, sizeof(body), "\\x%02" PRIx32, c);
    else if (!printable(c))
        snprintf(body, sizeof(body), c < 0x10000 ? "\\u%04" PRIx32
                                                 : "\\U%08" PRIx32, c);
    else if (c < 0x800)
        snprintf(body, sizeof(body), "%c%c", (char)(0xc0 | c >> 6),
                 (char)(0x80 | (c & 0x3f)));
    else if (c < 0x10000)
        snprintf(body, sizeof(body), "%c%c%c", (char)(0xe0 | c >> 12),
                 (char)(0x80 | (c >> 6 & 0x3f)), (char)(0x80 | (c & 0x3f)));
    else
        snprintf(body, sizeof(body), "%c%c%c%c", (char)(0xf0 | c >> 18),
                 (char)(0x80 | (c >> 12 & 0x3f)),
                 (char)(0x80 | (c >> 6 & 0x3f)), (char)(0x80 | (c & 0x3f)));
    snprintf(out, size, "%s%c%s%c", is_str ? "" : "b", q, body, q);
}

/* "c_int(3)": the ctypes object's repr. */
static int scalar_repr(const mp_value *v, char *out, size_t size)
{
    uint64_t bits = load(v, 0);
    const struct vtype *t = v->t;
    uint32_t cp = 0;
    int r;

    switch (t->kind) {
    case SIGNED:
        snprintf(out, size, "%s(%lld)", t->ctype, sign_extend(bits, t->size));
        return 0;
    case UNSIGNED:
        snprintf(out, size, "%s(%llu)", t->ctype, (unsigned long long)bits);
        return 0;
    case REAL: {
        char f[80];
        float_repr(real_of(t, bits), f, sizeof(f));
        snprintf(out, size, "%s(%s)", t->ctype, f);
        return 0;
    }
    case CHAR: {
        char c[16];
        char_repr((uint32_t)bits, false, c, sizeof(c));
        snprintf(out, size, "%s(%s)", t->ctype, c);
        return 0;
    }
    default:
        if ((r = wchar_of(bits, t->size, &cp)) < 0)
            return r;
        {
            char c[24];
            char_repr(cp, true, c, sizeof(c));
            snprintf(out, size, "%s(%s)", t->ctype, c);
        }
        return 0;
    }
}

int mp_value_repr(mp_value *v, char *buf, size_t size)
{
    char obj[160], name[64];
    int r;

    if (v == NULL || (buf == NULL && size > 0))
        return MP_EINVAL;
    if (!v->array) {
        if ((r = scalar_repr(v, obj, sizeof(obj))) < 0)
            return r;
    } else {
        snprintf(obj, sizeof(obj),
                 "<multiprocessing.sharedctypes.%s object at 0x%" PRIxPTR
                 ">", obj_name(v, name, sizeof(name)), (uintptr_t)v);
    }
    if (v->lock == NULL)
        return snprintf(buf, size, "%s", obj);
    return snprintf(buf, size, "<%s wrapper for %s>",
                    class_name(v, name, sizeof(name)), obj);
}

/* handing over (args.c) */

mp_conn *mp__value_handle(mp_value *v)
{
    return v->handle;
}

mp_lock *mp__value_lock(mp_value *v)
{
    return v->lock;
}

int mp__value_refuse(mp_value *v)
{
    char buf[64];

    /* CPython's pickling: assert_spawning() names the object's class. */
    if (v != NULL && v->lock != NULL && !v->array)
        return MP_EVALSHARE;
    return mp_raise("RuntimeError", "%s objects should only be shared "
                    "between processes through inheritance",
                    v != NULL ? class_name(v, buf, sizeof(buf))
                              : "Synchronized");
}

/* The header of a value another process handed over, checked: a sealed
 * memfd, this version, a typecode and element size this library makes,
 * and elements that fit the memory. */
static bool page_valid(const struct value_page *p, size_t maplen)
{
    const struct vtype *t;

    if (atomic_load_explicit(&p->magic, memory_order_acquire) != VMAGIC ||
        p->version != VVERSION || p->typecode > 0x7f ||
        (t = vtype_of((char)p->typecode)) == NULL || p->itemsize != t->size ||
        (p->flags & ~(uint32_t)VF_ARRAY) != 0 ||
        (!(p->flags & VF_ARRAY) && p->count != 1))
        return false;
    return p->count <= (maplen - VDATA) / t->size;
}

mp_value *mp__value_view(mp_conn *handle, mp_lock *lock)
{
    struct value_page *p, copy;
    struct stat st;
    mp_value *v;
    void *base;
    size_t len;
    int fd = handle != NULL ? mp_conn_fileno(handle) : -1;

    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < VDATA ||
        (uint64_t)st.st_size > SIZE_MAX / 2 ||
        fcntl(fd, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
        return NULL;
    len = (size_t)st.st_size;
    base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return NULL;
    /* One read of each field: a peer may be writing them meanwhile. */
    p = base;
    atomic_init(&copy.magic, atomic_load(&p->magic));
    copy.version = __atomic_load_n(&p->version, __ATOMIC_RELAXED);
    copy.typecode = __atomic_load_n(&p->typecode, __ATOMIC_RELAXED);
    copy.count = __atomic_load_n(&p->count, __ATOMIC_RELAXED);
    copy.itemsize = __atomic_load_n(&p->itemsize, __ATOMIC_RELAXED);
    copy.flags = __atomic_load_n(&p->flags, __ATOMIC_RELAXED);
    if (!page_valid(&copy, len) || (v = calloc(1, sizeof(*v))) == NULL) {
        munmap(base, len);
        return NULL;
    }
    v->borrowed = true;
    v->array = (copy.flags & VF_ARRAY) != 0;
    v->t = vtype_of((char)copy.typecode);
    v->n = (size_t)copy.count;
    v->handle = handle;
    v->base = base;
    v->maplen = len;
    v->data = (unsigned char *)base + VDATA;
    v->lock = lock != NULL ? mp__lock_ref(lock) : NULL;
    return v;
}

void mp__value_view_free(mp_value *v)
{
    if (v != NULL)
        value_release(v);
}

#ifdef MP_TEST_HOOKS
void *mp__value_page(mp_value *v)
{
    return v->base;
}
#endif
