/*
 * pyrepr.c - str() and repr() of a JSON value as CPython writes them for
 * the object json.loads() makes of it (None, True, 1, 1.5, 'text', [...],
 * {...}): what sys.exit(obj) prints for an object that is not an int
 * (CPython: Objects/floatobject.c float_repr, unicodeobject.c
 * unicode_repr, listobject.c list_repr, dictobject.c dict_repr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

/* repr(float): the fewest digits that read back as the same double, in
 * fixed notation when the decimal point falls from 4 places left of the
 * first digit to 16 right of it, else as 1.5e+16 (PyOS_double_to_string's
 * 'r' mode). */
static void float_repr(FILE *f, double x)
{
    char buf[40], digits[24], *e;
    int prec, exp10, decpt, n = 0;

    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    snprintf(buf, sizeof(buf), "%.*e", prec - 1, x);
    e = strchr(buf, 'e');
    exp10 = atoi(e + 1);
    for (char *s = buf; s < e; s++)
        if (*s >= '0' && *s <= '9')
            digits[n++] = *s;
    while (n > 1 && digits[n - 1] == '0') /* %e pads to the precision */
        n--;
    digits[n] = '\0';
    decpt = exp10 + 1;
    if (buf[0] == '-')
        fputc('-', f);
    if (decpt <= -4 || decpt > 16) {
        fprintf(f, "%c%s%s", digits[0], n > 1 ? "." : "", digits + 1);
        fprintf(f, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (decpt <= 0) {
        fprintf(f, "0.%.*s%s", -decpt, "000", digits);
    } else if (decpt >= n) {
        fprintf(f, "%s%.*s.0", digits, decpt - n, "0000000000000000");
    } else {
        fprintf(f, "%.*s.%s", decpt, digits, digits + decpt);
    }
}

/* Whether str.isprintable() holds for a non-ASCII code point: not for the
 * separators (Zs, Zl, Zp), the format characters (Cf) and the private use
 * areas (Co).  Unassigned code points (Cn), which Python does not print
 * either, are not known here: they print as themselves. */
static int printable(uint32_t c)
{
    static const uint32_t no[][2] = {
        { 0x80, 0xa0 }, { 0xad, 0xad }, { 0x600, 0x605 }, { 0x61c, 0x61c },
        { 0x6dd, 0x6dd }, { 0x70f, 0x70f }, { 0x890, 0x891 },
        { 0x8e2, 0x8e2 }, { 0x1680, 0x1680 }, { 0x180e, 0x180e },
        { 0x2000, 0x200f }, { 0x2028, 0x202f }, { 0x205f, 0x2064 },
        { 0x2066, 0x206f }, { 0x3000, 0x3000 }, { 0xd800, 0xf8ff },
        { 0xfeff, 0xfeff }, { 0xfff9, 0xfffb }, { 0x110bd, 0x110bd },
        { 0x110cd, 0x110cd }, { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 },
        { 0x1d173, 0x1d17a }, { 0xe0001, 0xe0001 }, { 0xe0020, 0xe007f },
        { 0xf0000, 0x10ffff },
    };

    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        if (c >= no[i][0] && c <= no[i][1])
            return 0;
    return 1;
}

/* One UTF-8 sequence (jansson's strings are valid UTF-8): its code point,
 * and its length in *len. */
static uint32_t decode(const unsigned char *s, size_t *len)
{
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    if (s[0] < 0xe0) {
        *len = 2;
        return (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
    }
    if (s[0] < 0xf0) {
        *len = 3;
        return (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 |
               (s[2] & 0x3f);
    }
    *len = 4;
    return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
           (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
}

/* repr(str): single quotes unless the text has ' and no ". */
static void str_repr(FILE *f, const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    int quote = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    size_t len;

    fputc(quote, f);
    for (size_t i = 0; i < n; i += len) {
        uint32_t c = decode(s + i, &len);
        if (c == (uint32_t)quote || c == '\\')
            fprintf(f, "\\%c", (int)c);
        else if (c == '\t' || c == '\n' || c == '\r')
            fprintf(f, "\\%c", c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
        else if (c < 0x20 || c == 0x7f || (c > 0x7f && !printable(c)))
            fprintf(f, c <= 0xff ? "\\x%02x" : c <= 0xffff ? "\\u%04x"
                                                           : "\\U%08x", c);
        else
            fwrite(s + i, 1, len, f);
    }
    fputc(quote, f);
}

static void repr(FILE *f, json_t *v)
{
    const char *key;
    json_t *e;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_NULL: fputs("None", f); break;
    case JSON_TRUE: fputs("True", f); break;
    case JSON_FALSE: fputs("False", f); break;
    case JSON_INTEGER:
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: float_repr(f, json_real_value(v)); break;
    case JSON_STRING:
        str_repr(f, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY:
        fputc('[', f);
        json_array_foreach(v, i, e) {
            fputs(i > 0 ? ", " : "", f);
            repr(f, e);
        }
        fputc(']', f);
        break;
    case JSON_OBJECT: /* jansson keeps the file's order, as a dict does */
        fputc('{', f);
        i = 0;
        json_object_foreach(v, key, e) {
            json_t *k = json_string(key);
            fputs(i++ > 0 ? ", " : "", f);
            repr(f, k);
            json_decref(k);
            fputs(": ", f);
            repr(f, e);
        }
        fputc('}', f);
        break;
    }
}

char *pyrepr_str(json_t *v, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    if (f == NULL)
        return NULL;
    if (json_is_string(v))
        fwrite(json_string_value(v), 1, json_string_length(v), f);
    else
        repr(f, v);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
