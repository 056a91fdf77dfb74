/*
 * value_conv.c - the ctypes side of shared values (CPython: ctypes'
 * setters and getters of its simple types, and the reprs of ctypes
 * objects and sharedctypes' wrappers): the typecodes' types and names,
 * the conversions in and out with their errors, letter for letter, and
 * Python's repr() of a float, a byte and a character.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "pyrepr.h"
#include "value.h"

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

const struct vtype *mp__vtype_of(char code)
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
const char *mp__value_class(const mp_value *v, char *buf, size_t size)
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

/* The Python type of an argument, as a TypeError names it. */
const char *mp__value_arg_type(const mp_arg *x, char *buf, size_t size)
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
        return x->u.v != NULL ? mp__value_class(x->u.v, buf, size)
                              : "Synchronized";
    default:
        return "object";
    }
}

/* conversions in */

/* The one code point of a UTF-8 string: 1 and *cp, 0 for another count,
 * -1 for what is not UTF-8. */
static int utf8_single(const char *s, uint32_t *cp)
{
    int count = 0, r;

    while ((r = mp__utf8_next(&s, cp)) > 0)
        count++;
    return r < 0 ? -1 : count == 1 ? 1 : 0;
}

/* x as the bits of one element of type t (its low t->size bytes). */
int mp__value_convert(const struct vtype *t, const mp_arg *x,
                      uint64_t *bits)
{
    char buf[64];
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
                            "as an integer",
                            mp__value_arg_type(x, buf, sizeof(buf)));
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
            return mp_raise("TypeError", "must be real number, not %s",
                            mp__value_arg_type(x, buf, sizeof(buf)));
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
                            "of %s instance",
                            mp__value_arg_type(x, buf, sizeof(buf)));
        if (x->u.s == NULL || (r = utf8_single(x->u.s, &cp)) < 0)
            return MP_EINVAL;
        if (r == 0)
            return mp_raise("TypeError", "one character unicode string "
                            "expected");
        *bits = cp;
        return 0;
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

int mp__value_int_of(const struct vtype *t, uint64_t bits, long long *out)
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

int mp__value_double_of(const struct vtype *t, uint64_t bits, double *out)
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

/* Python's repr() of a one-element bytes (is_str 0) or str: the quotes
 * and escapes CPython chooses. */
static void char_repr(uint32_t c, bool is_str, char *out, size_t size)
{
    char q = c == '\'' ? '"' : '\'', body[12];

    /* a byte above 0x7f is \xNN whatever str would make of it */
    if (!is_str && c >= 0x80)
        snprintf(body, sizeof(body), "\\x%02" PRIx32, c);
    else
        mp__py_escape(c, q, body);
    snprintf(out, size, "%s%c%s%c", is_str ? "" : "b", q, body, q);
}

/* "c_int(3)": the ctypes object's repr. */
static int scalar_repr(const mp_value *v, char *out, size_t size)
{
    uint64_t bits = value_load(v, 0);
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
                    mp__value_class(v, name, sizeof(name)), obj);
}
