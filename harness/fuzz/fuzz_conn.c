/*
 * fuzz_conn.c - fuzz target: the receiving side of a Connection
 * (harness/lib/connection.c).  The input's first 4 bytes choose the
 * pipe and the calls; the rest is what arrives: it is written raw into one
 * end of an mp_pipe() (a socketpair, or a pipe(2)), that end is closed, and
 * the other end reads messages with mp_conn_poll(), mp_conn_recv_bytes(),
 * mp_conn_recv_bytes_into() and mp_conn_recv_bytes_into_ex() until it
 * fails, then once more.
 *
 *   byte 0  bit 0: a one-way pipe (else duplex); bits 1-2: recv_bytes'
 *           maxlength (none, byte 1, 1 MiB, 0)
 *   byte 1  recv_bytes_into's buffer size, and maxlength
 *   byte 2  which call reads each message: 2 bits a message, in turn
 *   byte 3  how often the rest is written, one after another (1 + its low
 *           5 bits): a small input can make a message past 64 KiB, where
 *           a receive's buffer grows, on a one-way pipe made large enough
 *
 * With the writer closed every read ends (EOF), so nothing can wait.
 * Besides the sanitizers it compares each result with a model of CPython's
 * framing (a 4-byte big-endian signed length; -1, then an 8-byte length):
 * the length, the bytes and the error of every message.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mp.h"

#define MAX_STREAM 60000 /* below a pipe's 64 KiB: the write never waits */
#define MAX_BIG (1 << 20) /* a pipe made this large (pipe-max-size's default) */

struct model {
    const uint8_t *s;
    size_t len, pos;
    int dead; /* 0 readable, else what every call now returns */
};

/* The next message by the model: 0 and its place, or the error. */
static int model_next(struct model *m, size_t maxlength, const uint8_t **msg,
                      uint64_t *n, int duplex)
{
    size_t left = m->len - m->pos;
    uint64_t v = 0;
    size_t head = 4;

    if (m->dead)
        return m->dead;
    if (left == 0)
        return MP_EEOF;
    if (left < 4) {
        m->pos = m->len;
        return MP_EEOFMSG;
    }
    for (int k = 0; k < 4; k++)
        v = v << 8 | m->s[m->pos + (size_t)k];
    if (v == 0xffffffffu) {
        head = 12;
        if (left < 12) {
            m->pos = m->len;
            return MP_EEOFMSG;
        }
        v = 0;
        for (int k = 4; k < 12; k++)
            v = v << 8 | m->s[m->pos + (size_t)k];
    } else if (v > 0x7fffffff) {
        v = UINT64_MAX;
    }
    if (v > maxlength || v > SIZE_MAX / 2) {
        m->pos += head;
        m->dead = duplex ? MP_EWRITEONLY : MP_EHANDLECLOSED;
        return MP_EBADLENGTH;
    }
    *n = v;
    if (v > left - head) {
        m->pos = m->len;
        return MP_EEOFMSG;
    }
    *msg = m->s + m->pos + head;
    m->pos += head + (size_t)v;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[] = { MP_NOLIMIT, 0, 1 << 20, 0 };
    mp_conn *a = NULL, *b = NULL;
    struct model m = { 0 };
    int duplex, calls, reps;
    size_t maxlength, into, tail, cap;
    uint8_t *stream;

    if (size < 4)
        return 0;
    duplex = !(data[0] & 1);
    maxlength = limits[(data[0] >> 1) & 3];
    if (((data[0] >> 1) & 3) == 1)
        maxlength = data[1];
    into = data[1];
    calls = data[2];
    reps = 1 + (data[3] & 0x1f);
    tail = size - 4;

    if (mp_pipe(&a, &b, duplex) < 0)
        abort();
    cap = MAX_STREAM;
    if (!duplex && tail * (size_t)reps > MAX_STREAM) {
        int got = fcntl(mp_conn_fileno(b), F_SETPIPE_SZ, MAX_BIG);
        cap = got > 0 ? (size_t)got : cap;
    }
    m.len = tail * (size_t)reps < cap ? tail * (size_t)reps : cap;
    if ((stream = malloc(m.len + 1)) == NULL)
        abort();
    for (size_t k = 0; k < m.len; k += tail)
        memcpy(stream + k, data + 4, m.len - k < tail ? m.len - k : tail);
    m.s = stream;
    if (m.len > 0 &&
        write(mp_conn_fileno(b), m.s, m.len) != (ssize_t)m.len)
        abort();
    b = mp_conn_free(b);

    for (int i = 0, last = 0; i < 64 && last < 2; i++) {
        int how = (calls >> (2 * (i % 4))) & 3, want, r, p;
        const uint8_t *msg = NULL;
        uint64_t n = 0;
        size_t len = 0;
        void *out = NULL, *whole = NULL;
        unsigned char buf[256];

        p = mp_conn_poll(a, 0);
        if (p != (m.dead ? m.dead : 1))
            abort(); /* data or EOF: readable at once */
        want = model_next(&m, how == 0 ? maxlength : MP_NOLIMIT, &msg, &n,
                          duplex);
        if (how == 0) {
            r = mp_conn_recv_bytes(a, &out, &len, maxlength);
            if (r == 0 && (len != n || memcmp(out, msg, len) != 0 ||
                           ((char *)out)[len] != '\0'))
                abort();
            if (r != 0 && out != NULL)
                abort();
        } else {
            r = how == 1 ? mp_conn_recv_bytes_into(a, buf, into, &len)
                         : mp_conn_recv_bytes_into_ex(a, buf, into, &len,
                                                      how == 2 ? &whole
                                                               : NULL);
            if (want == 0 && n > into)
                want = MP_ETOOSHORT;
            if (r == 0 && (len != n || memcmp(buf, msg, len) != 0))
                abort();
            if (r == MP_ETOOSHORT && (len != n ||
                                      (how == 2 && (memcmp(whole, msg, n) != 0 ||
                                                    ((char *)whole)[n] != '\0'))))
                abort();
            if (r != MP_ETOOSHORT && whole != NULL)
                abort();
        }
        if (r != want)
            abort();
        free(out);
        free(whole);
        if (r != 0 && r != MP_ETOOSHORT)
            last++; /* the failure, then once more: the same clean error */
    }
    mp_conn_free(a);
    free(stream);
    return 0;
}
