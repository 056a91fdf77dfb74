/*
 * fuzz_blob.c - fuzz target: what a spawned or forkserver child decodes
 * before its target runs (harness/lib/spawn.c, wire.c, args.c): the blob
 * that describes the process, as mp__blob_recv() reads it off descriptor
 * 3 and mp__blob_child() makes the process object of it, then the typed
 * arguments in it, as mp__args_decode() reads them on first use, and what
 * the target's getters and mp_process_repr() make of the result.  Nothing
 * forks: these are the pure decoders under the child's bootstrap.
 *
 *   byte 0  0: the rest is a blob, given to mp__blob_child();
 *           1: the rest is sent as it is over a socketpair and read with
 *              mp__blob_recv() (an 8-byte length, then the blob);
 *           2: the rest is typed arguments alone (below)
 *   byte 1  modes 0 and 1: how many descriptors the child was handed
 *           (0-60; all -1, so nothing is opened or closed);
 *           mode 2: the number of handles (0-8), each described by the
 *           next byte (low nibble: connection flags; high: its use)
 *
 * Besides the sanitizers it checks that typed arguments that decode and
 * encode again (without handles, whose numbering the encoder makes anew)
 * give the same bytes: the decoder takes nothing the encoder cannot write
 * but for what its check refuses (a name given twice).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* A target for blobs to name (the seeds do). */
MP_TARGET(fuzz_noop)
{
    return 0;
}

static int no_fds[MP__MAX_CONNS + 4];

/* Reads every value the way a target would, then encodes the values again
 * where that must give the same bytes. */
static void use_args(const mp_args *a, const char *buf, size_t len)
{
    size_t n = mp_args_count(a), elen = 0, nh = 0;
    mp_arg *v = calloc(n + 1, sizeof(*v));
    mp_conn *handles[MP__MAX_HANDLES];
    char *enc = NULL;
    int plain = 1;

    if (v == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *s = NULL;
        const void *b = NULL;
        size_t blen = 0;
        mp_queue *q = NULL;
        mp_conn *c = NULL;

        v[i].type = mp_args_type(a, i);
        v[i].name = mp_args_name(a, i);
        if (v[i].name != NULL && mp_args_index(a, v[i].name) < 0)
            abort();
        switch (v[i].type) {
        case MP_ARG_INT:
            if (mp_args_get_int(a, i, &v[i].u.i) < 0)
                abort();
            break;
        case MP_ARG_DOUBLE:
            if (mp_args_get_double(a, i, &v[i].u.d) < 0)
                abort();
            break;
        case MP_ARG_STR:
            if (mp_args_get_str(a, i, &s) < 0 || s == NULL)
                abort();
            mp_args_get_bytes(a, i, &b, &blen); /* a TypeError */
            v[i].u.s = s;
            break;
        case MP_ARG_BYTES:
            if (mp_args_get_bytes(a, i, &b, &blen) < 0 || b == NULL)
                abort();
            v[i].u.b.buf = b;
            v[i].u.b.len = blen;
            break;
        case MP_ARG_QUEUE:
            mp_args_get_queue(a, i, &q); /* fd -1: cannot map it */
            plain = 0;
            break;
        case MP_ARG_CONN:
            if (mp_args_get_conn(a, i, &c) < 0 || c == NULL)
                abort();
            plain = 0;
            break;
        default:
            abort(); /* the decoder let an unknown type through */
        }
    }
    mp_args_get_int(a, n, NULL); /* out of range: an IndexError */
    /* No bytes at all is the blob's "no typed arguments": no count. */
    if (plain && len > 0 &&
        mp__args_encode(v, n, &enc, &elen, handles, &nh) == 0 &&
        (elen != len || (len > 0 && memcmp(enc, buf, len) != 0)))
        abort();
    free(enc);
    free(v);
}

static void decode_args(const char *buf, size_t len, mp_conn *const *conns,
                        const unsigned char *use, size_t nconns)
{
    mp_args *a = NULL;

    if (mp__args_decode(buf, len, conns, use, nconns, &a) == 0) {
        use_args(a, buf, len);
        mp__args_free(a);
    } else if (a != NULL) {
        abort(); /* nothing to free after a failure */
    }
}

static void blob(const char *buf, size_t len, size_t nfds)
{
    mp_process *p = NULL;
    char repr[512];

    if (mp__blob_child(buf, len, &p, no_fds, nfds) == 0) {
        mp_process_repr(p, repr, sizeof(repr));
        if (mp_process_name(p) == NULL)
            abort();
        if (p->targs != NULL)
            decode_args(p->targs, p->targs_len, p->conns, p->conn_use,
                        p->nconns);
    }
    mp_process_free(p);
}

/* The blob as a child reads it: a length, then that many bytes. */
static void blob_recv(const char *buf, size_t len, size_t nfds)
{
    int sv[2];
    char *got = NULL;
    size_t n = 0;

    if (len > 60000) /* the whole write fits in the socket at once */
        len = 60000;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (len > 0 && write(sv[1], buf, len) != (ssize_t)len)
        abort();
    close(sv[1]);
    if (mp__blob_recv(sv[0], &got, &n) == 0)
        blob(got, n, nfds);
    else if (got != NULL)
        abort(); /* callers free only what a success gives */
    free(got);
    close(sv[0]);
}

static void args(const uint8_t *data, size_t size)
{
    mp_conn *conns[8];
    unsigned char use[8];
    size_t n = size > 0 ? data[0] % 9 : 0, i;

    if (size < 1 + n)
        return;
    for (i = 0; i < n; i++) {
        conns[i] = mp__conn_wrap(-1, data[1 + i] & 0xf);
        use[i] = data[1 + i] >> 4;
        if (conns[i] == NULL)
            abort();
    }
    decode_args((const char *)data + 1 + n, size - 1 - n, conns, use, n);
    for (i = 0; i < n; i++)
        mp_conn_free(conns[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (no_fds[0] == 0)
        for (size_t i = 0; i < sizeof(no_fds) / sizeof(*no_fds); i++)
            no_fds[i] = -1;
    if (size < 2)
        return 0;
    switch (data[0] % 3) {
    case 0:
        blob((const char *)data + 2, size - 2, data[1] % (MP__MAX_CONNS + 1));
        break;
    case 1:
        blob_recv((const char *)data + 2, size - 2,
                  data[1] % (MP__MAX_CONNS + 1));
        break;
    default:
        args(data + 1, size - 1);
    }
    return 0;
}
