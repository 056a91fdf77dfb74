/*
 * pyrepr.h - Python's repr() of text, for the reprs and messages that
 * quote a name (a process's, a SharedMemory's) or a character (a ctypes
 * c_char or c_wchar): UTF-8 read as Python's str would be, and escaped as
 * str.__repr__ escapes.
 */
#ifndef MP_PYREPR_H
#define MP_PYREPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The code point at *s, moving *s past it: 1, 0 at the end, -1 for what
 * is not UTF-8 (overlong forms and surrogates included; *s stays). */
int mp__utf8_next(const char **s, uint32_t *cp);
/* Whether str.isprintable() takes the code point (as far as ranges can
 * say: CPython also rejects the code points Unicode leaves unassigned). */
bool mp__py_printable(uint32_t c);
/* One code point of a str's repr quoted by q into out (at least 12 bytes):
 * itself, or its escape (\\, \', \t, \n, \r, \xNN, \uNNNN, \UNNNNNNNN). */
void mp__py_escape(uint32_t c, char q, char *out);
/* repr(s) as snprintf writes: the length it needs, out filled as far as
 * size allows.  The quotes are Python's (single unless s holds one and no
 * double); a byte that is not UTF-8 shows as \xNN. */
size_t mp__py_repr_str(char *out, size_t size, const char *s);

#endif
