/*
 * wire.c - the bytes a parent tells a child: the spawn blob and the typed
 * arguments.  Native-endian 64-bit words and length-prefixed strings (the
 * two ends are the same program), written to a growing buffer and read back
 * with every length checked against what is left: under spawn and
 * forkserver the reader's bytes come from another process.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

bool mp__out_grow(struct mp__out *o, size_t n)
{
    size_t cap = o->cap ? o->cap : 256;
    char *grown;

    while (cap - o->len < n) {
        if (cap > SIZE_MAX / 2) {
            o->failed = true;
            return false;
        }
        cap *= 2;
    }
    if ((grown = realloc(o->p, cap)) == NULL) {
        o->failed = true;
        return false;
    }
    o->p = grown;
    o->cap = cap;
    return true;
}

void mp__put_str(struct mp__out *o, const void *s, size_t n)
{
    mp__put_u64(o, n);
    mp__put(o, s, n);
}

char *mp__get_str(struct mp__in *r, size_t max, size_t *n_out)
{
    uint64_t n = mp__get_u64(r);
    char *s;

    if (r->failed || n > r->left || n > max ||
        (s = malloc((size_t)n + 1)) == NULL) {
        r->failed = true;
        return NULL;
    }
    memcpy(s, r->p, (size_t)n);
    s[n] = '\0';
    r->p += n;
    r->left -= (size_t)n;
    if (n_out != NULL)
        *n_out = (size_t)n;
    return s;
}
