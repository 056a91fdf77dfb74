/*
 * value.c - Value, RawValue, Array and RawArray (CPython: sharedctypes.py):
 * the objects, their locking, and their handing over to children.  The
 * ctypes side (conversions, names, reprs) is value_conv.c's.
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
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pyrepr.h"
#include "value.h"

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

static int no_attribute(const mp_value *v, const char *attr)
{
    char buf[64];

    return mp_raise("AttributeError", "'%s' object has no attribute '%s'",
                    mp__value_class(v, buf, sizeof(buf)), attr);
}

static int not_subscriptable(const mp_value *v)
{
    char buf[64];

    return mp_raise("TypeError", "'%s' object is not subscriptable",
                    mp__value_class(v, buf, sizeof(buf)));
}

/* v[i] = x on a Value: Python names the assignment, not the reading. */
static int no_item_assignment(const mp_value *v)
{
    char buf[64];

    return mp_raise("TypeError", "'%s' object does not support item "
                    "assignment", mp__value_class(v, buf, sizeof(buf)));
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

static size_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);

    return ps > 0 ? (size_t)ps : 4096;
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
    const struct vtype *t = mp__vtype_of(code);
    struct value_page *p;
    mp_value *v;
    size_t len, page = page_size();
    int fd, r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (t == NULL)
        return MP_EVALSIZE;
    if (o != NULL && o->raw && o->lock != NULL)
        return MP_EINVAL;
    /* No memory holds it: CPython's MemoryError.  The bound leaves room
     * for the rounding up to pages, so that the length stays an off_t
     * (ftruncate() would call a larger one an invalid argument). */
    if (n > (SIZE_MAX / 2 - VDATA - page) / t->size)
        return -ENOMEM;
    len = (VDATA + n * t->size + page - 1) / page * page;
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
    const struct vtype *t = mp__vtype_of(typecode);
    bool none = init.type == MP_ARG_NONE && init.u.i == 0;
    uint64_t bits = 0;
    int r;

    if (v == NULL)
        return MP_EINVAL;
    *v = NULL;
    if (t == NULL)
        return MP_EVALSIZE;
    if (!none && (r = mp__value_convert(t, &init, &bits)) < 0)
        return r;
    if ((r = value_make(v, typecode, 1, false, opts)) < 0)
        return r;
    value_store(*v, 0, bits);
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
        if ((r = mp__value_convert((*a)->t, &init[i], &bits)) < 0) {
            *a = mp_value_free(*a);
            return r;
        }
        value_store(*a, i, bits);
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
    *bits = value_load(v, 0);
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
    if ((c = mp__value_int_of(v->t, bits, &x)) < 0)
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
    if ((c = mp__value_double_of(v->t, bits, &x)) < 0)
        return c;
    *out = x;
    return r;
}

/* A raw 'u' array's `.value = s` (ctypes' c_wchar arrays take a str):
 * s's code points, a 0 after them when they are fewer than the
 * elements. */
static int wide_set_value(mp_value *a, const mp_arg *x)
{
    const char *s;
    size_t len = 0;
    uint32_t cp;
    int r;

    if (x->type != MP_ARG_STR) {
        char buf[64];
        return mp_raise("TypeError", "unicode string expected instead of "
                        "%s instance",
                        mp__value_arg_type(x, buf, sizeof(buf)));
    }
    if ((s = x->u.s) == NULL)
        return MP_EINVAL;
    while ((r = mp__utf8_next(&s, &cp)) > 0)
        len++;
    if (r < 0)
        return MP_EINVAL;
    if (len > a->n)
        return mp_raise("ValueError", "string too long");
    s = x->u.s;
    for (size_t i = 0; mp__utf8_next(&s, &cp) > 0; i++)
        value_store(a, i, cp);
    if (len < a->n)
        value_store(a, len, 0);
    return 0;
}

int mp_value_set(mp_value *v, mp_arg x)
{
    uint64_t bits;
    bool dead;
    int r;

    if (v == NULL)
        return MP_EINVAL;
    if (v->array) {
        if (v->t->kind == WCHAR && v->lock == NULL)
            return wide_set_value(v, &x);
        if (v->t->kind != CHAR)
            return no_attribute(v, "value");
        if (x.type != MP_ARG_BYTES) {
            char buf[64];
            return mp_raise("TypeError", "bytes expected instead of %s "
                            "instance",
                            mp__value_arg_type(&x, buf, sizeof(buf)));
        }
        return mp_array_set_value(v, x.u.b.buf, x.u.b.len);
    }
    if ((r = mp__value_convert(v->t, &x, &bits)) < 0)
        return r;
    if ((r = lock_in(v, &dead)) < 0)
        return r;
    value_store(v, 0, bits);
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
    *bits = value_load(a, i);
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
    if ((c = mp__value_int_of(a->t, bits, &x)) < 0)
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
    if ((c = mp__value_double_of(a->t, bits, &x)) < 0)
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
    if (!a->array)
        return no_item_assignment(a);
    /* CPython looks at the index first, then converts. */
    if ((r = index_of(a, index, &i)) < 0 ||
        (r = mp__value_convert(a->t, &x, &bits)) < 0 ||
        (r = lock_in(a, &dead)) < 0)
        return r;
    value_store(a, i, bits);
    return (int)lock_out(a, dead, 0);
}

/* slices */

/* count elements from element `from` of a to out, and from in: under the
 * lock, with memcpy(); a raw array's one element at a time, each moved
 * whole, as its one-element accesses move them, since no lock orders
 * them against another thread's. */
static void elems_out(const mp_value *a, size_t from, void *out,
                      size_t count)
{
    unsigned char *o = out;
    size_t size = a->t->size;

    if (count == 0) /* out or in may be NULL then */
        return;
    if (a->lock != NULL) {
        memcpy(out, a->data + from * size, count * size);
        return;
    }
    for (size_t i = 0; i < count; i++, o += size) {
        uint64_t b64 = value_load(a, from + i);
        uint8_t b8 = (uint8_t)b64;
        uint16_t b16 = (uint16_t)b64;
        uint32_t b32 = (uint32_t)b64;

        switch (size) {
        case 1:
            memcpy(o, &b8, 1);
            break;
        case 2:
            memcpy(o, &b16, 2);
            break;
        case 4:
            memcpy(o, &b32, 4);
            break;
        default:
            memcpy(o, &b64, 8);
            break;
        }
    }
}

static void elems_in(mp_value *a, size_t from, const void *in, size_t count)
{
    const unsigned char *p = in;
    size_t size = a->t->size;

    if (count == 0) /* out or in may be NULL then */
        return;
    if (a->lock != NULL) {
        memcpy(a->data + from * size, in, count * size);
        return;
    }
    for (size_t i = 0; i < count; i++, p += size) {
        uint8_t b8;
        uint16_t b16;
        uint32_t b32;
        uint64_t b64;

        switch (size) {
        case 1:
            memcpy(&b8, p, 1), b64 = b8;
            break;
        case 2:
            memcpy(&b16, p, 2), b64 = b16;
            break;
        case 4:
            memcpy(&b32, p, 4), b64 = b32;
            break;
        default:
            memcpy(&b64, p, 8);
            break;
        }
        value_store(a, from + i, b64);
    }
}

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
    elems_out(a, from, out, copy);
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
        return no_item_assignment(a);
    slice_of(a->n, start, stop, &from, &len);
    if (len != n)
        return MP_EVALSLICE;
    if ((r = lock_in(a, &dead)) < 0)
        return r;
    elems_in(a, from, in, n);
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
        while (len < a->n && value_load(a, len) != 0)
            len++;
    copy = len < cap ? len : cap;
    elems_out(a, 0, out, copy);
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
    bool dead;
    int r;

    if (a == NULL || (buf == NULL && len > 0))
        return MP_EINVAL;
    if ((r = text_check(a, raw)) < 0)
        return r;
    if (len > a->n)
        return mp_raise("ValueError", "%s too long",
                        a->t->kind == CHAR ? "byte string" : "string");
    if ((r = lock_in(a, &dead)) < 0)
        return r;
    elems_in(a, 0, buf, len);
    if (!raw && len < a->n)
        value_store(a, len, 0);
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
                    v != NULL ? mp__value_class(v, buf, sizeof(buf))
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
        (t = mp__vtype_of((char)p->typecode)) == NULL ||
        p->itemsize != t->size ||
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
    v->t = mp__vtype_of((char)copy.typecode);
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
