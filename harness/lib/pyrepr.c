/* pyrepr.c - Python's repr() of text (pyrepr.h). */
#include "pyrepr.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int mp__utf8_next(const char **s, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)*s;
    uint32_t c = *p, min;
    int more;

    if (c == 0)
        return 0;
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
    *s = (const char *)p;
    return 1;
}

/* Against CPython 3.13, every code point agrees but those Unicode leaves
 * unassigned (which CPython escapes): controls, spaces but ' ', format
 * characters, surrogates, private use, non-characters. */
bool mp__py_printable(uint32_t c)
{
    static const uint32_t no[][2] = {
        { 0x0000, 0x001f },   { 0x007f, 0x00a0 },   { 0x00ad, 0x00ad },
        { 0x0600, 0x0605 },   { 0x061c, 0x061c },   { 0x06dd, 0x06dd },
        { 0x070f, 0x070f },   { 0x0890, 0x0891 },   { 0x08e2, 0x08e2 },
        { 0x1680, 0x1680 },   { 0x180e, 0x180e },   { 0x2000, 0x200f },
        { 0x2028, 0x202f },   { 0x205f, 0x2064 },   { 0x2066, 0x206f },
        { 0x3000, 0x3000 },   { 0xd800, 0xf8ff },   { 0xfdd0, 0xfdef },
        { 0xfeff, 0xfeff },   { 0xfff9, 0xfffb },   { 0x110bd, 0x110bd },
        { 0x110cd, 0x110cd }, { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 },
        { 0x1d173, 0x1d17a }, { 0xe0001, 0xe0001 }, { 0xe0020, 0xe007f },
        { 0xf0000, 0x10ffff },
    };

    if ((c & 0xfffe) == 0xfffe)
        return false;
    for (size_t i = 0; i < ARRAY_SIZE(no); i++)
        if (c >= no[i][0] && c <= no[i][1])
            return false;
    return true;
}

void mp__py_escape(uint32_t c, char q, char *out)
{
    if (c == '\\' || c == (uint32_t)(unsigned char)q)
        snprintf(out, 12, "\\%c", (char)c);
    else if (c == '\t' || c == '\n' || c == '\r')
        snprintf(out, 12, "\\%c", c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
    else if (c >= 0x20 && c < 0x7f)
        snprintf(out, 12, "%c", (char)c);
    else if (c < 0x80 || (!mp__py_printable(c) && c < 0x100))
        snprintf(out, 12, "\\x%02" PRIx32, c);
    else if (!mp__py_printable(c))
        snprintf(out, 12, c < 0x10000 ? "\\u%04" PRIx32 : "\\U%08" PRIx32,
                 c);
    else if (c < 0x800)
        snprintf(out, 12, "%c%c", (char)(0xc0 | c >> 6),
                 (char)(0x80 | (c & 0x3f)));
    else if (c < 0x10000)
        snprintf(out, 12, "%c%c%c", (char)(0xe0 | c >> 12),
                 (char)(0x80 | (c >> 6 & 0x3f)), (char)(0x80 | (c & 0x3f)));
    else
        snprintf(out, 12, "%c%c%c%c", (char)(0xf0 | c >> 18),
                 (char)(0x80 | (c >> 12 & 0x3f)),
                 (char)(0x80 | (c >> 6 & 0x3f)), (char)(0x80 | (c & 0x3f)));
}

/* Appends piece to out as snprintf would: *len counts what was needed. */
static void append(char *out, size_t size, size_t *len, const char *piece)
{
    size_t n = strlen(piece);

    if (*len + 1 < size) {
        size_t room = size - 1 - *len;
        memcpy(out + *len, piece, n < room ? n : room);
        out[*len + (n < room ? n : room)] = '\0';
    }
    *len += n;
}

size_t mp__py_repr_str(char *out, size_t size, const char *s)
{
    char q = strchr(s, '\'') != NULL && strchr(s, '"') == NULL ? '"' : '\'';
    char quote[2] = { q, '\0' }, piece[12];
    size_t len = 0;

    if (size > 0)
        out[0] = '\0';
    append(out, size, &len, quote);
    while (*s != '\0') {
        uint32_t c;
        if (mp__utf8_next(&s, &c) > 0) {
            mp__py_escape(c, q, piece);
        } else {
            snprintf(piece, sizeof(piece), "\\x%02x", (unsigned char)*s);
            s++;
        }
        append(out, size, &len, piece);
    }
    append(out, size, &len, quote);
    return len;
}
