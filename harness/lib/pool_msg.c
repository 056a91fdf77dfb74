/*
 * pool_msg.c - the messages between a pool and its workers (CPython
 * pickles (job, i, func, args, kwds) and (job, i, (success, value))).
 *
 * Both ends are the same program, so words are native; the reader checks
 * every length and count against what the message holds: a worker or a
 * peer writing over a queue may have sent anything.
 */
#include <errno.h>
#include <string.h>

#include "pool.h"

void mp__task_begin(struct mp__out *o, uint64_t tid, uint64_t job,
                    uint64_t chunk, uint32_t nitems, const char *name,
                    size_t namelen)
{
    struct mp__task_hdr h = { tid, job, chunk, nitems, (uint32_t)namelen };

    mp__put(o, &h, sizeof(h));
    mp__put(o, name, namelen);
}

void mp__task_item(struct mp__out *o, const mp_arg *v, size_t n)
{
    size_t at = o->len;
    uint64_t len;

    mp__put_u64(o, 0); /* its length, once known */
    mp__args_encode_plain(o, v, n);
    if (o->failed)
        return;
    len = o->len - at - sizeof(len);
    memcpy(o->p + at, &len, sizeof(len));
}

int mp__task_parse(const void *msg, size_t len, struct mp__task *t)
{
    const char *p = msg;

    if (len < sizeof(t->h))
        return -EPROTO;
    memcpy(&t->h, p, sizeof(t->h));
    if (t->h.namelen > MP_TARGET_NAME_MAX ||
        t->h.namelen > len - sizeof(t->h))
        return -EPROTO;
    t->name = p + sizeof(t->h);
    t->items.p = p + sizeof(t->h) + t->h.namelen;
    t->items.left = len - sizeof(t->h) - t->h.namelen;
    t->items.failed = false;
    return 0;
}

int mp__task_next(struct mp__task *t, const char **item, size_t *n)
{
    uint64_t len = mp__get_u64(&t->items);

    if (t->items.failed || len > t->items.left)
        return -EPROTO;
    *item = t->items.p;
    *n = (size_t)len;
    t->items.p += len;
    t->items.left -= (size_t)len;
    return 0;
}

void mp__res_begin(struct mp__out *o, uint32_t kind, int err, uint64_t job,
                   uint64_t chunk)
{
    struct mp__res_hdr h = { kind, err, job, chunk, 0 };

    o->len = 0;
    o->failed = false;
    mp__put(o, &h, sizeof(h));
}

void mp__res_value(struct mp__out *o, const mp_arg *v)
{
    uint64_t bits;

    mp__put_u64(o, (uint64_t)v->type);
    switch (v->type) {
    case MP_ARG_INT:
        mp__put_u64(o, (uint64_t)v->u.i);
        break;
    case MP_ARG_DOUBLE:
        memcpy(&bits, &v->u.d, sizeof(bits));
        mp__put_u64(o, bits);
        break;
    case MP_ARG_STR:
        mp__put_str(o, v->u.s, strlen(v->u.s));
        break;
    case MP_ARG_BYTES:
        mp__put_str(o, v->u.b.len > 0 ? v->u.b.buf : "", v->u.b.len);
        break;
    default: /* None */
        break;
    }
}

void mp__res_end(struct mp__out *o, uint64_t n)
{
    if (!o->failed)
        memcpy(o->p + offsetof(struct mp__res_hdr, n), &n, sizeof(n));
}

void mp__res_error(struct mp__out *o, int err, uint64_t job, uint64_t chunk)
{
    mp__res_begin(o, MP__RES_ERR, err, job, chunk);
    if (err == MP_ERAISED) {
        const char *exc = mp_exception_name(err), *msg = mp_strerror(err);
        mp__put_str(o, exc, strlen(exc));
        mp__put_str(o, msg, strlen(msg));
    }
}

int mp__res_parse(const void *msg, size_t len, struct mp__res_hdr *h,
                  struct mp__in *body)
{
    if (len < sizeof(*h))
        return -EPROTO;
    memcpy(h, msg, sizeof(*h));
    body->p = (const char *)msg + sizeof(*h);
    body->left = len - sizeof(*h);
    body->failed = false;
    return 0;
}

bool mp__res_next_value(struct mp__in *in, mp_arg *v)
{
    uint64_t type = mp__get_u64(in), bits, n;

    memset(v, 0, sizeof(*v));
    switch (type) {
    case 0:
        v->type = MP_ARG_NONE;
        break;
    case MP_ARG_INT:
        v->type = MP_ARG_INT;
        v->u.i = (long long)mp__get_u64(in);
        break;
    case MP_ARG_DOUBLE:
        v->type = MP_ARG_DOUBLE;
        bits = mp__get_u64(in);
        memcpy(&v->u.d, &bits, sizeof(bits));
        break;
    case MP_ARG_STR:
    case MP_ARG_BYTES:
        v->type = (int)type;
        n = mp__get_u64(in);
        if (in->failed || n > in->left)
            return false;
        v->u.b.buf = in->p;
        v->u.b.len = (size_t)n;
        if (type == MP_ARG_STR && memchr(in->p, '\0', (size_t)n) != NULL)
            return false;
        in->p += n;
        in->left -= (size_t)n;
        break;
    default:
        return false;
    }
    return !in->failed;
}
