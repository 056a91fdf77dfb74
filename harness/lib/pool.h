/*
 * pool.h - what the pool's files share: the pool (pool.c), its
 * submissions (pool_submit.c), the workers and their watcher
 * (pool_watch.c), the results (pool_result.c), the worker's loop
 * (pool_worker.c) and the messages between them (pool_msg.c).  CPython:
 * Lib/multiprocessing/pool.py.  Not installed.
 */
#ifndef MP_POOL_H
#define MP_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "live.h"

struct pollfd;

/*
 * The page the pool shares with its workers (a memfd): one slot per
 * worker, on cache lines of its own, where the worker notes the task it
 * took (with the task queue's consumers' side held, before the take is
 * committed) and clears it once the task's result is put.  The watcher
 * reads the slot of a worker that died.  Every value in it is checked
 * before use: a worker may have written anything.
 */
#define MP__POOL_MAGIC 0x6c6f6f5070626c69ULL /* "libpPool" */
struct mp__pool_slot {
    _Atomic uint64_t task; /* the task's id, 0: none */
    _Atomic uint64_t job, chunk;
    _Atomic uint64_t pos;  /* where the task's record starts in the queue */
    char pad[128 - 4 * sizeof(uint64_t)];
};
struct mp__pool_page {
    _Atomic uint64_t magic;
    uint64_t nslots;
    /* Not 0: the workers exit rather than wait for a task (a closed pool
     * with no work left: one store and one wake-up stop them all). */
    _Atomic uint32_t stop;
    char pad[128 - 2 * sizeof(uint64_t) - sizeof(uint32_t)];
    struct mp__pool_slot slot[];
};

/* What a worker is told in its blob; its typed arguments are the
 * initargs, then the task queue, the result queue and the page. */
struct mp__pool_blob {
    uint64_t magic;
    uint32_t slot, nslots;
    int64_t maxtasks;      /* 0: None */
    uint64_t ninit;        /* the initargs */
    uint32_t check_parent; /* the OS parent is the pool's process */
    uint32_t pad;
    /* Else the pool's process, for the worker to watch (start 0: not
     * known, not watched). */
    struct mp__thread_id owner;
    char initializer[MP_TARGET_NAME_MAX + 1]; /* "": none */
};
#define MP__POOL_WORKER "libmp.pool_worker"
extern const mp_target mp__pool_worker_target;

/*
 * Messages.  A task: this header, the target's name, then each item: a
 * 64-bit length and the item's arguments (args.c's encoding).  A result:
 * its header, then for RES_OK n
 * values (a 64-bit type, then a 64-bit int or float, or a string: a
 * 64-bit length and the bytes), for RES_ERR with MP_ERAISED the
 * exception's name and message as strings.
 */
struct mp__task_hdr {
    uint64_t tid, job, chunk;
    uint32_t nitems, namelen;
};
enum { MP__RES_OK = 1, MP__RES_ERR = 2, MP__RES_STOP = 3 };
struct mp__res_hdr {
    uint32_t kind;
    int32_t err;
    uint64_t job, chunk, n;
};

/* pool_msg.c: a task is appended to o (several make a batch). */
void mp__task_begin(struct mp__out *o, uint64_t tid, uint64_t job,
                    uint64_t chunk, uint32_t nitems, const char *name,
                    size_t namelen);
void mp__task_item(struct mp__out *o, const mp_arg *v, size_t n);
/* A task as read by a worker: -EPROTO if its header or name is not
 * whole; then each item's bytes in turn (-EPROTO past them).  The name is
 * the message's bytes, h.namelen of them, not terminated (a worker
 * compares them with the name it looked up last). */
struct mp__task {
    struct mp__task_hdr h;
    const char *name;
    struct mp__in items;
};
int mp__task_parse(const void *msg, size_t len, struct mp__task *t);
int mp__task_next(struct mp__task *t, const char **item, size_t *n);
void mp__res_begin(struct mp__out *o, uint32_t kind, int err, uint64_t job,
                   uint64_t chunk);
void mp__res_value(struct mp__out *o, const mp_arg *v);
/* Sets the header's count of values. */
void mp__res_end(struct mp__out *o, uint64_t n);
/* An RES_ERR of err, with this thread's exception for MP_ERAISED. */
void mp__res_error(struct mp__out *o, int err, uint64_t job, uint64_t chunk);
int mp__res_parse(const void *msg, size_t len, struct mp__res_hdr *h,
                  struct mp__in *body);
/* The next value of an RES_OK body: its string's bytes point into the
 * message.  false when malformed. */
bool mp__res_next_value(struct mp__in *in, mp_arg *v);

/* A failure: the code, and for MP_ERAISED the exception (malloc'd). */
struct mp__pool_err {
    int err;
    char *exc, *msg;
};

enum { MP__JOB_APPLY, MP__JOB_MAP, MP__JOB_IMAP, MP__JOB_IMAP_UNORDERED };

/* Where a job's strings and bytes are kept. */
struct mp__arena;

/*
 * A job: what mp_result and mp_imap are.  The caller holds a reference,
 * and the pool one while the job is pending.  The result thread alone
 * writes what its results bring (left, done, values, the failures) until
 * the job is complete; an imap's iterator reads them with `lock` held,
 * which the result thread takes to publish each chunk; an AsyncResult's
 * are read once it is complete (`complete`, an acquire).  Callbacks run
 * between `complete` and `ready`.
 */
struct mp_result {
    _Atomic int refs;
    int kind;
    uint64_t id;
    unsigned gen; /* the pool's process's fork generation */
    struct mp_result *hnext; /* the pool's table, while pending */
    size_t n, chunksize, nchunks, left;
    unsigned char *done; /* per chunk */
    mp_arg *values;      /* n */
    struct mp__arena *arena;
    bool ok;                   /* apply, map: no failure yet */
    struct mp__pool_err err;   /* apply, map: the first failure */
    struct mp__pool_err **errs; /* imap: per chunk, made on a failure */
    size_t *order, narrived;   /* imap_unordered: chunks as they came */
    size_t next, taken, sub;   /* imap: the iterator's place */
    bool ended;
    mp_pool_callbacks cb;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    _Atomic bool complete, ready;
    int sleepers;
};
struct mp_imap {
    struct mp_result r;
};

enum { MP__POOL_RUN, MP__POOL_CLOSE, MP__POOL_TERMINATE };

struct mp__worker {
    mp_process *proc; /* NULL: none in this slot */
    int sentinel;
    double retry_at;  /* a start that failed is tried again then */
};

struct mp_pool {
    pthread_mutex_t lock; /* state, table, pending, finished, watch_stop */
    pthread_cond_t cond;  /* finished, the first workers started */
    int state;
    bool finished;      /* after close: every worker gone; terminate done */
    bool watch_stop;    /* the watcher ends */
    bool started;       /* the watcher started the first workers */
    int start_err;
    unsigned gen;
    int processes;
    long maxtasks;
    mp_context *ctx;
    bool check_parent;
    struct mp__thread_id owner; /* the blob's */
    char initializer[MP_TARGET_NAME_MAX + 1];
    /* The workers' arguments, encoded once, their handles referenced. */
    char *wargs;
    size_t wargs_len, ninit, nwh;
    mp_conn *whandles[MP__MAX_HANDLES];
    mp_queue *tasks, *results;
    mp_conn *page_handle;
    struct mp__pool_page *page;
    size_t page_len;
    /* The watcher's: the workers, their number, whether they were told to
     * stop. */
    struct mp__worker *workers;
    size_t live;
    bool stopping;
    int efd; /* wakes the watcher */
    /* The threads' buffers, here so that a fork child's copy frees them
     * too: the watcher's poll list, the result thread's message. */
    struct pollfd *wfds;
    size_t *wslot;
    char *rbuf;
    size_t rcap;
    pthread_t watcher, resulter;
    bool has_watcher, has_resulter;
    _Atomic bool result_stop; /* terminate() from a callback */
    int broken; /* the error that ended the result thread (p->lock) */
    /* Pending jobs by id (a chained table), and how many. */
    struct mp_result **table;
    size_t tcap, pending;
    uint64_t next_job;
    _Atomic uint64_t next_tid;
    struct mp_result *last; /* the result thread's last job */
    struct mp_pool *next_pool; /* pool.c's list, for the exit */
};

/* pool.c */
unsigned mp__pool_gen(void);
/* A copy from before a fork: none of its calls may act. */
bool mp__pool_foreign(const mp_pool *p);
/* Wakes the watcher. */
void mp__pool_wake(mp_pool *p);

/* pool_watch.c: the watcher thread, which starts the first workers (its
 * start reports how that went), replaces the dead and stops the workers
 * after close() (the page's stop); and stopping the workers for
 * terminate(). */
int mp__watch_start(mp_pool *p);
void mp__watch_stop(mp_pool *p);
void mp__workers_stop(mp_pool *p);

/* pool_result.c */
struct mp_result *mp__job_new(int kind, size_t n, size_t chunksize,
                              const mp_pool_callbacks *cb);
void mp__job_unref(struct mp_result *j);
/* Completes a job of no task: n None values, ready, no callback. */
void mp__job_ready_now(struct mp_result *j);
/* With p->lock held. */
int mp__table_insert(mp_pool *p, struct mp_result *j);
/* Fails every chunk not yet in of every pending job (terminate(), a
 * result queue that broke) and completes them, without callbacks. */
void mp__jobs_fail_all(mp_pool *p, int err);
/* Posts an RES_ERR of err for chunks [from, to) of a job, through the
 * result queue (a submission whose put failed). */
void mp__job_post_error(mp_pool *p, uint64_t job, size_t from, size_t to,
                        int err);
/* Posts an RES_ERR of err, through the result queue, for every chunk of
 * every pending job (the watcher ending on an error). */
void mp__jobs_post_error_all(mp_pool *p, int err);
int mp__results_start(mp_pool *p);
/* Whether the calling thread is p's result thread (a callback runs). */
bool mp__in_result_thread(const mp_pool *p);
void mp__results_stop(mp_pool *p);

/* pool_worker.c: the fork child's reset of a task's state. */
void mp__pool_task_forked(void);

#endif /* MP_POOL_H */
