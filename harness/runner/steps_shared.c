/*
 * steps_shared.c - the step interpreter's ops on shared values (Value,
 * RawValue, Array, RawArray: mp_value) and SharedMemory (mp_shm)
 * (cases/README.md, "Operations on shared values and shared memory"; the
 * recorder's twin is in scripts/record_reference.py).
 *
 * Data travels as text: a step's string is bytes for the typecode 'c' and
 * a str otherwise, and bytes read back are decoded as messages are.  The
 * harness keeps which op made a value (an array or not), which CPython's
 * attribute errors and the `.value` of a 'c' array depend on.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "mp.h"
#include "runner.h"

/* the objects a step names */

static struct obj *named(struct call *c, const char *key)
{
    struct obj *o = steps_find_obj(c->in, arg_str(c, key));

    if (o == NULL)
        steps_harness_error(c->in, "unknown object (the case validator "
                            "missed it)");
    return o;
}

static struct obj *value_obj(struct call *c)
{
    struct obj *o = named(c, "value");

    if (o->val == NULL)
        steps_harness_error(c->in, "not a shared value (the validator "
                            "missed it)");
    return o;
}

static mp_shm *shm_of(struct call *c, const char *key)
{
    struct obj *o = named(c, key);

    if (o->shm == NULL)
        steps_harness_error(c->in, "not a SharedMemory (the validator "
                            "missed it)");
    return o->shm;
}

static json_t *raise_fmt(struct call *c, const char *fmt, const char *a,
                         const char *b)
{
    char *s;

    if (asprintf(&s, fmt, a, b) < 0)
        s = NULL;
    return raise_text(c, s);
}

/* text both ways */

/* Bytes as a step's value: decoded as the recorder decodes them. */
static json_t *bytes_json(const void *buf, size_t len)
{
    size_t tlen;
    char *text = utf8_text(buf, len, &tlen);
    json_t *v = json_stringn(text, tlen);

    free(text);
    return v;
}

/* A code point as UTF-8 (the caller's 4 bytes); its length. */
static size_t utf8_put(unsigned long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Code points as a JSON string; NULL (with the outcome set) for one no
 * str holds, which libmp refuses before this. */
static json_t *wide_json(struct call *c, const wchar_t *w, size_t n)
{
    char *s = malloc(4 * n + 1);
    size_t len = 0;
    json_t *v;

    if (s == NULL)
        return failed(c, -ENOMEM);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned long)w[i] > 0x10ffff) {
            free(s);
            return failed(c, -EINVAL);
        }
        len += utf8_put((unsigned long)w[i], s + len);
    }
    v = json_stringn(s, len);
    free(s);
    return v;
}

/* The length of the UTF-8 character at s (JSON strings are valid). */
static size_t utf8_char_len(const char *s)
{
    unsigned char b = (unsigned char)*s;

    return b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
}

/* A step's number or string as the value CPython is handed: a string is
 * bytes for 'c', a str otherwise (x NULL: no value). */
static mp_arg data_arg(json_t *x, char typecode)
{
    if (x == NULL)
        return mp_arg_none();
    if (json_is_integer(x))
        return mp_arg_int(json_integer_value(x));
    if (json_is_real(x))
        return mp_arg_double(json_real_value(x));
    if (typecode == 'c')
        return mp_arg_bytes(json_string_value(x), json_string_length(x));
    return mp_arg_str(json_string_value(x));
}

/*
 * A string's items, as CPython iterates it: its bytes for 'c' (ints), its
 * characters (each a str of one) otherwise; a new array of *n mp_args
 * pointing into the string.  NULL without memory.
 */
static mp_arg *string_items(json_t *x, char typecode, size_t *n,
                            char (*chars)[5])
{
    const char *s = json_string_value(x);
    size_t len = json_string_length(x), i = 0, k = 0;
    mp_arg *items = calloc(len + 1, sizeof(*items));

    if (items == NULL)
        return NULL;
    while (i < len) {
        size_t cl = typecode == 'c' ? 1 : utf8_char_len(s + i);
        if (typecode == 'c') {
            items[k] = mp_arg_int((unsigned char)s[i]);
        } else {
            memcpy(chars[k], s + i, cl);
            chars[k][cl] = '\0';
            items[k] = mp_arg_str(chars[k]);
        }
        i += cl;
        k++;
    }
    *n = k;
    return items;
}

/* The ctypes class name CPython's messages give: "c_int",
 * "c_double_Array_3", from the raw object's repr. */
static void ctype_name(mp_value *v, char *name, size_t size)
{
    char buf[512];
    const char *s = buf, *e;

    mp_value_repr(v, buf, sizeof(buf));
    if ((e = strstr(buf, "sharedctypes.")) != NULL) { /* an array */
        s = e + strlen("sharedctypes.");
        e = strchr(s, ' ');
    } else {
        e = strchr(s, '(');
    }
    snprintf(name, size, "%.*s", e != NULL ? (int)(e - s) : (int)strlen(s),
             s);
}

/* The class of the object a value op works on: the wrapper's, or the raw
 * ctypes object's. */
static void class_name(struct obj *o, char *name, size_t size)
{
    if (mp_value_is_raw(o->val))
        ctype_name(o->val, name, size);
    else
        snprintf(name, size, "%s", !o->val_array ? "Synchronized"
                 : mp_value_typecode(o->val) == 'c' ? "SynchronizedString"
                 : "SynchronizedArray");
}

/* making them */

/* Value(..., lock=): true, false or a lock's name. */
static mp_value_options lock_option(struct call *c)
{
    json_t *l = arg(c, "lock");
    mp_value_options opt = { 0 };

    if (json_is_false(l))
        opt.raw = 1;
    else if (json_is_string(l))
        opt.lock = named(c, "lock")->l;
    return opt;
}

/* CPython looks the typecode up as a one-character code; anything else is
 * a type that has no size. */
static int typecode_of(struct call *c, char *tc)
{
    const char *s = arg_str(c, "typecode");

    if (strlen(s) != 1 || json_string_length(arg(c, "typecode")) != 1)
        return MP_EVALSIZE;
    *tc = s[0];
    return 0;
}

static json_t *made(struct call *c, mp_value *v, bool array)
{
    struct obj *o = steps_new_obj(c->in, arg_str(c, "as"));

    o->val = v;
    o->val_array = array;
    return json_null();
}

static json_t *new_value(struct call *c, bool raw)
{
    mp_value_options opt = raw ? (mp_value_options){ .raw = 1 }
                               : lock_option(c);
    mp_value *v;
    char tc;
    int r;

    if ((r = typecode_of(c, &tc)) < 0)
        return failed(c, r);
    if ((r = mp_value_new(&v, tc, data_arg(arg(c, "init"), tc), &opt)) < 0)
        return failed(c, r);
    return made(c, v, false);
}

static json_t *op_value(struct call *c)
{
    return new_value(c, false);
}

static json_t *op_raw_value(struct call *c)
{
    return new_value(c, true);
}

static json_t *new_array(struct call *c, bool raw)
{
    mp_value_options opt = raw ? (mp_value_options){ .raw = 1 }
                               : lock_option(c);
    json_t *init = arg(c, "init"), *e;
    mp_arg *items = NULL;
    char (*chars)[5] = NULL, tc;
    size_t n = 0, i;
    mp_value *a;
    int r;

    if ((r = typecode_of(c, &tc)) < 0)
        return failed(c, r);
    if (json_is_integer(init)) {
        json_int_t size = json_integer_value(init);
        if (size < 0) { /* size_t cannot say it: ctypes' message */
            char num[32];
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, size);
            return raise_fmt(c, "ValueError: Array length must be >= 0, "
                             "not %s%s", num, "");
        }
        r = mp_array_new(&a, tc, (size_t)size, &opt);
        return r < 0 ? failed(c, r) : made(c, a, true);
    }
    if (json_is_string(init)) {
        if (tc == 'c') { /* the bytes themselves */
            r = mp_array_from_native(&a, tc, json_string_value(init),
                                     json_string_length(init), &opt);
            return r < 0 ? failed(c, r) : made(c, a, true);
        }
        chars = calloc(json_string_length(init) + 1, sizeof(*chars));
        items = chars != NULL ? string_items(init, tc, &n, chars) : NULL;
    } else {
        n = json_array_size(init);
        items = calloc(n + 1, sizeof(*items));
        json_array_foreach(init, i, e)
            if (items != NULL)
                items[i] = data_arg(e, tc);
    }
    r = items == NULL ? -ENOMEM : mp_array_from(&a, tc, items, n, &opt);
    free(items);
    free(chars);
    return r < 0 ? failed(c, r) : made(c, a, true);
}

static json_t *op_array(struct call *c)
{
    return new_array(c, false);
}

static json_t *op_raw_array(struct call *c)
{
    return new_array(c, true);
}

/* reading and writing */

/* One element read by a getter (the Value's, or a[index]) as a step's
 * value: an int, a float, a byte as text, a character. */
static json_t *element_json(struct call *c, char tc, int r, long long iv,
                            double dv)
{
    char ch[4];

    if (r < 0)
        return failed(c, r);
    switch (tc) {
    case 'f': case 'd':
        return json_real(dv);
    case 'c':
        ch[0] = (char)iv;
        return bytes_json(ch, 1);
    case 'u':
        if (iv < 0 || iv > 0x10ffff)
            return failed(c, -EINVAL);
        return json_stringn(ch, utf8_put((unsigned long)iv, ch));
    default:
        return json_integer(iv);
    }
}

/* A 'c' array's .value, or a 'u' array's (a raw one has it). */
static json_t *array_value(struct call *c, mp_value *a, char tc)
{
    long long n = mp_array_value(a, NULL, 0);
    size_t size = tc == 'u' ? sizeof(wchar_t) : 1;
    void *buf;
    json_t *v;

    if (n < 0)
        return failed(c, (int)n);
    if ((buf = malloc((size_t)n * size + size)) == NULL)
        return failed(c, -ENOMEM);
    n = mp_array_value(a, buf, (size_t)n + 1);
    v = n < 0 ? failed(c, (int)n)
        : tc == 'u' ? wide_json(c, buf, (size_t)n)
        : bytes_json(buf, (size_t)n);
    free(buf);
    return v;
}

static json_t *op_value_get(struct call *c)
{
    struct obj *o = value_obj(c);
    char tc = mp_value_typecode(o->val);
    long long iv = 0;
    double dv = 0;
    int r;

    if (o->val_array && (tc == 'c' || tc == 'u'))
        return array_value(c, o->val, tc);
    r = tc == 'f' || tc == 'd' ? mp_value_get_double(o->val, &dv)
                               : mp_value_get_int(o->val, &iv);
    return element_json(c, tc, r, iv, dv);
}

static json_t *op_value_set(struct call *c)
{
    mp_value *v = value_obj(c)->val;

    return null_or_failed(c, mp_value_set(v, data_arg(arg(c, "to"),
                                          mp_value_typecode(v))));
}

/* lo <= v.value <= hi, as Python compares an int or a float with the
 * value (exactly: a long double holds every 64-bit integer). */
static json_t *op_value_between(struct call *c)
{
    struct obj *o = value_obj(c);
    char tc = mp_value_typecode(o->val);
    json_t *lo = arg(c, "lo"), *hi = arg(c, "hi");
    long double x, l, h;
    long long iv;
    double dv;
    int r;

    if (tc == 'c' || tc == 'u') { /* bytes or str against a number */
        json_t *got = op_value_get(c);
        if (got == NULL)
            return NULL;
        json_decref(got);
        return raise_fmt(c, "TypeError: '<=' not supported between "
                         "instances of '%s' and '%s'",
                         json_is_integer(lo) ? "int" : "float",
                         tc == 'c' ? "bytes" : "str");
    }
    if (tc == 'f' || tc == 'd') {
        if ((r = mp_value_get_double(o->val, &dv)) < 0)
            return failed(c, r);
        x = dv;
    } else {
        if ((r = mp_value_get_int(o->val, &iv)) < 0)
            return failed(c, r);
        x = tc == 'Q' || tc == 'L' ? (long double)(unsigned long long)iv
                                   : (long double)iv;
    }
    l = json_is_integer(lo) ? (long double)json_integer_value(lo)
                            : (long double)json_real_value(lo);
    h = json_is_integer(hi) ? (long double)json_integer_value(hi)
                            : (long double)json_real_value(hi);
    return json_boolean(l <= x && x <= h);
}

/* v.value += 1: a read and a write, each under the lock on its own. */
static int add_one(mp_value *v, char tc)
{
    long long iv;
    double dv;
    int r;

    if (tc == 'f' || tc == 'd') {
        if ((r = mp_value_get_double(v, &dv)) < 0)
            return r;
        return mp_value_set(v, mp_arg_double(dv + 1));
    }
    if ((r = mp_value_get_int(v, &iv)) < 0)
        return r;
    if (tc == 'c')
        return mp_raise("TypeError", "can't concat int to bytes");
    if (tc == 'u')
        return mp_raise("TypeError", "can only concatenate str (not "
                        "\"int\") to str");
    /* the bits of iv + 1: the C type wraps it as CPython's does */
    return mp_value_set(v, mp_arg_int((long long)((unsigned long long)iv +
                                                  1)));
}

static json_t *op_value_increment(struct call *c)
{
    struct obj *o = value_obj(c);
    char tc = mp_value_typecode(o->val);
    json_int_t n = json_integer_value(arg(c, "n"));
    bool locked = json_is_true(arg(c, "locked"));
    mp_lock *l = NULL;
    int r = 0;

    if (locked && (r = mp_value_get_lock(o->val, &l)) < 0)
        return failed(c, r);
    if (o->val_array && n > 0) { /* a.value: bytes, a str, or none */
        json_t *got = op_value_get(c);
        if (got == NULL)
            return NULL;
        json_decref(got);
        return raise_text(c, strdup(tc == 'c'
                                    ? "TypeError: can't concat int to bytes"
                                    : "TypeError: can only concatenate str "
                                      "(not \"int\") to str"));
    }
    for (json_int_t i = 0; i < n && r >= 0; i++) {
        if (locked && (r = mp_lock_acquire(l, 1, MP_FOREVER)) < 0)
            break;
        r = add_one(o->val, tc);
        if (locked) {
            int rr = mp_lock_release(l);
            r = r < 0 ? r : rr;
        }
    }
    return null_or_failed(c, r);
}

static json_t *op_value_repr(struct call *c)
{
    char buf[1024], *norm;
    json_t *v;

    mp_value_repr(value_obj(c)->val, buf, sizeof(buf));
    norm = norm_line(buf);
    v = json_string(norm != NULL ? norm : buf);
    free(norm);
    return v;
}

static json_t *op_value_acquire(struct call *c)
{
    json_t *t = arg(c, "timeout");
    int r = mp_value_acquire(value_obj(c)->val, json_is_true(arg(c, "block")),
                             t == NULL || json_is_null(t)
                                 ? MP_FOREVER : json_number_value(t));

    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_value_release(struct call *c)
{
    return null_or_failed(c, mp_value_release(value_obj(c)->val));
}

static json_t *op_get_lock(struct call *c)
{
    mp_lock *l;
    int r = mp_value_get_lock(value_obj(c)->val, &l);
    struct obj *o;

    if (r < 0)
        return failed(c, r);
    o = steps_new_obj(c->in, arg_str(c, "as"));
    o->l = l;
    o->lock_of_value = true; /* the value's: freed with it */
    return json_null();
}

/* repr(v.get_obj()): the object the wrapper's repr shows. */
static json_t *op_get_obj(struct call *c)
{
    struct obj *o = value_obj(c);
    char buf[1024], name[128], *s, *norm;
    json_t *v;

    if (mp_value_is_raw(o->val)) {
        ctype_name(o->val, name, sizeof(name));
        return raise_fmt(c, "AttributeError: '%s' object has no attribute "
                         "'%s'", name, "get_obj");
    }
    mp_value_repr(o->val, buf, sizeof(buf));
    s = strstr(buf, " wrapper for ");
    s = s != NULL ? s + strlen(" wrapper for ") : buf;
    if (s[0] != '\0' && s[strlen(s) - 1] == '>')
        s[strlen(s) - 1] = '\0';
    norm = norm_line(s);
    v = json_string(norm != NULL ? norm : s);
    free(norm);
    return v;
}

static json_t *op_array_len(struct call *c)
{
    struct obj *o = value_obj(c);
    char name[128];

    if (!o->val_array) { /* mp_value_len() gives a Value's 1 */
        class_name(o, name, sizeof(name));
        return raise_fmt(c, "TypeError: object of type '%s' has no len()%s",
                         name, "");
    }
    return json_integer((json_int_t)mp_value_len(o->val));
}

static json_t *op_array_get(struct call *c)
{
    mp_value *a = value_obj(c)->val;
    char tc = mp_value_typecode(a);
    long long index = (long long)json_integer_value(arg(c, "index")), iv = 0;
    double dv = 0;
    int r = tc == 'f' || tc == 'd' ? mp_array_get_double(a, index, &dv)
                                   : mp_array_get_int(a, index, &iv);

    return element_json(c, tc, r, iv, dv);
}

static json_t *op_array_set(struct call *c)
{
    mp_value *a = value_obj(c)->val;

    return null_or_failed(c, mp_array_set(a, (long long)json_integer_value(
                                              arg(c, "index")),
                                          data_arg(arg(c, "to"),
                                                   mp_value_typecode(a))));
}

/* A slice bound: omitted or null is None. */
static long long bound(struct call *c, const char *key, long long none)
{
    json_t *b = arg(c, key);

    return b == NULL || json_is_null(b) ? none
                                        : (long long)json_integer_value(b);
}

/* n native elements of typecode tc as a step's value: a list, or text
 * for 'c' and 'u'. */
static json_t *elements_json(struct call *c, char tc, const void *buf,
                             size_t n)
{
    json_t *list;

    if (tc == 'c')
        return bytes_json(buf, n);
    if (tc == 'u')
        return wide_json(c, buf, n);
    list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e;
        switch (tc) {
        case 'b': e = json_integer(((const signed char *)buf)[i]); break;
        case 'B': e = json_integer(((const unsigned char *)buf)[i]); break;
        case 'h': e = json_integer(((const short *)buf)[i]); break;
        case 'H': e = json_integer(((const unsigned short *)buf)[i]); break;
        case 'i': e = json_integer(((const int *)buf)[i]); break;
        case 'I': e = json_integer(((const unsigned *)buf)[i]); break;
        case 'l': e = json_integer(((const long *)buf)[i]); break;
        case 'q': e = json_integer(((const long long *)buf)[i]); break;
        /* beyond 2**63 - 1 no reference holds them (cases/README.md) */
        case 'L': e = json_integer((json_int_t)((const unsigned long *)
                                                buf)[i]); break;
        case 'Q': e = json_integer((json_int_t)((const unsigned long long *)
                                                buf)[i]); break;
        case 'f': e = json_real(((const float *)buf)[i]); break;
        default: e = json_real(((const double *)buf)[i]); break;
        }
        json_array_append_new(list, e);
    }
    return list;
}

static json_t *op_array_slice_get(struct call *c)
{
    mp_value *a = value_obj(c)->val;
    long long start = bound(c, "start", 0), stop = bound(c, "stop",
                                                         MP_SLICE_END);
    long long n = mp_array_read(a, start, stop, NULL, 0);
    size_t size = mp_value_itemsize(a);
    void *buf;
    json_t *v;

    if (n < 0)
        return failed(c, (int)n);
    if ((buf = malloc((size_t)n * size + 1)) == NULL)
        return failed(c, -ENOMEM);
    n = mp_array_read(a, start, stop, buf, (size_t)n);
    v = n < 0 ? failed(c, (int)n)
              : elements_json(c, mp_value_typecode(a), buf, (size_t)n);
    free(buf);
    return v;
}

/* Python's clamping of a slice bound to [0, len]. */
static long long clamp(long long b, long long len)
{
    if (b < 0)
        b = b < -len ? 0 : b + len;
    return b > len ? len : b;
}

/* a[start:stop] = to: the lengths must agree, then each item is set in
 * turn, as ctypes sets them (an item that fails leaves those before it
 * set). */
static json_t *op_array_slice_set(struct call *c)
{
    mp_value *a = value_obj(c)->val;
    char tc = mp_value_typecode(a), (*chars)[5] = NULL;
    json_t *to = arg(c, "to"), *e;
    long long start = bound(c, "start", 0), stop = bound(c, "stop",
                                                         MP_SLICE_END);
    long long n = mp_array_read(a, start, stop, NULL, 0), len;
    mp_arg *items;
    size_t count = 0, i;
    int r = 0;

    if (n < 0) /* a Value is not subscriptable */
        return failed(c, (int)n);
    if (json_is_string(to)) {
        chars = calloc(json_string_length(to) + 1, sizeof(*chars));
        items = chars != NULL ? string_items(to, tc, &count, chars) : NULL;
    } else {
        count = json_array_size(to);
        if ((items = calloc(count + 1, sizeof(*items))) != NULL)
            json_array_foreach(to, i, e)
                items[i] = data_arg(e, tc);
    }
    if (items == NULL) {
        free(chars);
        return failed(c, -ENOMEM);
    }
    len = (long long)mp_value_len(a);
    start = clamp(start, len);
    if ((long long)count != n)
        r = MP_EVALSLICE;
    for (i = 0; r >= 0 && i < count; i++)
        r = mp_array_set(a, start + (long long)i, items[i]);
    free(items);
    free(chars);
    return null_or_failed(c, r);
}

static json_t *op_array_raw(struct call *c)
{
    mp_value *a = value_obj(c)->val;
    long long n = mp_array_raw(a, NULL, 0);
    void *buf;
    json_t *v;

    if (n < 0)
        return failed(c, (int)n);
    if ((buf = malloc((size_t)n + 1)) == NULL)
        return failed(c, -ENOMEM);
    n = mp_array_raw(a, buf, (size_t)n + 1);
    v = n < 0 ? failed(c, (int)n) : bytes_json(buf, (size_t)n);
    free(buf);
    return v;
}

/* SharedMemory */

static json_t *op_shm(struct call *c)
{
    const char *name = arg_str(c, "name");
    json_int_t size = json_integer_value(arg(c, "size"));
    mp_shm *s;
    int r;

    if (arg(c, "name_of") != NULL)
        name = mp_shm_name(shm_of(c, "name_of"));
    /* a negative size becomes one above SSIZE_MAX: CPython's ValueError */
    r = mp_shm_new(&s, name, json_is_true(arg(c, "create")), (size_t)size);
    if (r < 0)
        return failed(c, r);
    steps_new_obj(c->in, arg_str(c, "as"))->shm = s;
    return json_null();
}

static json_t *op_shm_name(struct call *c)
{
    const char *name = mp_shm_name(shm_of(c, "shm"));
    char *norm = norm_line(name);
    json_t *v = json_string(norm != NULL ? norm : name);

    free(norm);
    return v;
}

static json_t *op_shm_size(struct call *c)
{
    return json_integer((json_int_t)mp_shm_size(shm_of(c, "shm")));
}

static json_t *op_shm_repr(struct call *c)
{
    char buf[1024], *norm;
    json_t *v;

    mp_shm_repr(shm_of(c, "shm"), buf, sizeof(buf));
    norm = norm_line(buf);
    v = json_string(norm != NULL ? norm : buf);
    free(norm);
    return v;
}

/* buf[offset:offset + n] of a memoryview of `size` bytes: where it starts
 * and how long it is, clamped as Python clamps it. */
static size_t view_slice(size_t size, json_int_t offset, size_t n,
                         size_t *start)
{
    size_t off = (uintmax_t)offset > size ? size : (size_t)offset;
    size_t end = n > size - off ? size : off + n;

    *start = off;
    return end - off;
}

static json_t *op_shm_write(struct call *c)
{
    mp_shm *s = shm_of(c, "shm");
    json_t *d = arg(c, "data");
    char *buf = mp_shm_buf(s);
    size_t n = json_string_length(d), start;

    if (buf == NULL) /* closed: buf is None */
        return raise_text(c, strdup("TypeError: 'NoneType' object does not "
                                    "support item assignment"));
    if (view_slice(mp_shm_size(s), json_integer_value(arg(c, "offset")), n,
                   &start) != n)
        return raise_text(c, strdup("ValueError: memoryview assignment: "
                                    "lvalue and rvalue have different "
                                    "structures"));
    memcpy(buf + start, json_string_value(d), n);
    return json_null();
}

static json_t *op_shm_read(struct call *c)
{
    mp_shm *s = shm_of(c, "shm");
    const char *buf = mp_shm_buf(s);
    size_t start, n;

    if (buf == NULL)
        return raise_text(c, strdup("TypeError: 'NoneType' object is not "
                                    "subscriptable"));
    n = view_slice(mp_shm_size(s), json_integer_value(arg(c, "offset")),
                   (size_t)json_integer_value(arg(c, "length")), &start);
    return bytes_json(buf + start, n);
}

static json_t *op_shm_close(struct call *c)
{
    return null_or_failed(c, mp_shm_close(shm_of(c, "shm")));
}

static json_t *op_shm_unlink(struct call *c)
{
    return null_or_failed(c, mp_shm_unlink(shm_of(c, "shm")));
}

void steps_shared_free_obj(struct obj *o)
{
    o->val = mp_value_free(o->val);
    o->shm = mp_shm_free(o->shm);
}

const struct step_handler steps_shared_handlers[] = {
    OP(value), OP(raw_value), OP(array), OP(raw_array), OP(value_get),
    OP(value_set), OP(value_between), OP(value_increment), OP(value_repr),
    OP(value_acquire), OP(value_release), OP(get_lock), OP(get_obj),
    OP(array_len), OP(array_get), OP(array_set), OP(array_slice_get),
    OP(array_slice_set), OP(array_raw), OP(shm), OP(shm_name), OP(shm_size),
    OP(shm_repr), OP(shm_write), OP(shm_read), OP(shm_close),
    OP(shm_unlink),
};
const size_t steps_shared_nhandlers =
    sizeof(steps_shared_handlers) / sizeof(*steps_shared_handlers);
