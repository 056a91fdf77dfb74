/*
 * test_value.c - Value, RawValue, Array and RawArray (value.c) as CPython's
 * sharedctypes.py: every conversion and error of every typecode against
 * what CPython gives (value_cpython.h), the reads back, indexing and
 * slices with their errors, the 'c' arrays' value and raw, reprs, the
 * lock variants, values handed to children under fork, spawn and
 * forkserver (and refused by a pool), locked increments from four
 * processes, and memory no libmp process wrote (a peer's scribble, a
 * descriptor that is not a value).  A robust lock's holder killed
 * mid-update is in test_value_death.c.
 */
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wchar.h>

#include "check.h"
#include "internal.h"
#include "test_hooks.h"
#include "value_cpython.h"

static const char *const methods[] = { "fork", "spawn", "forkserver" };
static const mp_value_options raw = { .raw = 1 };

/* "Exception: message", as CPython prints the last line. */
static const char *exc_line(int err)
{
    static char buf[512];

    snprintf(buf, sizeof(buf), "%s: %s", mp_exception_name(err),
             mp_strerror(err));
    return buf;
}

static const char *repr_of(mp_value *v)
{
    static char buf[512];

    ASSERT_TRUE(mp_value_repr(v, buf, sizeof(buf)) > 0);
    return buf;
}

static mp_process *start(const char *method, const mp_target *t,
                         const mp_arg *v, size_t n)
{
    mp_process_options o = { 0 };
    mp_process *p;

    ASSERT_OK(mp_get_context(&o.context, method));
    ASSERT_OK(mp_process_create(&p, t, v, n, &o));
    ASSERT_OK(mp_process_start(p));
    return p;
}

static void join_code(mp_process *p, int want)
{
    int code = -1000;

    ASSERT_OK(mp_process_join(p, 60));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(want, code);
    mp_process_free(p);
}

/* conversions, against CPython */

/* The case as a set on a raw value, and as the initial value of a new
 * one (where mp_arg_none() is no value: zero). */
static void check_case(const struct cpython_case *c)
{
    mp_value *v = NULL;
    int r;
    bool err = strncmp(c->want, "c_", 2) != 0;

    ASSERT_OK(mp_value_new(&v, c->typecode, mp_arg_none(), &raw));
    r = mp_value_set(v, c->x);
    if (err) {
        if (r >= 0)
            check_fail(__FILE__, __LINE__, "'%c' set: got %s, want %s",
                       c->typecode, repr_of(v), c->want);
        ASSERT_STREQ(c->want, exc_line(r));
    } else {
        ASSERT_EQ(0, r);
        ASSERT_STREQ(c->want, repr_of(v));
    }
    mp_value_free(v);
    r = mp_value_new(&v, c->typecode, c->x, &raw);
    if (c->x.type == MP_ARG_NONE && c->x.u.i == 0) {
        ASSERT_EQ(0, r);
        ASSERT_EQ(0, ((unsigned char *)mp_value_ptr(v))[0]);
    } else if (err) {
        ASSERT_STREQ(c->want, exc_line(r));
        ASSERT_TRUE(v == NULL);
    } else {
        ASSERT_EQ(0, r);
        ASSERT_STREQ(c->want, repr_of(v));
    }
    mp_value_free(v);
}

TEST(every_conversion_of_every_typecode_is_cpythons)
{
    cpython_cases_each(check_case);
}

TEST(a_typecode_ctypes_has_not_is_this_type_has_no_size)
{
    mp_value *v = (mp_value *)1;

    ASSERT_EQ(MP_EVALSIZE, mp_value_new(&v, 'x', MP_ARG(0), NULL));
    ASSERT_TRUE(v == NULL);
    ASSERT_STREQ("TypeError: this type has no size", exc_line(MP_EVALSIZE));
    ASSERT_EQ(MP_EVALSIZE, mp_value_new(&v, '\0', mp_arg_none(), NULL));
    ASSERT_EQ(MP_EVALSIZE, mp_array_new(&v, 'x', 3, NULL));
    ASSERT_EQ(MP_EVALSIZE, mp_array_from(&v, 'Z', NULL, 0, NULL));
    /* The typecode is looked at before the value, as CPython's sizeof. */
    ASSERT_EQ(MP_EVALSIZE, mp_value_new(&v, 'x', MP_ARG("s"), NULL));
    ASSERT_EQ(MP_EINVAL, mp_value_new(NULL, 'i', MP_ARG(0), NULL));
}

TEST(sizes_and_typecodes_are_ctypes)
{
    static const char codes[] = "bBhHiIlLqQfdcu";
    static const size_t sizes[] = { 1, 1, 2, 2, sizeof(int), sizeof(int),
                                    sizeof(long), sizeof(long), 8, 8, 4, 8,
                                    1, sizeof(wchar_t) };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        mp_value *v;
        ASSERT_OK(mp_value_new(&v, codes[i], mp_arg_none(), NULL));
        ASSERT_EQ(codes[i], mp_value_typecode(v));
        ASSERT_EQ(sizes[i], mp_value_itemsize(v));
        ASSERT_EQ(1, mp_value_len(v));
        ASSERT_EQ(0, mp_value_is_raw(v));
        mp_value_free(v);
    }
    ASSERT_EQ(0, mp_value_len(NULL));
    ASSERT_EQ('\0', mp_value_typecode(NULL));
    ASSERT_TRUE(mp_value_ptr(NULL) == NULL);
}

/* reading back */

TEST(get_int_and_get_double_read_what_was_converted)
{
    mp_value *v;
    long long i;
    double d;

    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(2147483648LL), NULL));
    ASSERT_OK(mp_value_get_int(v, &i));
    ASSERT_EQ(-2147483648LL, i);
    ASSERT_OK(mp_value_get_double(v, &d));
    ASSERT_TRUE(d == -2147483648.0);
    mp_value_free(v);

    ASSERT_OK(mp_value_new(&v, 'b', MP_ARG(200), NULL));
    ASSERT_OK(mp_value_get_int(v, &i));
    ASSERT_EQ(-56, i);
    mp_value_free(v);

    /* The unsigned 64-bit types give their bits. */
    ASSERT_OK(mp_value_new(&v, 'Q', mp_arg_uint(ULLONG_MAX), NULL));
    ASSERT_OK(mp_value_get_int(v, &i));
    ASSERT_TRUE((unsigned long long)i == ULLONG_MAX);
    ASSERT_OK(mp_value_get_double(v, &d));
    ASSERT_TRUE(d == 18446744073709551615.0);
    mp_value_free(v);

    ASSERT_OK(mp_value_new(&v, 'f', MP_ARG(0.1), NULL));
    ASSERT_OK(mp_value_get_double(v, &d));
    ASSERT_TRUE(d == (double)0.1f && d != 0.1);
    ASSERT_EQ(MP_ERAISED, mp_value_get_int(v, &i));
    ASSERT_STREQ("TypeError: 'float' object cannot be interpreted as an "
                 "integer", exc_line(MP_ERAISED));
    /* An int converts, as ctypes' float setter takes one. */
    ASSERT_OK(mp_value_set(v, MP_ARG(3)));
    ASSERT_OK(mp_value_get_double(v, &d));
    ASSERT_TRUE(d == 3.0);
    ASSERT_TRUE(*mp_value_f32(v) == 3.0f);
    mp_value_free(v);

    ASSERT_OK(mp_value_new(&v, 'c', mp_arg_bytes("a", 1), NULL));
    ASSERT_OK(mp_value_get_int(v, &i));
    ASSERT_EQ('a', i);
    ASSERT_EQ(MP_ERAISED, mp_value_get_double(v, &d));
    ASSERT_STREQ("TypeError: must be real number, not bytes",
                 exc_line(MP_ERAISED));
    mp_value_free(v);

    ASSERT_OK(mp_value_new(&v, 'u', MP_ARG("\xe2\x82\xac"), NULL)); /* € */
    ASSERT_OK(mp_value_get_int(v, &i));
    ASSERT_EQ(0x20ac, i);
    ASSERT_EQ(MP_ERAISED, mp_value_get_double(v, &d));
    ASSERT_STREQ("TypeError: must be real number, not str",
                 exc_line(MP_ERAISED));
    ASSERT_STREQ("<Synchronized wrapper for c_wchar('\xe2\x82\xac')>",
                 repr_of(v));
    /* Not UTF-8: C's str has no other form to be read as. */
    ASSERT_EQ(MP_EINVAL, mp_value_set(v, MP_ARG("\xff")));
    ASSERT_EQ(MP_EINVAL, mp_value_set(v, MP_ARG("\xed\xa0\x80")));
    mp_value_free(v);
}

TEST(a_wchar_no_str_can_hold_is_cpythons_value_error)
{
    mp_value *v;
    long long i;
    char buf[64];

    ASSERT_OK(mp_value_new(&v, 'u', MP_ARG("z"), &raw));
    *(int32_t *)mp_value_ptr(v) = 0x110000;
    ASSERT_EQ(MP_ERAISED, mp_value_get_int(v, &i));
    ASSERT_STREQ("ValueError: character U+110000 is not in range "
                 "[U+0000; U+10ffff]", exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_value_repr(v, buf, sizeof(buf)));
    *(int32_t *)mp_value_ptr(v) = -1;
    ASSERT_EQ(MP_ERAISED, mp_value_get_int(v, &i));
    ASSERT_STREQ("ValueError: character U+ffffffff is not in range "
                 "[U+0000; U+10ffff]", exc_line(MP_ERAISED));
    mp_value_free(v);
}

TEST(typed_pointers_match_the_typecode_only)
{
    mp_value *v;

    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(7), NULL));
    ASSERT_TRUE(mp_value_i32(v) == mp_value_ptr(v));
    ASSERT_EQ(7, *mp_value_i32(v));
    ASSERT_TRUE(mp_value_i64(v) == NULL && mp_value_u32(v) == NULL &&
                mp_value_f64(v) == NULL && mp_value_u8(v) == NULL);
    mp_value_free(v);
    ASSERT_OK(mp_value_new(&v, 'q', MP_ARG(LLONG_MIN), NULL));
    ASSERT_EQ(LLONG_MIN, *mp_value_i64(v));
    ASSERT_TRUE(mp_value_i32(v) == NULL);
    mp_value_free(v);
    ASSERT_OK(mp_value_new(&v, 'c', MP_ARG(65), NULL));
    ASSERT_EQ('A', *mp_value_u8(v));
    ASSERT_TRUE(mp_value_i8(v) == NULL);
    mp_value_free(v);
    ASSERT_OK(mp_value_new(&v, 'd', MP_ARG(1.5), NULL));
    ASSERT_TRUE(*mp_value_f64(v) == 1.5 && mp_value_f32(v) == NULL);
    mp_value_free(v);
    ASSERT_TRUE(mp_value_i32(NULL) == NULL);
}

/* arrays */

TEST(arrays_are_zero_or_their_initializer)
{
    mp_value *a;
    long long got[8], x;
    double d;

    ASSERT_OK(mp_array_new(&a, 'i', 5, NULL));
    ASSERT_EQ(5, mp_value_len(a));
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(mp_array_get_int(a, i, &x));
        ASSERT_EQ(0, x);
    }
    mp_value_free(a);

    ASSERT_OK(mp_array_from(&a, 'i', MP_ARGS(1, 2, 3), NULL));
    ASSERT_EQ(3, mp_value_len(a));
    ASSERT_OK(mp_array_get_int(a, -1, &x));
    ASSERT_EQ(3, x);
    ASSERT_OK(mp_array_get_int(a, -3, &x));
    ASSERT_EQ(1, x);
    ASSERT_OK(mp_array_get_double(a, 1, &d));
    ASSERT_TRUE(d == 2.0);
    (void)got;
    mp_value_free(a);

    /* The first value that does not convert is the error; no array. */
    a = (mp_value *)1;
    ASSERT_EQ(MP_ERAISED, mp_array_from(&a, 'i', MP_ARGS(1, 1.5), NULL));
    ASSERT_STREQ("TypeError: 'float' object cannot be interpreted as an "
                 "integer", exc_line(MP_ERAISED));
    ASSERT_TRUE(a == NULL);
    ASSERT_EQ(MP_EINVAL, mp_array_from(&a, 'i', NULL, 2, NULL));
    ASSERT_EQ(MP_EINVAL, mp_array_from_native(&a, 'i', NULL, 2, NULL));
    /* No memory holds it: CPython's MemoryError. */
    ASSERT_EQ(-ENOMEM, mp_array_new(&a, 'd', SIZE_MAX / 4, NULL));
    /* At the very edge too, where the memory's length, rounded to pages,
     * would pass what a file offset holds. */
    for (size_t k = 0; k < 4; k++) {
        static const char codes[] = { 'b', 'h', 'i', 'q' };
        size_t size = (size_t)1 << k, top = (SIZE_MAX / 2 - 64) / size;

        for (size_t m = 0; m < 3; m++) {
            a = (mp_value *)1;
            ASSERT_EQ(-ENOMEM, mp_array_new(&a, codes[k], top - m, NULL));
            ASSERT_TRUE(a == NULL);
        }
    }

    {
        const double init[3] = { 0.5, -1, 1e300 };
        ASSERT_OK(mp_array_from_native(&a, 'd', init, 3, &raw));
        ASSERT_EQ(0, memcmp(init, mp_value_ptr(a), sizeof(init)));
        ASSERT_OK(mp_array_get_double(a, 2, &d));
        ASSERT_TRUE(d == 1e300);
        mp_value_free(a);
    }
    /* An empty array is an array. */
    ASSERT_OK(mp_array_new(&a, 'i', 0, NULL));
    ASSERT_EQ(0, mp_value_len(a));
    ASSERT_EQ(MP_EVALINDEX, mp_array_get_int(a, 0, &x));
    ASSERT_EQ(0, mp_array_read(a, 0, MP_SLICE_END, NULL, 0));
    mp_value_free(a);
}

TEST(indexing_is_pythons_and_out_of_range_is_invalid_index)
{
    mp_value *a, *v;
    long long x;

    ASSERT_OK(mp_array_from(&a, 'h', MP_ARGS(1, 2, 3), NULL));
    ASSERT_EQ(MP_EVALINDEX, mp_array_get_int(a, 3, &x));
    ASSERT_EQ(MP_EVALINDEX, mp_array_get_int(a, -4, &x));
    ASSERT_EQ(MP_EVALINDEX, mp_array_get_int(a, LLONG_MIN, &x));
    ASSERT_EQ(MP_EVALINDEX, mp_array_get_int(a, LLONG_MAX, &x));
    ASSERT_STREQ("IndexError: invalid index", exc_line(MP_EVALINDEX));
    ASSERT_EQ(MP_EVALINDEX, mp_array_set(a, 5, MP_ARG(1)));
    /* The index is looked at before the value, as CPython's. */
    ASSERT_EQ(MP_EVALINDEX, mp_array_set(a, 5, MP_ARG(1.5)));
    ASSERT_EQ(MP_ERAISED, mp_array_set(a, 0, MP_ARG(1.5)));
    ASSERT_OK(mp_array_set(a, -1, MP_ARG(70000)));
    ASSERT_OK(mp_array_get_int(a, 2, &x));
    ASSERT_EQ(70000 - 65536, x);
    /* A Value is not subscriptable; an array has no .value. */
    ASSERT_EQ(MP_ERAISED, mp_value_get_int(a, &x));
    ASSERT_STREQ("AttributeError: 'SynchronizedArray' object has no "
                 "attribute 'value'", exc_line(MP_ERAISED));
    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(1), NULL));
    ASSERT_EQ(MP_ERAISED, mp_array_get_int(v, 0, &x));
    ASSERT_STREQ("TypeError: 'Synchronized' object is not subscriptable",
                 exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_array_read(v, 0, 1, NULL, 0));
    ASSERT_STREQ("TypeError: 'Synchronized' object is not subscriptable",
                 exc_line(MP_ERAISED));
    /* v[0] = x and v[0:1] = [x]: CPython's error names the assignment. */
    ASSERT_EQ(MP_ERAISED, mp_array_write(v, 0, 1, &(int){ 1 }, 1));
    ASSERT_STREQ("TypeError: 'Synchronized' object does not support item "
                 "assignment", exc_line(MP_ERAISED));
    mp_value_free(v);
    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(1), &raw));
    ASSERT_EQ(MP_ERAISED, mp_array_set(v, 0, MP_ARG(1)));
    ASSERT_STREQ("TypeError: 'c_int' object does not support item "
                 "assignment", exc_line(MP_ERAISED));
    mp_value_free(v);
    mp_value_free(a);
    ASSERT_OK(mp_array_new(&a, 'i', 3, &raw));
    ASSERT_EQ(MP_ERAISED, mp_value_set(a, MP_ARG(1)));
    ASSERT_STREQ("AttributeError: 'c_int_Array_3' object has no attribute "
                 "'value'", exc_line(MP_ERAISED));
    mp_value_free(a);
}

/* a[start:stop] read into got: its length, and the elements compared. */
static void expect_slice(mp_value *a, long long start, long long stop,
                         const int *want, long long n)
{
    int got[16] = { 0 };

    ASSERT_EQ(n, mp_array_read(a, start, stop, got, 16));
    ASSERT_EQ(0, memcmp(want, got, (size_t)n * sizeof(int)));
}

TEST(slices_clamp_as_pythons_and_assign_only_the_same_size)
{
    static const int all[] = { 1, 2, 3 }, two[] = { 8, 9 };
    mp_value *a;
    int got[2] = { 0, 0 };

    ASSERT_OK(mp_array_from(&a, 'i', MP_ARGS(1, 2, 3), NULL));
    expect_slice(a, 1, MP_SLICE_END, all + 1, 2);
    expect_slice(a, -100, 100, all, 3);
    expect_slice(a, LLONG_MIN, LLONG_MAX, all, 3);
    expect_slice(a, -2, -1, all + 1, 1);
    expect_slice(a, 2, 1, all, 0);
    expect_slice(a, 3, 5, all, 0);
    expect_slice(a, 0, -5, all, 0);
    /* Copied as snprintf would: what fits, and the whole length. */
    ASSERT_EQ(3, mp_array_read(a, 0, 3, got, 1));
    ASSERT_EQ(1, got[0]);
    ASSERT_EQ(0, got[1]);
    ASSERT_EQ(3, mp_array_read(a, 0, 3, NULL, 0));
    ASSERT_EQ(MP_EINVAL, mp_array_read(a, 0, 3, NULL, 2));

    ASSERT_EQ(MP_EVALSLICE, mp_array_write(a, 0, 2, two, 1));
    ASSERT_STREQ("ValueError: Can only assign sequence of same size",
                 exc_line(MP_EVALSLICE));
    ASSERT_EQ(MP_EVALSLICE, mp_array_write(a, 0, MP_SLICE_END, two, 2));
    expect_slice(a, 0, 3, all, 3); /* nothing written */
    ASSERT_OK(mp_array_write(a, -2, MP_SLICE_END, two, 2));
    expect_slice(a, 1, 3, two, 2);
    ASSERT_OK(mp_array_write(a, 2, 1, NULL, 0)); /* empty: fine */
    ASSERT_EQ(MP_EINVAL, mp_array_write(a, 0, 2, NULL, 2));
    mp_value_free(a);
}

TEST(char_arrays_have_value_and_raw)
{
    mp_value *c, *a;
    char buf[16];
    long long x;

    ASSERT_OK(mp_array_from_native(&c, 'c', "he\0lo", 5, NULL));
    ASSERT_EQ(2, mp_array_value(c, buf, sizeof(buf)));
    ASSERT_STREQ("he", buf);
    ASSERT_EQ(5, mp_array_raw(c, buf, sizeof(buf)));
    ASSERT_EQ(0, memcmp("he\0lo", buf, 5));
    ASSERT_EQ(5, mp_array_raw(c, buf, 2)); /* what fits, the length */
    ASSERT_EQ(0, memcmp("he", buf, 2));
    ASSERT_OK(mp_array_get_int(c, 0, &x));
    ASSERT_EQ('h', x);
    ASSERT_EQ(MP_ERAISED, mp_array_set(c, 0, mp_arg_bytes("zz", 2)));
    ASSERT_STREQ("TypeError: one character bytes, bytearray or integer "
                 "expected", exc_line(MP_ERAISED));
    ASSERT_OK(mp_array_set(c, 0, MP_ARG(65)));
    /* .value = b'ab' puts a NUL after; .raw = b'xy' does not. */
    ASSERT_OK(mp_array_set_value(c, "ab", 2));
    ASSERT_EQ(5, mp_array_raw(c, buf, sizeof(buf)));
    ASSERT_EQ(0, memcmp("ab\0lo", buf, 5));
    ASSERT_OK(mp_array_set_raw(c, "xyz", 3));
    ASSERT_EQ(0, memcmp("xyzlo", mp_value_ptr(c), 5));
    ASSERT_EQ(MP_ERAISED, mp_array_set_value(c, "toolongvalue", 12));
    ASSERT_STREQ("ValueError: byte string too long", exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_array_set_raw(c, "toolongvalue", 12));
    ASSERT_EQ(0, memcmp("xyzlo", mp_value_ptr(c), 5));
    /* SynchronizedString's .value = bytes is mp_value_set(). */
    ASSERT_OK(mp_value_set(c, mp_arg_bytes("hi", 2)));
    ASSERT_EQ(2, mp_array_value(c, buf, sizeof(buf)));
    ASSERT_EQ(MP_ERAISED, mp_value_set(c, MP_ARG("hi")));
    ASSERT_STREQ("TypeError: bytes expected instead of str instance",
                 exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_value_get_int(c, &x));
    ASSERT_STREQ("TypeError: 'bytes' object cannot be interpreted as an "
                 "integer", exc_line(MP_ERAISED));
    mp_value_free(c);

    /* Other arrays have neither, as CPython's. */
    ASSERT_OK(mp_array_new(&a, 'i', 3, NULL));
    ASSERT_EQ(MP_ERAISED, mp_array_value(a, buf, sizeof(buf)));
    ASSERT_STREQ("AttributeError: 'SynchronizedArray' object has no "
                 "attribute 'value'", exc_line(MP_ERAISED));
    mp_value_free(a);
    ASSERT_OK(mp_array_new(&a, 'u', 2, NULL));
    ASSERT_EQ(MP_ERAISED, mp_array_value(a, buf, sizeof(buf)));
    mp_value_free(a);
    ASSERT_OK(mp_array_new(&a, 'i', 3, &raw));
    ASSERT_EQ(MP_ERAISED, mp_array_raw(a, buf, sizeof(buf)));
    ASSERT_STREQ("AttributeError: 'c_int_Array_3' object has no attribute "
                 "'raw'", exc_line(MP_ERAISED));
    mp_value_free(a);
    /* A raw 'u' array has .value (ctypes' c_wchar arrays), not .raw. */
    {
        wchar_t w[4];
        ASSERT_OK(mp_array_from_native(&a, 'u', L"ab", 2, &raw));
        ASSERT_EQ(2, mp_array_value(a, w, 4));
        ASSERT_TRUE(w[0] == L'a' && w[1] == L'b' && w[2] == 0);
        ASSERT_EQ(MP_ERAISED, mp_array_raw(a, w, 4));
        ASSERT_STREQ("AttributeError: 'c_wchar_Array_2' object has no "
                     "attribute 'raw'", exc_line(MP_ERAISED));
        ASSERT_EQ(MP_ERAISED, mp_array_set_value(a, L"abc", 3));
        ASSERT_STREQ("ValueError: string too long", exc_line(MP_ERAISED));
        mp_value_free(a);
    }
}

/* All of a raw 'u' array's elements (.raw has no 'u' form). */
static long long raw_wide(mp_value *a, wchar_t *w)
{
    return mp_array_read(a, 0, MP_SLICE_END, w, mp_value_len(a));
}

/* `a.value = 'xy'` on a raw 'u' array, as CPython's c_wchar arrays take
 * it (a str, UTF-8 here), and its errors; a SynchronizedArray has no
 * .value. */
TEST(a_raw_wchar_arrays_value_is_set_from_a_str)
{
    mp_value *a;
    wchar_t w[4];

    ASSERT_OK(mp_array_from_native(&a, 'u', L"pqr", 3, &raw));
    ASSERT_OK(mp_value_set(a, MP_ARG("xy")));
    ASSERT_EQ(3, raw_wide(a, w));
    ASSERT_TRUE(w[0] == L'x' && w[1] == L'y' && w[2] == 0);
    ASSERT_OK(mp_value_set(a, MP_ARG("\xc3\xa9\xf0\x9f\x98\x80z")));
    ASSERT_EQ(3, raw_wide(a, w));
    ASSERT_TRUE(w[0] == 0xe9 && w[1] == 0x1f600 && w[2] == L'z');
    ASSERT_OK(mp_value_set(a, MP_ARG("")));
    ASSERT_EQ(0, mp_array_value(a, w, 4));
    ASSERT_EQ(MP_ERAISED, mp_value_set(a, MP_ARG("abcd")));
    ASSERT_STREQ("ValueError: string too long", exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_value_set(a, MP_ARG(5)));
    ASSERT_STREQ("TypeError: unicode string expected instead of int "
                 "instance", exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_value_set(a, mp_arg_bytes("ab", 2)));
    ASSERT_STREQ("TypeError: unicode string expected instead of bytes "
                 "instance", exc_line(MP_ERAISED));
    ASSERT_EQ(MP_EINVAL, mp_value_set(a, MP_ARG("a\xed\xa0\x80")));
    ASSERT_EQ(MP_EINVAL, mp_value_set(a, MP_ARG("\xff")));
    ASSERT_EQ(0, mp_array_value(a, w, 4)); /* the errors wrote nothing */
    mp_value_free(a);

    ASSERT_OK(mp_array_new(&a, 'u', 3, NULL));
    ASSERT_EQ(MP_ERAISED, mp_value_set(a, MP_ARG("xy")));
    ASSERT_STREQ("AttributeError: 'SynchronizedArray' object has no "
                 "attribute 'value'", exc_line(MP_ERAISED));
    mp_value_free(a);
}

/* reprs and locks */

/* buf is "<prefix><multiprocessing.sharedctypes.NAME object at 0x...>"
 * and suffix. */
static void expect_array_repr(mp_value *a, const char *prefix,
                              const char *name, const char *suffix)
{
    const char *r = repr_of(a);
    char want[160];
    size_t n;

    snprintf(want, sizeof(want), "%s<multiprocessing.sharedctypes.%s object "
             "at 0x", prefix, name);
    n = strlen(want);
    if (strncmp(r, want, n) != 0)
        check_fail(__FILE__, __LINE__, "repr %s, not %s...", r, want);
    r += n;
    ASSERT_TRUE(strspn(r, "0123456789abcdef") > 0);
    r += strspn(r, "0123456789abcdef");
    ASSERT_STREQ(suffix, r);
}

TEST(reprs_are_cpythons)
{
    mp_value *v;

    ASSERT_OK(mp_value_new(&v, 'i', mp_arg_none(), NULL));
    ASSERT_STREQ("<Synchronized wrapper for c_int(0)>", repr_of(v));
    mp_value_free(v);
    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(3), &raw));
    ASSERT_STREQ("c_int(3)", repr_of(v));
    mp_value_free(v);
    ASSERT_OK(mp_value_new(&v, 'd', MP_ARG(1.5), NULL));
    ASSERT_STREQ("<Synchronized wrapper for c_double(1.5)>", repr_of(v));
    ASSERT_OK(mp_value_set(v, MP_ARG(NAN)));
    ASSERT_STREQ("<Synchronized wrapper for c_double(nan)>", repr_of(v));
    ASSERT_OK(mp_value_set(v, MP_ARG(-INFINITY)));
    ASSERT_STREQ("<Synchronized wrapper for c_double(-inf)>", repr_of(v));
    ASSERT_OK(mp_value_set(v, MP_ARG(1e15)));
    ASSERT_STREQ("<Synchronized wrapper for c_double(1000000000000000.0)>",
                 repr_of(v));
    ASSERT_OK(mp_value_set(v, MP_ARG(0.0001)));
    ASSERT_STREQ("<Synchronized wrapper for c_double(0.0001)>", repr_of(v));
    ASSERT_OK(mp_value_set(v, MP_ARG(123456.789)));
    ASSERT_STREQ("<Synchronized wrapper for c_double(123456.789)>",
                 repr_of(v));
    ASSERT_OK(mp_value_set(v, MP_ARG(5e-324)));
    ASSERT_STREQ("<Synchronized wrapper for c_double(5e-324)>", repr_of(v));
    ASSERT_OK(mp_value_set(v, MP_ARG(1.7976931348623157e308)));
    ASSERT_STREQ("<Synchronized wrapper for c_double(1.7976931348623157e+308)>",
                 repr_of(v));
    mp_value_free(v);
    /* Like snprintf: the length the whole text needs. */
    {
        char small[8];
        ASSERT_OK(mp_value_new(&v, 'i', mp_arg_none(), NULL));
        ASSERT_EQ(35, mp_value_repr(v, small, sizeof(small)));
        ASSERT_STREQ("<Synchr", small);
        ASSERT_EQ(35, mp_value_repr(v, NULL, 0));
        mp_value_free(v);
    }

    ASSERT_OK(mp_array_new(&v, 'i', 5, NULL));
    expect_array_repr(v, "<SynchronizedArray wrapper for ", "c_int_Array_5",
                      ">>");
    mp_value_free(v);
    ASSERT_OK(mp_array_new(&v, 'c', 3, NULL));
    expect_array_repr(v, "<SynchronizedString wrapper for ",
                      "c_char_Array_3", ">>");
    mp_value_free(v);
    ASSERT_OK(mp_array_new(&v, 'u', 3, NULL));
    expect_array_repr(v, "<SynchronizedArray wrapper for ",
                      "c_wchar_Array_3", ">>");
    mp_value_free(v);
    ASSERT_OK(mp_array_new(&v, 'q', 3, &raw));
    expect_array_repr(v, "", sizeof(long) == 8 ? "c_long_Array_3"
                                               : "c_longlong_Array_3", ">");
    mp_value_free(v);
}

TEST(lock_true_is_a_new_rlock_and_raw_has_none)
{
    mp_value *v, *a;
    mp_lock *l = NULL;
    char buf[64];
    long long x;

    ASSERT_OK(mp_value_new(&v, 'i', mp_arg_none(), NULL));
    ASSERT_OK(mp_value_get_lock(v, &l));
    ASSERT_OK(mp_lock_repr(l, buf, sizeof(buf)));
    ASSERT_STREQ("<RLock(None, 0)>", buf);
    /* `with v:` and, inside it, .value: the RLock is taken again. */
    ASSERT_EQ(1, mp_value_acquire(v, 1, MP_FOREVER));
    ASSERT_OK(mp_value_set(v, MP_ARG(5)));
    ASSERT_OK(mp_value_get_int(v, &x));
    ASSERT_EQ(5, x);
    ASSERT_EQ(1, mp_lock_count(l));
    ASSERT_EQ(0, mp_value_release(v));
    ASSERT_EQ(MP_ENOTOWNER, mp_value_release(v));
    mp_value_free(v);

    ASSERT_OK(mp_value_new(&v, 'i', mp_arg_none(), &raw));
    ASSERT_EQ(1, mp_value_is_raw(v));
    ASSERT_EQ(MP_ERAISED, mp_value_get_lock(v, &l));
    ASSERT_STREQ("AttributeError: 'c_int' object has no attribute "
                 "'get_lock'", exc_line(MP_ERAISED));
    ASSERT_TRUE(l == NULL);
    ASSERT_EQ(MP_ERAISED, mp_value_acquire(v, 1, 0));
    ASSERT_STREQ("AttributeError: 'c_int' object has no attribute "
                 "'acquire'", exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_value_release(v));
    ASSERT_STREQ("AttributeError: 'c_int' object has no attribute "
                 "'release'", exc_line(MP_ERAISED));
    ASSERT_OK(mp_value_set(v, MP_ARG(4)));
    ASSERT_STREQ("c_int(4)", repr_of(v));
    mp_value_free(v);
    ASSERT_OK(mp_array_new(&a, 'd', 3, &raw));
    ASSERT_EQ(MP_ERAISED, mp_value_get_lock(a, &l));
    ASSERT_STREQ("AttributeError: 'c_double_Array_3' object has no "
                 "attribute 'get_lock'", exc_line(MP_ERAISED));
    mp_value_free(a);
    ASSERT_EQ(MP_EINVAL, mp_value_get_lock(NULL, &l));
}

TEST(a_given_lock_is_used_as_given)
{
    mp_value *v, *w;
    mp_lock *l, *got;
    char buf[64];
    long long x;

    ASSERT_OK(mp_lock_new(&l));
    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(1), &(mp_value_options){
                                                  .lock = l }));
    ASSERT_OK(mp_array_new(&w, 'i', 2, &(mp_value_options){ .lock = l }));
    ASSERT_OK(mp_value_get_lock(v, &got));
    ASSERT_TRUE(got == l);
    ASSERT_OK(mp_lock_repr(got, buf, sizeof(buf)));
    ASSERT_STREQ("<Lock(owner=None)>", buf);
    /* The value holds a reference of its own. */
    mp_lock_free(l);
    ASSERT_EQ(1, mp_value_acquire(v, 1, 0));
    /* One lock: the array's is taken too.  A Lock is not reentrant: an
     * access while this thread holds it would wait for itself, as in
     * CPython; another acquire does not get it. */
    ASSERT_EQ(0, mp_value_acquire(w, 0, 0));
    ASSERT_EQ(0, mp_value_release(v));
    ASSERT_OK(mp_value_get_int(v, &x));
    ASSERT_EQ(1, x);
    ASSERT_OK(mp_value_get_lock(w, &got));
    ASSERT_EQ(1, mp_lock_get_value(got));
    mp_value_free(v);
    mp_value_free(w);
    ASSERT_OK(mp_lock_new(&l));
    ASSERT_EQ(MP_EINVAL, mp_value_new(&v, 'i', MP_ARG(1),
                                      &(mp_value_options){ .raw = 1,
                                                           .lock = l }));
    mp_lock_free(l);
}

/* children */

/* Sets the Value at 0 to 99, the 'd' one at 1 to 99.0, and the array at
 * 2 to its indices squared; checks that the lock given alone at 3 is the
 * value's own. */
MP_TARGET(child_writes)
{
    mp_value *v = mp_args_value(args, 0), *d = mp_args_value(args, 1);
    mp_value *a = mp_args_value(args, 2);
    mp_lock *l = NULL;

    if (mp_value_get_lock(v, &l) < 0 || l != mp_args_lock(args, 3))
        return 3;
    if (mp_args_value(args, 4) != v) /* the same value twice: one object */
        return 4;
    mp_check(mp_value_set(v, MP_ARG(99)));
    mp_check(mp_value_set(d, MP_ARG(99.0)));
    for (long long i = 0; i < (long long)mp_value_len(a); i++)
        mp_check(mp_array_set(a, i, MP_ARG(i * i)));
    return 0;
}

TEST(children_write_values_the_parent_sees_under_every_method)
{
    for (int m = 0; m < 3; m++) {
        mp_value *v, *d, *a;
        mp_lock *l;
        long long x;
        double y;
        int sq[5];

        ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(0), NULL));
        ASSERT_OK(mp_value_new(&d, 'd', MP_ARG(0), NULL));
        ASSERT_OK(mp_array_new(&a, 'i', 5, NULL));
        ASSERT_OK(mp_value_get_lock(v, &l));
        join_code(start(methods[m], &child_writes_target,
                        MP_ARGS(v, d, a, l, v)), 0);
        ASSERT_OK(mp_value_get_int(v, &x));
        ASSERT_EQ(99, x);
        ASSERT_OK(mp_value_get_double(d, &y));
        ASSERT_TRUE(y == 99.0);
        ASSERT_EQ(5, mp_array_read(a, 0, MP_SLICE_END, sq, 5));
        for (int i = 0; i < 5; i++)
            ASSERT_EQ(i * i, sq[i]);
        mp_value_free(v);
        mp_value_free(d);
        mp_value_free(a);
    }
}

/* A raw value and a lock given to two values reach the child as such. */
MP_TARGET(child_checks_kinds)
{
    mp_value *r = mp_args_value(args, 0), *a = mp_args_value(args, 1);
    mp_value *b = mp_args_value(args, 2);
    mp_lock *la = NULL, *lb = NULL;
    char buf[128];

    if (!mp_value_is_raw(r) || mp_value_get_lock(r, &la) != MP_ERAISED)
        return 3;
    if (mp_value_get_lock(a, &la) < 0 || mp_value_get_lock(b, &lb) < 0 ||
        la != lb)
        return 4;
    if (mp_value_repr(r, buf, sizeof(buf)) < 0 ||
        strcmp(buf, "c_double(2.5)") != 0)
        return 5;
    if (mp_value_len(a) != 3 || mp_value_typecode(a) != 'c')
        return 6;
    if (mp_array_value(a, buf, sizeof(buf)) != 3 || strcmp(buf, "abc") != 0)
        return 7;
    /* Read the int of a Value as a Queue: the types are checked. */
    if (mp_args_get_queue(args, 0, &(mp_queue *){ NULL }) != MP_ERAISED ||
        strcmp(mp_strerror(MP_ERAISED), "argument 0 is Value, not Queue"))
        return 8;
    return mp_array_set_value(a, "xy", 2) < 0 ? 9 : 0;
}

TEST(a_raw_value_and_a_shared_lock_reach_children_as_they_are)
{
    for (int m = 0; m < 3; m++) {
        mp_value *r, *a, *b;
        mp_lock *l;
        char buf[8];

        ASSERT_OK(mp_value_new(&r, 'd', MP_ARG(2.5), &raw));
        ASSERT_OK(mp_rlock_new(&l));
        ASSERT_OK(mp_array_from_native(&a, 'c', "abc", 3,
                                       &(mp_value_options){ .lock = l }));
        ASSERT_OK(mp_value_new(&b, 'i', MP_ARG(1),
                               &(mp_value_options){ .lock = l }));
        mp_lock_free(l);
        join_code(start(methods[m], &child_checks_kinds_target,
                        MP_ARGS(r, a, b)), 0);
        ASSERT_EQ(2, mp_array_value(a, buf, sizeof(buf)));
        ASSERT_STREQ("xy", buf);
        mp_value_free(r);
        mp_value_free(a);
        mp_value_free(b);
    }
}

/* A fork child uses the parent's object itself. */
TEST(a_fork_child_may_use_the_parents_object)
{
    mp_value *v;
    long long x;
    pid_t pid;
    int status;

    ASSERT_OK(mp_value_new(&v, 'q', MP_ARG(1), NULL));
    fflush(NULL);
    if ((pid = fork()) == 0)
        _exit(mp_value_set(v, MP_ARG(LLONG_MAX)) == 0 ? 0 : 1);
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_EQ(0, status);
    ASSERT_OK(mp_value_get_int(v, &x));
    ASSERT_EQ(LLONG_MAX, x);
    mp_value_free(v);
}

/* 20000 increments of the value, each under the lock, once all the
 * adders are there. */
MP_TARGET(add_locked)
{
    mp_value *v = mp_args_value(args, 0);
    int n = (int)mp_args_int(args, 1);

    if (mp_barrier_wait(mp_args_barrier(args, 2), 60) < 0)
        return 5;
    for (int i = 0; i < n; i++) {
        if (mp_value_acquire(v, 1, MP_FOREVER) != 1)
            return 3;
        *mp_value_i32(v) += 1;
        if (mp_value_release(v) != 0)
            return 4;
    }
    return 0;
}

/* CPython's `v.value += 1` with `with v.get_lock():` loses nothing: 4
 * processes of the three methods, 20000 each.  Without the lock updates
 * may be lost (each access alone is locked, the pair is not): CPython
 * loses half of them; nothing asserts that here, as it may not happen. */
TEST(locked_increments_from_four_processes_lose_nothing)
{
    mp_value *v;
    mp_barrier *b;
    mp_process *p[4];
    long long x;

    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(0), NULL));
    ASSERT_OK(mp_barrier_new(&b, 4, NULL, MP_FOREVER));
    for (int i = 0; i < 4; i++)
        p[i] = start(methods[i % 3], &add_locked_target,
                     MP_ARGS(v, 20000, b));
    for (int i = 0; i < 4; i++)
        join_code(p[i], 0);
    ASSERT_OK(mp_value_get_int(v, &x));
    ASSERT_EQ(80000, x);
    mp_value_free(v);
    mp_barrier_free(b);
}

/* Threads too: the one-call accesses of two threads never tear a value. */
static void *flip(void *arg)
{
    for (int i = 0; i < 20000; i++)
        if (mp_value_set(arg, MP_ARG(i % 2 ? -1LL : 0LL)) != 0)
            return (void *)1;
    return NULL;
}

TEST(one_call_accesses_are_whole_across_threads)
{
    mp_value *v;
    pthread_t th;
    void *res;
    long long x;

    ASSERT_OK(mp_value_new(&v, 'q', MP_ARG(0), NULL));
    ASSERT_EQ(0, pthread_create(&th, NULL, flip, v));
    for (int i = 0; i < 20000; i++) {
        ASSERT_OK(mp_value_get_int(v, &x));
        ASSERT_TRUE(x == 0 || x == -1);
    }
    ASSERT_EQ(0, pthread_join(th, &res));
    ASSERT_TRUE(res == NULL);
    mp_value_free(v);
}

/* A raw array's slices, elements and text, from two threads at once:
 * each element moves whole (no lock orders them; under CPython's GIL
 * each access is whole), and TSan sees no race. */
struct raw_pair {
    mp_value *q, *c;
};

static void *flip_slices(void *arg)
{
    static const long long ones[4] = { -1, -1, -1, -1 }, zeros[4] = { 0 };
    struct raw_pair *p = arg;

    for (int i = 0; i < 20000; i++)
        if (mp_array_write(p->q, 0, 4, i % 2 ? ones : zeros, 4) != 0 ||
            mp_array_set(p->q, i % 4, MP_ARG(i % 2 ? -1LL : 0LL)) != 0 ||
            mp_array_set_raw(p->c, i % 2 ? "abcd" : "wxyz", 4) != 0 ||
            mp_array_set_value(p->c, "ab", 2) != 0)
            return (void *)1;
    return NULL;
}

TEST(a_raw_arrays_slices_are_whole_elements_across_threads)
{
    struct raw_pair p;
    pthread_t th;
    void *res;
    long long got[4], x;
    char text[5];

    ASSERT_OK(mp_array_new(&p.q, 'q', 4, &raw));
    ASSERT_OK(mp_array_new(&p.c, 'c', 4, &raw));
    ASSERT_EQ(0, pthread_create(&th, NULL, flip_slices, &p));
    for (int i = 0; i < 20000; i++) {
        ASSERT_EQ(4, mp_array_read(p.q, 0, MP_SLICE_END, got, 4));
        for (int k = 0; k < 4; k++)
            ASSERT_TRUE(got[k] == 0 || got[k] == -1);
        ASSERT_OK(mp_array_get_int(p.q, i % 4, &x));
        ASSERT_EQ(4, mp_array_raw(p.c, text, sizeof(text)));
        ASSERT_TRUE(mp_array_value(p.c, text, sizeof(text)) <= 4);
    }
    ASSERT_EQ(0, pthread_join(th, &res));
    ASSERT_TRUE(res == NULL);
    mp_value_free(p.q);
    mp_value_free(p.c);
}

/* pools */

MP_TARGET(task_noop)
{
    return 0;
}

TEST(a_pool_task_refuses_values_as_cpythons_pickling)
{
    mp_pool *pool;
    mp_result *r = NULL;
    mp_value *v, *a, *s, *rv, *ra;

    ASSERT_OK(mp_pool_new(&pool, 1, NULL));
    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(0), NULL));
    ASSERT_OK(mp_array_new(&a, 'i', 2, NULL));
    ASSERT_OK(mp_array_new(&s, 'c', 2, NULL));
    ASSERT_OK(mp_value_new(&rv, 'i', MP_ARG(0), &raw));
    ASSERT_OK(mp_array_new(&ra, 'i', 2, &raw));
    ASSERT_EQ(MP_EVALSHARE, mp_pool_apply(pool, &task_noop_target,
                                          MP_ARGS(1, v), &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_STREQ("RuntimeError: Synchronized objects should only be shared "
                 "between processes through inheritance",
                 exc_line(MP_EVALSHARE));
    ASSERT_EQ(MP_ERAISED, mp_pool_apply(pool, &task_noop_target,
                                        MP_ARGS(a), &r));
    ASSERT_STREQ("RuntimeError: SynchronizedArray objects should only be "
                 "shared between processes through inheritance",
                 exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_pool_map(pool, &task_noop_target, MP_ARGS(s),
                                      1, &r));
    ASSERT_STREQ("RuntimeError: SynchronizedString objects should only be "
                 "shared between processes through inheritance",
                 exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_pool_apply(pool, &task_noop_target,
                                        MP_ARGS(rv), &r));
    ASSERT_STREQ("RuntimeError: c_int objects should only be shared "
                 "between processes through inheritance",
                 exc_line(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_pool_apply(pool, &task_noop_target,
                                        MP_ARGS(ra), &r));
    ASSERT_STREQ("RuntimeError: c_int_Array_2 objects should only be shared "
                 "between processes through inheritance",
                 exc_line(MP_ERAISED));
    /* The pool is fine. */
    ASSERT_EQ(0, mp_pool_apply(pool, &task_noop_target, MP_ARGS(1), &r));
    mp_result_free(r);
    mp_pool_free(pool);
    mp_value_free(v);
    mp_value_free(a);
    mp_value_free(s);
    mp_value_free(rv);
    mp_value_free(ra);
}

/* The initializer sets the value its initargs handed over. */
MP_TARGET(init_value)
{
    return mp_value_set(mp_args_value(args, 0), MP_ARG(7));
}

TEST(pool_initargs_take_a_value_as_a_process_does)
{
    mp_value *v;
    mp_pool *pool;
    long long x;
    mp_pool_options o = { .initializer = &init_value_target };
    mp_arg ia[1];

    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(0), NULL));
    ia[0] = mp_arg_value(v);
    o.initargs = ia;
    o.n_initargs = 1;
    ASSERT_OK(mp_pool_new(&pool, 1, &o));
    ASSERT_OK(mp_pool_close(pool));
    ASSERT_OK(mp_pool_join(pool));
    mp_pool_free(pool);
    ASSERT_OK(mp_value_get_int(v, &x));
    ASSERT_EQ(7, x);
    mp_value_free(v);
}

/* memory no libmp process wrote */

/* A sealed memfd of len bytes holding hdr at 0 (a value's header as
 * value.c lays it out: magic, version, typecode, count, itemsize,
 * flags), or unsealed. */
struct fake_hdr {
    uint64_t magic;
    uint32_t version, typecode;
    uint64_t count;
    uint32_t itemsize, flags;
};

static mp_conn *fake(const struct fake_hdr *h, size_t len, bool seal)
{
    int fd = memfd_create("fake", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(0, ftruncate(fd, (off_t)len));
    if (h != NULL)
        ASSERT_EQ((ssize_t)sizeof(*h), pwrite(fd, h, sizeof(*h), 0));
    if (seal)
        ASSERT_EQ(0, fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
                                                F_SEAL_SEAL));
    return mp__conn_wrap(fd, MP__CONN_SYNC);
}

/* Whether mp__value_view() takes it (and frees what it made). */
static bool taken(mp_conn *c)
{
    mp_value *v = mp__value_view(c, NULL);
    bool ok = v != NULL;

    mp__value_view_free(v);
    mp_conn_free(c);
    return ok;
}

TEST(memory_that_is_no_value_is_refused)
{
    const struct fake_hdr good = { 0x6c61566d7062696cULL, 1, 'd', 3, 8, 1 };
    struct fake_hdr h;
    mp_lock *l;

    ASSERT_TRUE(taken(fake(&good, 4096, true)));
    ASSERT_TRUE(!taken(fake(&good, 4096, false))); /* could shrink */
    ASSERT_TRUE(!taken(fake(&good, 32, true)));    /* no room for data */
    ASSERT_TRUE(!taken(fake(NULL, 4096, true)));   /* zeros */
    h = good, h.magic ^= 1;
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    h = good, h.version = 2;
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    h = good, h.typecode = 'x';
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    h = good, h.typecode = 'd' + 256;
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    h = good, h.itemsize = 4;
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    h = good, h.flags = 3;
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    h = good, h.flags = 0; /* a Value of 3 elements */
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    h = good, h.count = (4096 - 64) / 8; /* exactly fits */
    ASSERT_TRUE(taken(fake(&h, 4096, true)));
    h.count++;
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    h.count = UINT64_MAX / 8 + 2; /* wraps when multiplied */
    ASSERT_TRUE(!taken(fake(&h, 4096, true)));
    /* A synchronisation object's memory is not a value's. */
    ASSERT_OK(mp_rlock_new(&l));
    ASSERT_TRUE(mp__value_view(mp__lock_handle(l), NULL) == NULL);
    mp_lock_free(l);
}

/* Decodes enc as a child does and gets every argument in `order`: 0 if
 * they are what the parent gave (one lock for all), else where not. */
static int views_of(const char *enc, size_t len, mp_conn **handles, size_t nh,
                    const int *where, const int *order, bool must)
{
    unsigned char use[MP__MAX_HANDLES];
    mp_args *out = NULL;
    mp_value *v = NULL;
    mp_cond *c = NULL;
    mp_lock *l = NULL, *vl = NULL;
    long long x = 0;
    int r, bad = 0;

    memset(use, MP__USE_ARG, sizeof(use));
    if ((r = mp__args_decode(enc, len, handles, use, nh, &out)) < 0)
        return must ? 1 : 0;
    for (int k = 0; k < 3; k++) {
        size_t i = (size_t)where[order[k]];
        switch (order[k]) {
        case 0:
            r = mp_args_get_value(out, i, &v);
            if (r == 0 && (mp_value_get_lock(v, &vl) != 0 ||
                           mp_value_get_int(v, &x) != 0 || x != 41 ||
                           mp_value_set(v, MP_ARG(41)) != 0))
                bad = 2;
            break;
        case 1:
            r = mp_args_get_cond(out, i, &c);
            if (r == 0 && (mp_cond_acquire(c, 1, 1) != 1 ||
                           mp_cond_notify(c, 1) != 0 ||
                           mp_cond_release(c) != 0))
                bad = 3;
            break;
        default:
            r = mp_args_get_lock(out, i, &l);
            if (r == 0 && (mp_lock_acquire(l, 1, 1) != 1 ||
                           mp_lock_release(l) != 0))
                bad = 4;
            break;
        }
        if (r < 0 && must)
            bad = 5;
    }
    /* One lock: held through the lock, the value's access (an RLock's
     * again) and the condition's notify see this thread as its owner. */
    if (bad == 0 && v != NULL && l != NULL && c != NULL) {
        if (vl != l || mp_lock_acquire(l, 1, 1) != 1)
            bad = 6;
        else if (mp_value_get_int(v, &x) != 0 || mp_cond_notify(c, 1) != 0 ||
                 mp_lock_release(l) != 0)
            bad = 7;
    }
    mp__args_free(out);
    return bad;
}

/* A lock shared by a value and a condition, all three handed over, in
 * every order and read in every order, is one mp_lock in the child, and
 * the list frees each view once (ASan and valgrind see the rest).  The
 * same encoding with any bit flipped is refused or read within bounds. */
TEST(a_lock_shared_by_a_value_and_a_condition_is_one_in_the_child)
{
    static const int perms[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
                                     { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
    mp_conn *handles[MP__MAX_HANDLES];
    mp_value *v;
    mp_cond *c;
    mp_lock *l;
    long long x;

    ASSERT_OK(mp_rlock_new(&l));
    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(41),
                           &(mp_value_options){ .lock = l }));
    ASSERT_OK(mp_cond_new(&c, l));
    for (int p = 0; p < 6; p++) {
        mp_arg a[3];
        int where[3];
        size_t len, nh;
        char *enc;

        for (int k = 0; k < 3; k++)
            where[perms[p][k]] = k;
        a[where[0]] = mp_arg_value(v);
        a[where[1]] = mp_arg_cond(c);
        a[where[2]] = mp_arg_lock(l);
        ASSERT_OK(mp__args_encode(a, 3, &enc, &len, handles, &nh));
        ASSERT_EQ(3, nh); /* the memory of the value, condition, lock */
        for (int q = 0; q < 6; q++)
            ASSERT_EQ(0, views_of(enc, len, handles, nh, where, perms[q],
                                  true));
        for (size_t at = 0; p == 0 && at < len; at++)
            for (int bit = 0; bit < 8; bit++) {
                enc[at] ^= (char)(1 << bit);
                views_of(enc, len, handles, nh, where, perms[0], false);
                enc[at] ^= (char)(1 << bit);
            }
        free(enc);
    }
    /* The parent's objects keep their own references. */
    ASSERT_OK(mp_value_get_int(v, &x));
    ASSERT_EQ(41, x);
    ASSERT_EQ(1, mp_lock_acquire(l, 1, 1));
    ASSERT_OK(mp_cond_notify(c, 1));
    ASSERT_OK(mp_lock_release(l));
    mp_cond_free(c);
    mp_value_free(v);
    mp_lock_free(l);
}

/* Reads argument 0 as a value and says what came of it. */
MP_TARGET(read_value)
{
    mp_value *v = NULL;
    int r = mp_args_get_value(args, 0, &v);

    if (r == MP_ERAISED &&
        strcmp(mp_strerror(r), "argument 0: not a libmp shared value (bad "
                               "shared memory)") == 0 &&
        strcmp(mp_exception_name(r), "OSError") == 0)
        return 10;
    return r == 0 ? 0 : 11;
}

TEST(a_header_a_peer_wrote_over_is_refused_and_harms_nobody)
{
    for (int m = 0; m < 3; m++) {
        mp_value *a;
        struct fake_hdr *h;
        long long x;

        ASSERT_OK(mp_array_from(&a, 'i', MP_ARGS(1, 2, 3), NULL));
        h = mp__value_page(a);
        h->count = 1u << 30; /* would reach far beyond the memory */
        join_code(start(methods[m], &read_value_target, MP_ARGS(a)), 10);
        /* This process goes by the layout it made. */
        ASSERT_EQ(3, mp_value_len(a));
        ASSERT_EQ(MP_EVALINDEX, mp_array_get_int(a, 3, &x));
        ASSERT_OK(mp_array_get_int(a, 2, &x));
        ASSERT_EQ(3, x);
        h->count = 3;
        join_code(start(methods[m], &read_value_target, MP_ARGS(a)), 0);
        /* Bits a peer wrote over the header's typecode: refused too. */
        h->typecode = 'q';
        join_code(start(methods[m], &read_value_target, MP_ARGS(a)), 10);
        mp_value_free(a);
    }
}

/* Hands over a value whose lock memory was written over. */
TEST(a_value_whose_lock_was_written_over_is_refused)
{
    mp_value *v;
    mp_lock *l;
    unsigned char *page;

    ASSERT_OK(mp_value_new(&v, 'i', MP_ARG(1), NULL));
    ASSERT_OK(mp_value_get_lock(v, &l));
    page = mp__sync_page(l, MP_ARG_LOCK);
    page[0] ^= 0xff; /* the magic */
    join_code(start("spawn", &read_value_target, MP_ARGS(v)), 11);
    page[0] ^= 0xff;
    join_code(start("spawn", &read_value_target, MP_ARGS(v)), 0);
    mp_value_free(v);
}
