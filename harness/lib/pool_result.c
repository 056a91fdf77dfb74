/*
 * pool_result.c - a pool's results: the jobs (ApplyResult, MapResult,
 * IMapIterator, IMapUnorderedIterator), the result thread that fills them
 * (CPython: Pool._handle_results and each class's _set()), and waiting on
 * them.
 *
 * The result thread takes each result from the result queue and writes it
 * into its job, which only it writes until the job is complete: a map's
 * results take no lock, and its waiters are woken once, when the job is
 * ready.  An imap's iterator reads chunk by chunk, so each of its chunks
 * is published under the job's lock.  A chunk's first result counts; a
 * later one (an MP_EWORKERLOST after the result it was sent to cover:
 * pool_watch.c) is dropped.  Callbacks run in this thread between
 * `complete` (the values readable) and `ready`, as CPython's run before
 * its event is set.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pool.h"
#ifdef MP_TEST_HOOKS
#include "test_hooks.h"
#endif

/* Results dropped as a chunk's second (tests: mp__pool_duplicates()). */
static _Atomic unsigned long duplicates;

#ifdef MP_TEST_HOOKS
int mp__pool_results_break;

unsigned long mp__pool_duplicates(void)
{
    return atomic_load(&duplicates);
}
#endif

/* arena: a job's strings and bytes, in blocks that never move */

struct mp__arena {
    struct mp__arena *next;
    size_t used, cap;
    char data[];
};

static char *arena_alloc(struct mp__arena **a, size_t n)
{
    if (*a == NULL || (*a)->cap - (*a)->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        struct mp__arena *b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    (*a)->used += n;
    return (*a)->data + (*a)->used - n;
}

static void err_free(struct mp__pool_err *e)
{
    if (e != NULL) {
        free(e->exc);
        free(e->msg);
    }
}

/* jobs */

struct mp_result *mp__job_new(int kind, size_t n, size_t chunksize,
                              const mp_pool_callbacks *cb)
{
    struct mp_result *j = calloc(1, sizeof(*j));
    pthread_condattr_t ca;

    if (j == NULL)
        return NULL;
    j->kind = kind;
    j->n = n;
    j->chunksize = chunksize;
    j->nchunks = chunksize > 0 ? n / chunksize + (n % chunksize != 0) : 0;
    j->left = j->nchunks;
    j->ok = true;
    if (cb != NULL)
        j->cb = *cb;
    atomic_init(&j->refs, 1);
    if ((n > 0 && (j->values = calloc(n, sizeof(*j->values))) == NULL) ||
        (j->nchunks > 0 && (j->done = calloc(j->nchunks, 1)) == NULL) ||
        (kind == MP__JOB_IMAP_UNORDERED && j->nchunks > 0 &&
         (j->order = calloc(j->nchunks, sizeof(*j->order))) == NULL)) {
        free(j->values);
        free(j->done);
        free(j);
        return NULL;
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    return j;
}

void mp__job_unref(struct mp_result *j)
{
    if (j == NULL || atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    while (j->arena != NULL) {
        struct mp__arena *next = j->arena->next;
        free(j->arena);
        j->arena = next;
    }
    for (size_t c = 0; j->errs != NULL && c < j->nchunks; c++) {
        err_free(j->errs[c]);
        free(j->errs[c]);
    }
    err_free(&j->err);
    free(j->errs);
    free(j->order);
    free(j->values);
    free(j->done);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
}

static void set_ready(struct mp_result *j)
{
    pthread_mutex_lock(&j->lock);
    atomic_store(&j->ready, true);
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

void mp__job_ready_now(struct mp_result *j)
{
    atomic_store(&j->complete, true);
    set_ready(j);
}

/* the table of pending jobs, by id (with p->lock held) */

static size_t bucket(const mp_pool *p, uint64_t id)
{
    return (size_t)(id * 0x9e3779b97f4a7c15ULL >> 20) & (p->tcap - 1);
}

int mp__table_insert(mp_pool *p, struct mp_result *j)
{
    if (p->pending >= p->tcap) { /* grow: rehash into twice the buckets */
        size_t cap = p->tcap * 2, old = p->tcap;
        struct mp_result **t = calloc(cap, sizeof(*t)), **from = p->table;
        if (t == NULL)
            return -ENOMEM;
        p->table = t;
        p->tcap = cap;
        for (size_t i = 0; i < old; i++)
            for (struct mp_result *e = from[i], *next; e != NULL; e = next) {
                next = e->hnext;
                e->hnext = t[bucket(p, e->id)];
                t[bucket(p, e->id)] = e;
            }
        free(from);
    }
    j->id = ++p->next_job;
    j->hnext = p->table[bucket(p, j->id)];
    p->table[bucket(p, j->id)] = j;
    return 0;
}

static struct mp_result *table_find(mp_pool *p, uint64_t id)
{
    struct mp_result *j;

    pthread_mutex_lock(&p->lock);
    for (j = p->table[bucket(p, id)]; j != NULL && j->id != id; j = j->hnext)
        ;
    pthread_mutex_unlock(&p->lock);
    return j;
}

static void table_remove(mp_pool *p, struct mp_result *j)
{
    for (struct mp_result **e = &p->table[bucket(p, j->id)]; *e != NULL;
         e = &(*e)->hnext)
        if (*e == j) {
            *e = j->hnext;
            return;
        }
}

/* completing */

/* The job's callbacks (not an imap's: it has none), then ready, then out
 * of the pool's table (a closed pool's workers stop once it is empty). */
static void complete(mp_pool *p, struct mp_result *j, bool callbacks)
{
    atomic_store_explicit(&j->complete, true, memory_order_release);
    if (callbacks && j->ok && j->cb.callback != NULL)
        j->cb.callback(j, j->cb.arg);
    if (callbacks && !j->ok && j->cb.error_callback != NULL) {
        if (j->err.err == MP_ERAISED)
            mp__set_raised(j->err.exc, j->err.msg);
        j->cb.error_callback(j, j->err.err, j->cb.arg);
    }
    set_ready(j);
    pthread_mutex_lock(&p->lock);
    table_remove(p, j);
    if (--p->pending == 0 && p->state == MP__POOL_CLOSE)
        mp__pool_wake(p);
    pthread_mutex_unlock(&p->lock);
    if (p->last == j)
        p->last = NULL;
    mp__job_unref(j); /* the pool's */
}

/* A chunk's failure: the code and, for MP_ERAISED, the exception. */
static int read_error(const struct mp__res_hdr *h, struct mp__in *in,
                      struct mp__pool_err *e)
{
    e->err = h->err < 0 ? h->err : -EPROTO;
    e->exc = e->msg = NULL;
    if (e->err == MP_ERAISED) {
        e->exc = mp__get_str(in, 63, NULL);
        e->msg = mp__get_str(in, 511, NULL);
        if (e->exc == NULL || e->msg == NULL) {
            err_free(e);
            e->exc = e->msg = NULL;
            e->err = -EPROTO;
        }
    }
    return e->err;
}

/* Copies a chunk's values in: false when they are not what it holds. */
static bool read_values(struct mp_result *j, size_t lo, size_t count,
                        const struct mp__res_hdr *h, struct mp__in *in)
{
    if (h->n != count)
        return false;
    for (size_t i = 0; i < count; i++) {
        mp_arg v;
        char *copy;

        if (!mp__res_next_value(in, &v))
            return false;
        if (v.type == MP_ARG_STR || v.type == MP_ARG_BYTES) {
            if ((copy = arena_alloc(&j->arena, v.u.b.len + 1)) == NULL)
                return false;
            memcpy(copy, v.u.b.buf, v.u.b.len);
            copy[v.u.b.len] = '\0';
            if (v.type == MP_ARG_STR)
                v.u.s = copy;
            else
                v.u.b.buf = copy;
        }
        j->values[lo + i] = v;
    }
    return in->left == 0;
}

/* An imap chunk's failure, kept for the iterator (j->lock held).  false
 * without memory: the chunk then counts as done with no error (its
 * values None), rather than never. */
static bool keep_chunk_error(struct mp_result *j, size_t c,
                             const struct mp__pool_err *e)
{
    if (j->errs == NULL &&
        (j->errs = calloc(j->nchunks, sizeof(*j->errs))) == NULL)
        return false;
    if ((j->errs[c] = malloc(sizeof(*e))) == NULL)
        return false;
    *j->errs[c] = *e;
    return true;
}

/* A chunk's result, into its job (CPython's _set()). */
static void dispatch(mp_pool *p, const struct mp__res_hdr *h,
                     struct mp__in *in, bool callbacks)
{
    struct mp_result *j = p->last;
    struct mp__pool_err e = { 0 };
    size_t lo, count;

    if (j == NULL || j->id != h->job)
        j = p->last = table_find(p, h->job);
    if (j == NULL || h->chunk >= j->nchunks || j->done[h->chunk]) {
        atomic_fetch_add_explicit(&duplicates, 1, memory_order_relaxed);
        return;
    }
    lo = (size_t)h->chunk * j->chunksize;
    count = j->n - lo < j->chunksize ? j->n - lo : j->chunksize;
    if (h->kind != MP__RES_OK)
        read_error(h, in, &e);
    else if (!read_values(j, lo, count, h, in))
        e.err = -EPROTO;
    if (j->kind <= MP__JOB_MAP) {
        if (e.err != 0 && j->ok) {
            j->ok = false; /* CPython keeps the first failure that comes */
            j->err = e;
        } else if (e.err != 0) {
            err_free(&e);
        }
        j->done[h->chunk] = 1;
        --j->left;
    } else {
        pthread_mutex_lock(&j->lock); /* the iterator reads as it goes */
        if (e.err != 0 && !keep_chunk_error(j, (size_t)h->chunk, &e))
            err_free(&e);
        j->done[h->chunk] = 1;
        if (j->order != NULL)
            j->order[j->narrived++] = (size_t)h->chunk;
        if (--j->left == 0)
            atomic_store(&j->complete, true);
        if (j->sleepers > 0)
            pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->lock);
    }
    if (j->left == 0)
        complete(p, j, callbacks);
}

void mp__jobs_fail_all(mp_pool *p, int err)
{
    struct mp__res_hdr h = { MP__RES_ERR, err, 0, 0, 0 };

    for (;;) {
        struct mp_result *j = NULL;

        /* A job complete already has its callbacks running (terminate()
         * from one of them): the result thread finishes it. */
        pthread_mutex_lock(&p->lock);
        for (size_t i = 0; j == NULL && i < p->tcap; i++)
            for (j = p->table[i]; j != NULL && atomic_load(&j->complete);
                 j = j->hnext)
                ;
        pthread_mutex_unlock(&p->lock);
        if (j == NULL)
            return;
        h.job = j->id;
        for (size_t c = 0; c < j->nchunks; c++) {
            struct mp__in none = { "", 0, false };
            bool last = j->left == 1;

            if (j->done[c])
                continue;
            h.chunk = c;
            p->last = j;
            dispatch(p, &h, &none, false);
            if (last)
                break; /* complete, and maybe freed */
        }
    }
}

void mp__job_post_error(mp_pool *p, uint64_t job, size_t from, size_t to,
                        int err)
{
    struct mp__res_hdr h = { MP__RES_ERR, err, job, 0, 0 };

    for (size_t c = from; c < to; c++) {
        h.chunk = c;
        mp_queue_put(p->results, &h, sizeof(h), 1, MP_FOREVER);
    }
}

void mp__jobs_post_error_all(mp_pool *p, int err)
{
    uint64_t after = 0;

    /* Job ids grow: each pass takes the pending job next after the last
     * one posted, and posts with p->lock let go (the result thread takes
     * it).  A chunk whose result came first drops the error; a job freed
     * since drops them all. */
    for (;;) {
        uint64_t id = UINT64_MAX;
        size_t nchunks = 0;

        pthread_mutex_lock(&p->lock);
        for (size_t i = 0; i < p->tcap; i++)
            for (struct mp_result *j = p->table[i]; j != NULL; j = j->hnext)
                if (j->id > after && j->id < id) {
                    id = j->id;
                    nchunks = j->nchunks;
                }
        pthread_mutex_unlock(&p->lock);
        if (id == UINT64_MAX)
            return;
        mp__job_post_error(p, id, 0, nchunks, err);
        after = id;
    }
}

/* the result thread */

/* The pool whose result thread this is (a pthread_t can be reused once
 * joined; this cannot name a thread that is not one). */
static _Thread_local const mp_pool *result_thread_of;

bool mp__in_result_thread(const mp_pool *p)
{
    return result_thread_of == p;
}

/* Results taken from the queue at once, at most (one lock, one commit). */
#define RESULTS_AT_ONCE 64

static void *result_main(void *arg)
{
    mp_pool *p = arg;
    size_t lens[RESULTS_AT_ONCE], count = 0;
    bool stop = false;
    int r = 0;

    result_thread_of = p;
    p->rcap = 4096;
    p->rbuf = malloc(p->rcap);
    while (p->rbuf != NULL && !stop && !atomic_load(&p->result_stop)) {
        const char *at = p->rbuf;

        r = mp__queue_get_many(p->results, p->rbuf, p->rcap, lens,
                               RESULTS_AT_ONCE, &count);
#ifdef MP_TEST_HOOKS
        if (r == 0 && __atomic_load_n(&mp__pool_results_break,
                                      __ATOMIC_RELAXED) < 0)
            r = __atomic_exchange_n(&mp__pool_results_break, 0,
                                    __ATOMIC_RELAXED);
#endif
        if (r == MP_ETOOSHORT) {
            char *grown = realloc(p->rbuf, lens[0]);
            if (grown == NULL) {
                r = -ENOMEM;
                break;
            }
            p->rbuf = grown;
            p->rcap = lens[0];
            continue;
        }
        if (r < 0)
            break;
        for (size_t i = 0; i < count && !stop; at += lens[i++]) {
            struct mp__res_hdr h;
            struct mp__in in;

            if (mp__res_parse(at, lens[i], &h, &in) < 0)
                continue; /* not a result: no job can be named */
            if (h.kind == MP__RES_STOP)
                stop = true; /* nothing is put after it */
            else
                dispatch(p, &h, &in, true);
            /* terminate() from a callback: the rest of the batch is
             * failed by mp__jobs_fail_all() as if still in the queue */
            if (atomic_load(&p->result_stop))
                break;
        }
    }
    if (p->rbuf == NULL || r < 0) {
        /* No result can come: none is waited for, and no job is made
         * (submit() looks under p->lock, before jobs_fail_all's scan). */
        pthread_mutex_lock(&p->lock);
        p->broken = p->rbuf == NULL ? -ENOMEM : r;
        pthread_mutex_unlock(&p->lock);
        mp__jobs_fail_all(p, p->rbuf == NULL ? -ENOMEM : r);
    }
    return NULL;
}

int mp__results_start(mp_pool *p)
{
    int r = pthread_create(&p->resulter, NULL, result_main, p);

    if (r != 0)
        return -r;
    p->has_resulter = true;
    return 0;
}

void mp__results_stop(mp_pool *p)
{
    struct mp__res_hdr h = { MP__RES_STOP, 0, 0, 0, 0 };

    if (!p->has_resulter)
        return;
    if (pthread_equal(pthread_self(), p->resulter)) {
        /* terminate() from a callback: the thread ends after it */
        atomic_store(&p->result_stop, true);
        return;
    }
    if (!atomic_load(&p->result_stop))
        mp_queue_put(p->results, &h, sizeof(h), 1, MP_FOREVER);
    pthread_join(p->resulter, NULL);
    p->has_resulter = false;
}

/* waiting */

/* A timeout as an absolute CLOCK_MONOTONIC deadline (INFINITY: none; 0:
 * do not wait). */
static double deadline_of(double timeout)
{
    if (!(timeout > 0))
        return 0;
    if (timeout >= 1e9)
        return INFINITY;
    return mp__now() + timeout;
}

/* Sleeps on j->cond (j->lock held) until woken or the deadline: false
 * once it has passed. */
static bool sleep_until(struct mp_result *j, double deadline)
{
    struct timespec ts;
    int r;

    if (isinf(deadline)) {
        j->sleepers++;
        pthread_cond_wait(&j->cond, &j->lock);
        j->sleepers--;
        return true;
    }
    if (mp__now() >= deadline)
        return false;
    ts.tv_sec = (time_t)deadline;
    ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
    j->sleepers++;
    r = pthread_cond_timedwait(&j->cond, &j->lock, &ts);
    j->sleepers--;
    return r != ETIMEDOUT || mp__now() < deadline;
}

/* A result whose pool is a copy from before a fork: nothing fills it. */
static bool orphaned(const struct mp_result *j)
{
    return j->gen != mp__pool_gen() && !atomic_load(&j->ready);
}

int mp_result_wait(mp_result *r, double timeout)
{
    double deadline;

    if (r == NULL || isnan(timeout))
        return MP_EINVAL;
    if (atomic_load_explicit(&r->ready, memory_order_acquire))
        return 1;
    if (orphaned(r))
        return MP_EPOOLNOTRUNNING;
    deadline = deadline_of(timeout);
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->ready) && sleep_until(r, deadline))
        ;
    pthread_mutex_unlock(&r->lock);
    return atomic_load(&r->ready) ? 1 : 0;
}

static int raise_err(const struct mp__pool_err *e)
{
    if (e->err == MP_ERAISED)
        return mp__set_raised(e->exc, e->msg);
    return e->err;
}

int mp_result_get(mp_result *r, double timeout)
{
    int w = mp_result_wait(r, timeout);

    if (w < 0)
        return w;
    if (w == 0)
        return MP_ERESULTTIMEOUT;
    return r->ok ? 0 : raise_err(&r->err);
}

int mp_result_ready(mp_result *r)
{
    if (r == NULL)
        return MP_EINVAL;
    return atomic_load(&r->ready) ? 1 : 0;
}

int mp_result_successful(mp_result *r)
{
    if (r == NULL)
        return MP_EINVAL;
    if (!atomic_load(&r->ready))
        return mp_raise("ValueError", "<multiprocessing.pool.%s object at "
                        "%p> not ready",
                        r->kind == MP__JOB_APPLY ? "ApplyResult"
                                                 : "MapResult",
                        (void *)r);
    return r->ok ? 1 : 0;
}

/* The values are readable once complete: from the callbacks on. */
static bool has_values(const mp_result *r)
{
    return r != NULL && r->kind <= MP__JOB_MAP &&
           atomic_load_explicit(&r->complete, memory_order_acquire) && r->ok;
}

size_t mp_result_len(const mp_result *r)
{
    return has_values(r) ? r->n : 0;
}

const mp_arg *mp_result_value(const mp_result *r, size_t i)
{
    return has_values(r) && i < r->n ? &r->values[i] : NULL;
}

mp_result *mp_result_free(mp_result *r)
{
    mp__job_unref(r);
    return NULL;
}

/* imap */

/*
 * The next item, with it->r.lock held: 1 and *value, 0 at the end, an
 * item's error, or -EAGAIN when it has not come.  A chunk that failed
 * gives its error once, at its first item; with chunksize 1 the
 * iteration goes on with the next item, as CPython's IMapIterator;
 * with a larger chunksize it ends there, as the generator CPython returns
 * then ((item for chunk in result for item in chunk)) ends when it raises.
 */
static bool position_sane(const struct mp_result *j)
{
    if (j->kind == MP__JOB_IMAP)
        return j->next <= j->n;
    if (j->taken > j->narrived || j->narrived > j->nchunks)
        return false;
    return j->taken == j->narrived ||
           (j->order[j->taken] < j->nchunks && j->sub < j->chunksize &&
            j->order[j->taken] * j->chunksize + j->sub < j->n);
}

static int imap_take(struct mp_result *j, const mp_arg **value)
{
    size_t c;

    if (j->ended)
        return 0;
    if (j->kind == MP__JOB_IMAP) {
        if (j->next >= j->n)
            return 0;
        c = j->next / j->chunksize;
        if (!j->done[c])
            return -EAGAIN;
        if (j->errs != NULL && j->errs[c] != NULL) {
            j->next = (c + 1) * j->chunksize;
            j->ended = j->chunksize > 1;
            return raise_err(j->errs[c]);
        }
        *value = &j->values[j->next++];
        return 1;
    }
    /* unordered: the chunks as they came, each item of one in turn */
    if (j->sub == 0) {
        if (j->taken == j->nchunks)
            return 0;
        if (j->taken == j->narrived)
            return -EAGAIN;
        c = j->order[j->taken];
        if (j->errs != NULL && j->errs[c] != NULL) {
            j->taken++;
            j->ended = j->chunksize > 1;
            return raise_err(j->errs[c]);
        }
    }
    c = j->order[j->taken];
    *value = &j->values[c * j->chunksize + j->sub];
    if (++j->sub == j->chunksize ||
        c * j->chunksize + j->sub == j->n) {
        j->sub = 0;
        j->taken++;
    }
    return 1;
}

int mp_imap_next(mp_imap *it, double timeout, const mp_arg **value)
{
    struct mp_result *j = it != NULL ? &it->r : NULL;
    const mp_arg *v = NULL;
    double deadline;
    int r;

    if (j == NULL || value == NULL || isnan(timeout))
        return MP_EINVAL;
    *value = NULL;
    if (j->gen != mp__pool_gen()) {
        /* A fork child's copy: no lock (one copied held would stay held),
         * and only a job complete at the fork, whose items no thread
         * writes, gives them.  The reading position may have been
         * half-moved by a thread of the parent at the fork. */
        if (!atomic_load_explicit(&j->ready, memory_order_acquire) ||
            !position_sane(j))
            return MP_EPOOLNOTRUNNING;
        if ((r = imap_take(j, &v)) == -EAGAIN)
            r = MP_EPOOLNOTRUNNING;
        *value = v;
        return r;
    }
    deadline = deadline_of(timeout);
    pthread_mutex_lock(&j->lock);
    while ((r = imap_take(j, &v)) == -EAGAIN) {
        if (orphaned(j)) {
            r = MP_EPOOLNOTRUNNING;
            break;
        }
        if (!sleep_until(j, deadline)) {
            r = MP_ERESULTTIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&j->lock);
    *value = v;
    return r;
}

#ifdef MP_TEST_HOOKS
pthread_mutex_t *mp__imap_mutex(mp_imap *it)
{
    return &it->r.lock;
}
#endif

mp_imap *mp_imap_free(mp_imap *it)
{
    if (it != NULL)
        mp__job_unref(&it->r);
    return NULL;
}
