/*
 * pool_submit.c - a pool's submissions: apply, map, starmap, imap and
 * imap_unordered, sync and async (CPython: Pool.apply_async, _map_async,
 * imap, imap_unordered and _get_tasks).
 *
 * A submission checks what CPython checks (the pool running, imap's
 * chunksize) and what its pickling would refuse, registers the job, then
 * encodes its chunks and puts them into the task queue itself, BATCH at
 * a time in one commit of the ring.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

/* What a submission runs: apply's one call, map's items, starmap's
 * calls. */
struct batch {
    int kind; /* MP__JOB_* */
    const mp_arg *items;
    const mp_call *calls;
    size_t n;
};

static void item_of(const struct batch *b, size_t i, const mp_arg **v,
                    size_t *n)
{
    if (b->calls != NULL) {
        *v = b->calls[i].args;
        *n = b->calls[i].n;
    } else if (b->kind == MP__JOB_APPLY) {
        *v = b->items;
        *n = b->n;
    } else {
        *v = &b->items[i];
        *n = 1;
    }
}

static size_t batch_len(const struct batch *b)
{
    return b->kind == MP__JOB_APPLY && b->calls == NULL ? 1 : b->n;
}

static int check_target(const mp_target *f)
{
    mp_target_fn fn;

    if (f == NULL || f->name == NULL || f->fn == NULL)
        return MP_EINVAL;
    if ((fn = mp_target_lookup(f->name)) == NULL)
        return mp__target_missing(f->name);
    if (fn != f->fn)
        return mp_raise("ValueError", "target '%s' is not the function "
                        "registered under that name", f->name);
    return 0;
}

static int check_batch(const struct batch *b)
{
    size_t n = batch_len(b);

    if (b->kind != MP__JOB_APPLY && n > 0 && b->items == NULL &&
        b->calls == NULL)
        return MP_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const mp_arg *v;
        size_t nv;
        int r;

        item_of(b, i, &v, &nv);
        if ((r = mp__args_check_plain(v, nv)) < 0)
            return r;
    }
    return 0;
}

static int state_check(mp_pool *p)
{
    int r = 0;

    if (mp__pool_foreign(p))
        return MP_EPOOLNOTRUNNING;
    pthread_mutex_lock(&p->lock);
    if (p->state != MP__POOL_RUN)
        r = MP_EPOOLNOTRUNNING;
    pthread_mutex_unlock(&p->lock);
    return r;
}

/* CPython's chunksize: map's default is len / (4 * processes) rounded
 * up, 0 for no items; imap's is 1 and below 1 is refused. */
static int chunksize_of(mp_pool *p, int kind, size_t n, long cs,
                        size_t *out)
{
    if (kind == MP__JOB_IMAP || kind == MP__JOB_IMAP_UNORDERED) {
        if (cs == MP_CHUNKSIZE_AUTO)
            cs = 1;
        if (cs < 1)
            return mp_raise("ValueError", "Chunksize must be 1+, not %ld",
                            cs);
        *out = (size_t)cs;
        return 0;
    }
    if (kind == MP__JOB_APPLY) {
        *out = 1;
        return 0;
    }
    if (cs == MP_CHUNKSIZE_AUTO) {
        size_t per = 4 * (size_t)p->processes;
        *out = n / per + (n % per != 0);
    } else {
        *out = cs > 0 ? (size_t)cs : 0;
    }
    if (n == 0)
        *out = 0;
    return 0;
}

/* Tasks go to the queue BATCH at a time, in one commit each. */
#define BATCH 32

/* Puts n messages laid one after another in buf: how many went, up to
 * the first failure (*err). */
static size_t put_batch(mp_pool *p, const char *buf, const size_t *lens,
                        size_t n, int *err)
{
    size_t put = 0;

    *err = 0;
    while (put < n) {
        size_t done = 0;

        if ((*err = mp__queue_put_many(p->tasks, buf, lens + put, n - put,
                                       &done)) < 0)
            break;
        for (size_t i = 0; i < done; i++)
            buf += lens[put + i];
        put += done;
        if (put == n)
            break;
        /* The ring is full: a put waits for room, or grows it. */
        if ((*err = mp_queue_put(p->tasks, buf, lens[put], 1, MP_FOREVER)) <
            0)
            break;
        buf += lens[put++];
    }
    return put;
}

/* Puts the job's tasks: one message a chunk, BATCH chunks encoded
 * together and put in one commit. */
static void put_tasks(mp_pool *p, struct mp_result *j, const mp_target *f,
                      const struct batch *b, uint64_t tid)
{
    struct mp__out o = { 0 };
    size_t lens[BATCH], namelen = strlen(f->name);
    size_t c = 0;
    int r = 0;

    while (c < j->nchunks) {
        size_t k = 0, put;

        o.len = 0;
        for (; k < BATCH && c + k < j->nchunks; k++) {
            size_t lo = (c + k) * j->chunksize, at = o.len;
            size_t hi = lo + j->chunksize < j->n ? lo + j->chunksize : j->n;

            mp__task_begin(&o, tid + c + k, j->id, c + k,
                           (uint32_t)(hi - lo), f->name, namelen);
            for (size_t i = lo; i < hi; i++) {
                const mp_arg *v;
                size_t nv;
                item_of(b, i, &v, &nv);
                mp__task_item(&o, v, nv);
            }
            lens[k] = o.len - at;
        }
        if (o.failed) {
            r = -ENOMEM;
            break;
        }
        put = put_batch(p, o.p, lens, k, &r);
        c += put;
        if (r < 0)
            break;
    }
    free(o.p);
    if (r < 0) /* the chunks that never went out fail, through the results */
        mp__job_post_error(p, j->id, c, j->nchunks, r);
}

static int submit(mp_pool *p, const mp_target *f, const struct batch *b,
                  long chunksize, const mp_pool_callbacks *cb,
                  struct mp_result **out)
{
    size_t n = batch_len(b), cs = 0;
    struct mp_result *j;
    uint64_t tid;
    int r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (p == NULL)
        return MP_EINVAL;
    if ((r = state_check(p)) < 0 ||
        (r = chunksize_of(p, b->kind, n, chunksize, &cs)) < 0 ||
        (r = check_target(f)) < 0 || (r = check_batch(b)) < 0)
        return r;
    if ((cs < n ? cs : n) > UINT32_MAX) /* a task's items are counted so */
        return MP_EINVAL;
    if ((j = mp__job_new(b->kind, n, cs, cb)) == NULL)
        return -ENOMEM;
    j->gen = p->gen;
    if (j->nchunks == 0) {
        /* CPython's MapResult with chunksize <= 0: n Nones at once, no
         * task, no callback (an imap of nothing ends at once). */
        mp__job_ready_now(j);
        *out = j;
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    if (p->state != MP__POOL_RUN)
        r = MP_EPOOLNOTRUNNING;
    else if (p->broken < 0)
        r = p->broken;
    else if ((r = mp__table_insert(p, j)) == 0) {
        atomic_fetch_add(&j->refs, 1); /* the pool's, while pending */
        p->pending++;
    }
    pthread_mutex_unlock(&p->lock);
    if (r < 0) {
        mp__job_unref(j);
        return r;
    }
    tid = atomic_fetch_add(&p->next_tid, j->nchunks) + 1;
    put_tasks(p, j, f, b, tid);
    *out = j;
    return 0;
}

int mp_pool_apply_async(mp_pool *pool, const mp_target *f, const mp_arg *args,
                        size_t n, const mp_pool_callbacks *cb,
                        mp_result **out)
{
    struct batch b = { MP__JOB_APPLY, args, NULL, n };

    return submit(pool, f, &b, 1, cb, out);
}

int mp_pool_map_async(mp_pool *pool, const mp_target *f, const mp_arg *items,
                      size_t n, long chunksize, const mp_pool_callbacks *cb,
                      mp_result **out)
{
    struct batch b = { MP__JOB_MAP, items, NULL, n };

    return submit(pool, f, &b, chunksize, cb, out);
}

int mp_pool_starmap_async(mp_pool *pool, const mp_target *f,
                          const mp_call *calls, size_t n, long chunksize,
                          const mp_pool_callbacks *cb, mp_result **out)
{
    struct batch b = { MP__JOB_MAP, NULL, calls, n };

    if (calls == NULL && n > 0) {
        if (out != NULL)
            *out = NULL;
        return MP_EINVAL;
    }
    return submit(pool, f, &b, chunksize, cb, out);
}

int mp_pool_apply(mp_pool *pool, const mp_target *f, const mp_arg *args,
                  size_t n, mp_result **out)
{
    int r = mp_pool_apply_async(pool, f, args, n, NULL, out);

    return r < 0 ? r : mp_result_get(*out, MP_FOREVER);
}

int mp_pool_map(mp_pool *pool, const mp_target *f, const mp_arg *items,
                size_t n, long chunksize, mp_result **out)
{
    int r = mp_pool_map_async(pool, f, items, n, chunksize, NULL, out);

    return r < 0 ? r : mp_result_get(*out, MP_FOREVER);
}

int mp_pool_starmap(mp_pool *pool, const mp_target *f, const mp_call *calls,
                    size_t n, long chunksize, mp_result **out)
{
    int r = mp_pool_starmap_async(pool, f, calls, n, chunksize, NULL, out);

    return r < 0 ? r : mp_result_get(*out, MP_FOREVER);
}

static int imap(mp_pool *pool, int kind, const mp_target *f,
                const mp_arg *items, size_t n, long chunksize, mp_imap **out)
{
    struct batch b = { kind, items, NULL, n };
    struct mp_result *j = NULL;
    int r;

    if (out == NULL)
        return MP_EINVAL;
    r = submit(pool, f, &b, chunksize, NULL, &j);
    *out = (mp_imap *)j;
    return r;
}

int mp_pool_imap(mp_pool *pool, const mp_target *f, const mp_arg *items,
                 size_t n, long chunksize, mp_imap **out)
{
    return imap(pool, MP__JOB_IMAP, f, items, n, chunksize, out);
}

int mp_pool_imap_unordered(mp_pool *pool, const mp_target *f,
                           const mp_arg *items, size_t n, long chunksize,
                           mp_imap **out)
{
    return imap(pool, MP__JOB_IMAP_UNORDERED, f, items, n, chunksize, out);
}
