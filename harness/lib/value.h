/*
 * value.h - what value.c (the objects, their locking and handing over) and
 * value_conv.c (ctypes' conversions, names and reprs) share.  Not
 * installed.
 */
#ifndef MP_VALUE_H
#define MP_VALUE_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

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

/* The typecode's type, or NULL for one ctypes has not. */
const struct vtype *mp__vtype_of(char code);

/* The class of the object, as CPython's messages name it: "Synchronized",
 * "SynchronizedArray", "SynchronizedString", "c_int", "c_int_Array_3"
 * (written to buf when it is made up). */
const char *mp__value_class(const mp_value *v, char *buf, size_t size);

/* The Python type of an argument, as a TypeError names it: "int",
 * "NoneType", "Queue", ... */
const char *mp__value_arg_type(const mp_arg *x, char *buf, size_t size);

/* x as the bits of one element of type t (its low t->size bytes), or
 * ctypes' error (MP_ERAISED), MP_EINVAL for a str that is not UTF-8. */
int mp__value_convert(const struct vtype *t, const mp_arg *x,
                      uint64_t *bits);
/* An element's bits as .value gives them, or the TypeError (ValueError for
 * a c_wchar no str holds). */
int mp__value_int_of(const struct vtype *t, uint64_t bits, long long *out);
int mp__value_double_of(const struct vtype *t, uint64_t bits, double *out);

/* Element i, moved whole (a relaxed atomic load or store: a plain move
 * here), so that accesses from several threads are defined. */
static inline uint64_t value_load(const mp_value *v, size_t i)
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

static inline void value_store(mp_value *v, size_t i, uint64_t bits)
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

#endif /* MP_VALUE_H */
