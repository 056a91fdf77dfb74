/*
 * process.c - process objects, the registry of children, names, the current
 * and parent process, and the teardown at exit (CPython: process.py and
 * util._exit_function).
 *
 * Every public call checks its preconditions in the order CPython's method
 * does, so the same misuse gives the same error.  The start method behind a
 * process (struct mp_start_ops) does the launching, waiting and signalling;
 * everything else is here, once.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "pyrepr.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static bool spawned_child;       /* a fresh program run by spawn */
static mp_process *children;     /* CPython's _children */
static unsigned reg_gen;         /* see struct mp_process */
/* A fork child's copies of its ancestors' registries, the list of
 * generation g in [g]: never read, but kept reachable, as the objects the
 * program holds are, for a leak checker (volatile, or the compiler drops
 * stores that nothing reads).  Past the last slot, it keeps the parent's
 * list only. */
static mp_process *volatile inherited[16];
/* Every global a start() or a fork child writes is zero-initialised, so
 * that all of them share the pages of .bss: each page written after a
 * fork() costs the writer a page fault (copy-on-write), in the parent and
 * in the child alike. */
static unsigned counted;         /* CPython's _process_counter, less one */
static int death_signal;
static bool exiting;             /* CPython's util._exiting */

static mp_process main_process = {
    .refs = 1,
    .kind = MP__KIND_MAIN,
    .ops = &mp__start_fork,
    .type_name = "_MainProcess",
    .name = (char[]){ "MainProcess" },
    .wait_lock = PTHREAD_MUTEX_INITIALIZER,
    .pidfd = -1,
    .sentinel = -1,
    .parent_w = -1,
};
static mp_process parent_storage;
static mp_process *current_child; /* NULL: the main process */
static mp_process *parent;

static void exit_function(void);
static void main_exit(void);

static mp_process *current_process(void)
{
    return current_child != NULL ? current_child : &main_process;
}

static void init_once(void);

/* mp_atexit()'s handlers (this process's own: a child starts empty). */
static struct { void (*fn)(void *); void *arg; } *handlers;
static size_t nhandlers, caphandlers;

int mp_atexit(void (*fn)(void *), void *arg)
{
    if (fn == NULL)
        return MP_EINVAL;
    init_once();
    pthread_mutex_lock(&reg_lock);
    if (nhandlers == caphandlers) {
        size_t c = caphandlers ? caphandlers * 2 : 8;
        void *grown = realloc(handlers, c * sizeof(*handlers));
        if (grown == NULL) {
            pthread_mutex_unlock(&reg_lock);
            return -ENOMEM;
        }
        handlers = grown;
        caphandlers = c;
    }
    handlers[nhandlers].fn = fn;
    handlers[nhandlers++].arg = arg;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

/* Last registered first, as atexit's; each runs once. */
static void run_handlers(void)
{
    for (;;) {
        void (*fn)(void *);
        void *arg;

        pthread_mutex_lock(&reg_lock);
        if (nhandlers == 0) {
            pthread_mutex_unlock(&reg_lock);
            break;
        }
        nhandlers--;
        fn = handlers[nhandlers].fn;
        arg = handlers[nhandlers].arg;
        pthread_mutex_unlock(&reg_lock);
        fn(arg);
    }
    free(handlers);
    handlers = NULL;
    caphandlers = 0;
}

/* reg_lock, then the parent object's wait_lock (a child's threads share
 * it: parent_sentinel()), held across fork() so that no child inherits
 * either held by a thread it does not have. */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&reg_lock);
    if (parent != NULL)
        pthread_mutex_lock(&parent->wait_lock);
}

static void atfork_release(void)
{
    if (parent != NULL)
        pthread_mutex_unlock(&parent->wait_lock);
    pthread_mutex_unlock(&reg_lock);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static void atfork_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, register_atfork);
}

static void init(void)
{
    atfork_once();
    atexit(main_exit);
}

static void init_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, init);
}

/* references */

/* A name set_name() gave; it lives as long as its object. */
struct mp__name {
    struct mp__name *next;
    char s[];
};

mp_process *mp__process_ref(mp_process *p)
{
    if (p->kind == MP__KIND_CHILD)
        __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

static void unref(mp_process *p)
{
    if (p->kind != MP__KIND_CHILD ||
        __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    p->ops->close(p);
    pthread_mutex_destroy(&p->wait_lock);
    free(p->name_buf);
    for (struct mp__name *n = p->names, *next; n != NULL; n = next) {
        next = n->next;
        free(n);
    }
    free(p->identity);
    free(p->parent_name);
    free(p->arg);
    free(p->targs);
    mp__args_free(p->args_view);
    mp__process_release_conns(p);
    mp__options_free(p);
    free(p->cwd);
    free(p);
}

mp_process *mp_process_free(mp_process *p)
{
    if (p != NULL)
        unref(p);
    return NULL;
}

/* state other threads may change (see struct mp_process) */

static bool is_started(const mp_process *p)
{
    return __atomic_load_n(&p->started, __ATOMIC_ACQUIRE);
}

static bool is_closed(const mp_process *p)
{
    return __atomic_load_n(&p->closed, __ATOMIC_ACQUIRE);
}

static bool has_code(mp_process *p)
{
    return __atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE);
}

/* Holds p's descriptors for one call (wait, signal): MP_ECLOSED once
 * another thread has closed p.  close() leaves them to the last holder,
 * so no call ever uses a number that now names another file. */
static int fds_get(mp_process *p)
{
    int r = 0;

    pthread_mutex_lock(&reg_lock);
    if (p->closed)
        r = MP_ECLOSED;
    else
        p->users++;
    pthread_mutex_unlock(&reg_lock);
    return r;
}

static void fds_put(mp_process *p)
{
    bool last = false;

    pthread_mutex_lock(&reg_lock);
    if (--p->users == 0 && p->release) {
        p->release = false;
        p->ops->close(p);
        last = true;
    }
    pthread_mutex_unlock(&reg_lock);
    /* Not under reg_lock: options.c's lock is taken across fork() too. */
    if (last)
        mp__options_close(p);
}

int mp__process_hold(mp_process *p)
{
    return fds_get(p);
}

void mp__process_unhold(mp_process *p)
{
    fds_put(p);
}

static int process_wait(mp_process *p, double timeout)
{
    int r = fds_get(p);

    if (r < 0)
        return r;
    r = p->ops->wait(p, timeout);
    fds_put(p);
    return r;
}

/* the registry of children */

/* With reg_lock held. */
static void registry_link(mp_process *p)
{
    mp__process_ref(p);
    p->registered = true;
    p->reg_gen = reg_gen;
    p->prev = NULL;
    p->next = children;
    if (children != NULL)
        children->prev = p;
    children = p;
}

/* Returns whether p was registered; the caller then drops its reference. */
static bool registry_unlink(mp_process *p)
{
    if (!p->registered || p->reg_gen != reg_gen)
        return false; /* never linked, or in a parent's abandoned list */
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        children = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->registered = false;
    return true;
}

static void registry_remove(mp_process *p)
{
    bool was;

    pthread_mutex_lock(&reg_lock);
    was = registry_unlink(p);
    pthread_mutex_unlock(&reg_lock);
    if (was)
        unref(p);
}

/* Whether some child of this process may have ended unreaped.  One
 * waitid() that reaps nothing answers for every fork and spawn child at
 * once, where polling each would make a start cost one system call per
 * live child (N starts, N^2 / 2 calls).  An error (ECHILD: children
 * reaped behind libmp's back) answers yes, so each child is asked. */
static bool some_child_ended(void)
{
    siginfo_t si;
    int r;

    si.si_pid = 0;
    do
        r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT | __WALL);
    while (r < 0 && errno == EINTR);
    return r < 0 || si.si_pid != 0;
}

/* CPython's _cleanup(): forget (reap) the children that have finished. */
static void cleanup(void)
{
    mp_process *done = NULL, *p, *next;
    pid_t self = getpid();
    bool ended = some_child_ended();

    mp__forkserver_reap(); /* a server that was killed, say */
    pthread_mutex_lock(&reg_lock);
    for (p = children; p != NULL; p = next) {
        next = p->next;
        if (p->parent_pid != self)
            continue;
        /* A fork or spawn child still running is a live process that no
         * thread has reaped: nothing to ask it. */
        if (!ended && p->ops->wait == mp__fork_wait &&
            !__atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE))
            continue;
        if (p->ops->wait(p, 0) == 1) {
            registry_unlink(p);
            p->next = done; /* unref outside the lock */
            done = p;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    for (p = done; p != NULL; p = next) {
        next = p->next;
        p->next = NULL;
        unref(p);
    }
}

int mp_active_children(mp_process ***out, size_t *n)
{
    mp_process **list, *p;
    pid_t self = getpid();
    size_t count = 0, i = 0;

    if (out == NULL || n == NULL)
        return MP_EINVAL;
    init_once(); /* reg_lock's fork handlers, before it is first taken */
    cleanup();
    pthread_mutex_lock(&reg_lock);
    for (p = children; p != NULL; p = p->next)
        count += p->parent_pid == self;
    list = calloc(count + 1, sizeof(*list));
    if (list == NULL) {
        pthread_mutex_unlock(&reg_lock);
        return -ENOMEM;
    }
    for (p = children; p != NULL; p = p->next)
        if (p->parent_pid == self)
            list[i++] = mp__process_ref(p);
    pthread_mutex_unlock(&reg_lock);
    *out = list;
    *n = count;
    return 0;
}

void mp_process_list_free(mp_process **list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        mp_process_free(list[i]);
    free(list);
}

/* The main process's ending, by exit() or by mp_handle_sigint()'s SIGINT:
 * whichever comes first runs it, the other waits for ever (the first ends
 * the process).  `ending` tells the SIGINT handler that it has begun. */
static pthread_mutex_t ending_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool ending;

/* mp_atexit handlers, then the teardown, as CPython's atexit runs
 * util._exit_function last (registered first). */
static void main_teardown(void)
{
    run_handlers();
    /* CPython's main has flushed its stdout by the time it joins its
     * children: its last lines come before theirs in a pipe. */
    fflush(NULL);
    exit_function();
}

/* At the main program's exit. */
static void main_exit(void)
{
    atomic_store(&ending, true);
    pthread_mutex_lock(&ending_lock);
    main_teardown();
}

/* util._exit_function(): SIGTERM to the daemonic children, then join all. */
static void exit_function(void)
{
    mp_process **list;
    size_t n;

    if (exiting)
        return;
    exiting = true;
    if (__atomic_load_n(&children, __ATOMIC_ACQUIRE) == NULL) {
        mp__forkserver_stop();
        return; /* the common case in a child: nothing to allocate */
    }
    if (mp_active_children(&list, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            if (mp_process_daemon(list[i]))
                mp_process_terminate(list[i]);
        mp_process_list_free(list, n);
    }
    if (mp_active_children(&list, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            mp_process_join(list[i], MP_FOREVER);
        mp_process_list_free(list, n);
    }
    mp__forkserver_stop();
}

/* construction */

mp_process *mp__process_alloc(void)
{
    mp_process *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->refs = 1;
    p->kind = MP__KIND_CHILD;
    p->ops = &mp__start_fork; /* until start() picks the method */
    p->method = "fork";
    p->type_name = "Process";
    p->pidfd = p->sentinel = p->parent_w = -1;
    p->stdio_fd[0] = p->stdio_fd[1] = p->stdio_fd[2] = -1;
    pthread_mutex_init(&p->wait_lock, NULL);
    return p;
}

static int process_new(const mp_context *ctx, mp_process **out,
                       const char *target, const void *arg, size_t len,
                       const mp_process_options *options)
{
    mp_process *p = NULL, *cur = current_process();
    mp_target_fn fn = NULL;
    const char *name = options != NULL ? options->name : NULL;
    int daemon = options != NULL ? options->daemon : MP_DAEMON_INHERIT;
    unsigned count;
    int r;

    if (ctx == NULL && options != NULL)
        ctx = options->context;

    if (out == NULL || (arg == NULL && len > 0) ||
        daemon < MP_DAEMON_INHERIT || daemon > MP_DAEMON_NO)
        return MP_EINVAL;
    *out = NULL;
    if (target != NULL && (fn = mp_target_lookup(target)) == NULL)
        return mp__target_missing(target);
    init_once();

    if ((p = mp__process_alloc()) == NULL)
        return -ENOMEM;
    /* Before the counter: a process refused makes no number. */
    if ((r = mp__options_copy(p, options)) < 0) {
        mp_process_free(p);
        return r;
    }
    p->ctx = ctx;
    if (ctx != NULL)
        p->type_name = mp__context_type(ctx);
    p->fn = fn;
    if (fn != NULL)
        snprintf(p->target_name, sizeof(p->target_name), "%s", target);

    pthread_mutex_lock(&reg_lock);
    count = ++counted;
    pthread_mutex_unlock(&reg_lock);
    p->identity_len = cur->identity_len + 1;
    p->identity = malloc(p->identity_len * sizeof(*p->identity));
    if (p->identity == NULL)
        goto fail;
    if (cur->identity_len > 0)
        memcpy(p->identity, cur->identity,
               cur->identity_len * sizeof(*p->identity));
    p->identity[p->identity_len - 1] = count;

    if (name != NULL && name[0] != '\0') {
        p->name = strdup(name);
    } else {
        size_t size = strlen(p->type_name) + 12 * p->identity_len + 1;
        if ((p->name = malloc(size)) != NULL) {
            int at = snprintf(p->name, size, "%s", p->type_name);
            for (size_t i = 0; i < p->identity_len; i++)
                at += snprintf(p->name + at, size - (size_t)at, "%c%u",
                               i == 0 ? '-' : ':', p->identity[i]);
        }
    }
    if (p->name == NULL)
        goto fail;
    p->name_buf = p->name;
    p->parent_pid = getpid();
    if ((p->parent_name = strdup(mp_process_name(cur))) == NULL)
        goto fail;
    p->daemon = daemon == MP_DAEMON_INHERIT ? mp_process_daemon(cur)
                                            : daemon == MP_DAEMON_YES;
    /* Never NULL, NUL-terminated: what a spawned child gets from its blob,
     * so a target sees the same under every method. */
    if ((p->arg = malloc(len + 1)) == NULL)
        goto fail;
    if (len > 0)
        memcpy(p->arg, arg, len);
    ((char *)p->arg)[len] = '\0';
    p->arg_len = len;
    *out = p;
    return 0;
fail:
    mp_process_free(p);
    return -ENOMEM;
}

int mp_process_new(mp_process **out, const char *target, const void *arg,
                   size_t len, const mp_process_options *options)
{
    return process_new(NULL, out, target, arg, len, options);
}

int mp_context_process_new(mp_context *ctx, mp_process **out,
                           const char *target, const void *arg, size_t len,
                           const mp_process_options *options)
{
    if (ctx == NULL)
        return MP_EINVAL;
    return process_new(ctx, out, target, arg, len, options);
}

/* Appends c (a reference of p's own) to what p hands its child; with
 * reg_lock held. */
static int add_handle(mp_process *p, mp_conn *c, unsigned char use)
{
    mp_conn **grown;
    unsigned char *grown_use;

    if (p->nconns == MP__MAX_HANDLES)
        return -EMFILE;
    if ((grown = realloc(p->conns, (p->nconns + 1) * sizeof(*grown))) == NULL)
        return -ENOMEM;
    p->conns = grown;
    if ((grown_use = realloc(p->conn_use, p->nconns + 1)) == NULL)
        return -ENOMEM;
    p->conn_use = grown_use;
    p->conn_use[p->nconns] = use;
    p->conns[p->nconns++] = mp__conn_ref(c);
    return 0;
}

int mp_process_add_conn(mp_process *p, mp_conn *c)
{
    int r;

    if (p == NULL || c == NULL)
        return MP_EINVAL;
    pthread_mutex_lock(&reg_lock);
    if (p->closed)
        r = MP_ECLOSED;
    else if (p->started || p->starting)
        r = MP_EHASSTARTED;
    /* A closed connection is accepted, as CPython's args are: a fork child
     * gets it closed; spawn and forkserver fail at start(). */
    else
        r = add_handle(p, c, MP__USE_ADDED);
    pthread_mutex_unlock(&reg_lock);
    return r;
}

/* A process of encoded arguments, which it takes (freed on failure). */
static int create_owning(mp_process **out, const char *target,
                         const void *blob, size_t blob_len, char *targs,
                         size_t targs_len, mp_conn *const *handles, size_t nh,
                         const mp_process_options *options)
{
    mp_process *p;
    int r;

    *out = NULL;
    r = process_new(NULL, &p, target, blob, blob_len, options);
    if (r < 0) {
        free(targs);
        return r;
    }
    p->targs = targs;
    p->targs_len = targs_len;
    /* p is new and ours alone: its handles are the arguments' from 0. */
    for (size_t i = 0; r == 0 && i < nh; i++)
        r = add_handle(p, handles[i], MP__USE_ARG);
    if (r < 0) {
        mp_process_free(p);
        return r;
    }
    *out = p;
    return 0;
}

int mp__process_create_encoded(mp_process **out, const char *target,
                               const void *blob, size_t blob_len,
                               const char *targs, size_t targs_len,
                               mp_conn *const *handles, size_t nh,
                               const mp_process_options *options)
{
    char *enc = NULL;

    *out = NULL;
    if (targs_len > 0 && (enc = malloc(targs_len)) == NULL)
        return -ENOMEM;
    if (targs_len > 0)
        memcpy(enc, targs, targs_len);
    return create_owning(out, target, blob, blob_len, enc, targs_len,
                         handles, nh, options);
}

int mp_process_create(mp_process **out, const mp_target *target,
                      const mp_arg *args, size_t n,
                      const mp_process_options *options)
{
    mp_conn *handles[MP__MAX_HANDLES];
    size_t nh = 0;
    char *enc = NULL;
    size_t len = 0;
    int r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (target != NULL) {
        mp_target_fn fn;
        if (target->name == NULL || target->fn == NULL)
            return MP_EINVAL;
        /* The object is checked against the registry: a spawned child can
         * only be told the name. */
        if ((fn = mp_target_lookup(target->name)) == NULL)
            return mp__target_missing(target->name);
        if (fn != target->fn)
            return mp_raise("ValueError",
                            "target '%s' is not the function registered "
                            "under that name", target->name);
    }
    if ((r = mp__args_encode(args, n, &enc, &len, handles, &nh)) < 0)
        return r;
    return create_owning(out, target != NULL ? target->name : NULL, NULL, 0,
                         enc, len, handles, nh, options);
}

bool mp__current_has_args(void)
{
    return current_process()->targs != NULL;
}

const mp_args *mp__current_args(void)
{
    mp_process *self = current_process();

    if (self->args_view == NULL && self->targs != NULL &&
        mp__args_decode(self->targs, self->targs_len, self->conns,
                        self->conn_use, self->nconns, &self->args_view) < 0)
        self->args_view = NULL;
    return self->args_view;
}

void mp__process_release_conns(mp_process *p)
{
    for (size_t i = 0; i < p->nconns; i++)
        mp_conn_free(p->conns[i]);
    free(p->conns);
    free(p->conn_use);
    p->conns = NULL;
    p->conn_use = NULL;
    p->nconns = 0;
}

/* lifecycle */

/* Makes this thread the one that starts p, after CPython's checks, in its
 * order: another start() meanwhile is "cannot start a process twice", and
 * close(), set_daemon() and add_conn() see p started. */
static int start_claim(mp_process *p)
{
    int r = 0;

    pthread_mutex_lock(&reg_lock);
    if (p->closed)
        r = MP_ECLOSED;
    else if (p->started || p->starting)
        r = MP_ESTARTTWICE;
    else if (p->parent_pid != getpid())
        r = MP_ENOTCREATOR;
    else if (mp_process_daemon(current_process()))
        r = MP_EDAEMONIC;
    else
        p->starting = true;
    pthread_mutex_unlock(&reg_lock);
    return r;
}

/* Publishes a started child (what launch() set goes with `started`) and
 * the name a rename during the start gave it. */
static void start_end(mp_process *p, bool ok)
{
    pthread_mutex_lock(&reg_lock);
    if (p->renamed != NULL) {
        __atomic_store_n(&p->name, p->renamed, __ATOMIC_RELEASE);
        __atomic_store_n(&p->renamed, NULL, __ATOMIC_RELEASE);
    }
    if (ok) {
        registry_link(p);
        __atomic_store_n(&p->started, true, __ATOMIC_RELEASE);
    }
    p->starting = false;
    pthread_mutex_unlock(&reg_lock);
}

/* start() once claimed. */
static int start_claimed(mp_process *p)
{
    size_t handles = p->nconns;
    int r;

    init_once();
    cleanup();
    /* CPython's Process._Popen looks the default context up now (fixing
     * it); a context's process keeps its own method. */
    {
        const mp_context *ctx = p->ctx != NULL ? p->ctx
                                               : mp__default_context();
        p->ops = mp__context_ops(ctx);
        p->method = mp_context_name(ctx);
        /* spawn's get_preparation_data() calls get_start_method(), which
         * fixes the default context; fork's Popen does not. */
        if (strcmp(p->method, "fork") != 0)
            (void)mp__default_context();
        /* spawn's _check_not_importing_main(): a child that re-runs main()
         * because it never reached mp_main() would start another copy. */
        if (strcmp(p->method, "fork") != 0 && mp__bootstrapping())
            return MP_EBOOTSTRAP;
    }
    /* The streams and directory the options name, opened here so that a
     * bad path is start()'s error whatever the method. */
    if ((r = mp__options_open(p)) < 0)
        return r;
    /* Popen flushes stdout and stderr; libmp flushes every output stream, so
     * no buffered output of any FILE is written twice. */
    fflush(NULL);
    r = p->ops->launch(p);
    mp__options_launched(p, handles, r == 0);
    if (r < 0)
        return r;
    /* CPython's start() drops its args once the child has them (no
     * add_conn() meanwhile: p is starting). */
    mp__process_release_conns(p);
    return 0;
}

int mp_process_start(mp_process *p)
{
    int r;

    if (p == NULL)
        return MP_EINVAL;
    r = start_claim(p);
    if (r < 0)
        return r;
    r = start_claimed(p);
    start_end(p, r == 0);
    return r;
}

/* The parent as a child sees it: alive until its pidfd (or the pipe whose
 * write end it holds) becomes readable.  Returns the descriptor, -ESRCH once
 * the parent is known to be gone, or another error (EMFILE...), which is not
 * remembered. */
static int parent_sentinel_locked(mp_process *pp)
{
    int fd;

    if (pp->sentinel >= 0)
        return pp->sentinel;
    if (has_code(pp))
        return -ESRCH;
    /* Opened lazily; getppid() proves the pid still names our parent. */
    if (getppid() == pp->pid) {
        fd = mp__pidfd_open(pp->pid);
        if (fd >= 0 && getppid() == pp->pid)
            return pp->sentinel = fd;
        if (fd < 0 && fd != -ESRCH)
            return fd;
        mp__fd_close(fd);
    }
    __atomic_store_n(&pp->has_code, true, __ATOMIC_RELEASE);
    return -ESRCH;
}

/* The threads of a child share its parent object: one of them opens it. */
static int parent_sentinel(mp_process *pp)
{
    int fd;

    pthread_mutex_lock(&pp->wait_lock);
    fd = parent_sentinel_locked(pp);
    pthread_mutex_unlock(&pp->wait_lock);
    return fd;
}

/* 1 once the parent has ended, 0 while it runs, < 0 on error. */
static int parent_wait(mp_process *pp, double timeout)
{
    int fd = parent_sentinel(pp);
    int r;

    if (fd == -ESRCH)
        return 1;
    if (fd < 0)
        return fd;
    r = mp__wait_readable(fd, timeout > 0 ? mp__now() + timeout : 0);
    if (r == 1)
        __atomic_store_n(&pp->has_code, true, __ATOMIC_RELEASE);
    return r;
}

int mp_process_join(mp_process *p, double timeout)
{
    int r;

    if (p == NULL || isnan(timeout))
        return MP_EINVAL;
    if (is_closed(p))
        return MP_ECLOSED;
    if (p->kind == MP__KIND_PARENT) {
        r = parent_wait(p, timeout);
        return r == 0 ? MP_ETIMEDOUT : r < 0 ? r : 0;
    }
    if (p->parent_pid != getpid())
        return MP_ENOTCHILD;
    if (!is_started(p))
        return MP_ENOTSTARTEDJOIN;
    r = process_wait(p, timeout);
    if (r == 1) {
        registry_remove(p);
        return 0;
    }
    return r == 0 ? MP_ETIMEDOUT : r;
}

int mp_process_is_alive(mp_process *p)
{
    int r;

    if (p == NULL)
        return MP_EINVAL;
    if (is_closed(p))
        return MP_ECLOSED;
    if (p == current_process())
        return 1;
    if (p->kind == MP__KIND_PARENT) {
        r = parent_wait(p, 0);
        return r < 0 ? r : !r;
    }
    if (p->parent_pid != getpid())
        return MP_ENOTCHILDTEST;
    if (!is_started(p))
        return 0;
    r = process_wait(p, 0);
    if (r == 1) {
        registry_remove(p);
        return 0;
    }
    return r == 0 ? 1 : r;
}

int mp_process_exitcode(mp_process *p, int *code)
{
    int r;

    if (p == NULL || code == NULL)
        return MP_EINVAL;
    if (is_closed(p))
        return MP_ECLOSED;
    if (!is_started(p))
        return 0;
    /* Another process's copy cannot reap it: CPython's waitpid fails and
     * exitcode reads None unless it was known when the copy was made. */
    r = p->parent_pid == getpid() ? process_wait(p, 0) : has_code(p);
    if (r == 1)
        *code = p->code;
    return r;
}

int mp_process_pid(mp_process *p, pid_t *pid)
{
    if (p == NULL || pid == NULL)
        return MP_EINVAL;
    if (is_closed(p))
        return MP_ECLOSED;
    if (p == current_process()) {
        *pid = getpid();
        return 1;
    }
    if (!is_started(p) && p->kind != MP__KIND_PARENT)
        return 0;
    *pid = p->pid;
    return 1;
}

int mp_process_sentinel(mp_process *p)
{
    int fd;

    if (p == NULL)
        return MP_EINVAL;
    if (is_closed(p))
        return MP_ECLOSED;
    if (p->kind == MP__KIND_PARENT) {
        fd = parent_sentinel(p);
        return fd != -ESRCH ? fd : MP_ENOTSTARTED;
    }
    if (!is_started(p))
        return MP_ENOTSTARTED;
    /* Read with the lock: close() may release it meanwhile. */
    pthread_mutex_lock(&reg_lock);
    fd = p->closed ? MP_ECLOSED : p->sentinel;
    pthread_mutex_unlock(&reg_lock);
    return fd;
}

static int send_signal(mp_process *p, int sig, int not_started)
{
    int r;

    if (p == NULL)
        return MP_EINVAL;
    if (is_closed(p))
        return MP_ECLOSED;
    if (!is_started(p))
        return not_started;
    if ((r = fds_get(p)) < 0)
        return r;
    r = p->ops->send_signal(p, sig);
    fds_put(p);
    return r;
}

int mp_process_terminate(mp_process *p)
{
    return send_signal(p, SIGTERM, MP_ENOPOPENTERM);
}

int mp_process_kill(mp_process *p)
{
    return send_signal(p, SIGKILL, MP_ENOPOPENKILL);
}

int mp_process_stop(mp_process *p, const mp_stop_actions *stop, int *code)
{
    const mp_stop_step *steps[3];
    int r, c;

    if (p == NULL || stop == NULL)
        return MP_EINVAL;
    steps[0] = &stop->first;
    steps[1] = &stop->second;
    steps[2] = &stop->third;
    for (int i = 0; i < 3; i++) /* all checked before any acts */
        if (steps[i]->action < MP_STOP_NOOP ||
            steps[i]->action > MP_STOP_KILL || isnan(steps[i]->timeout))
            return MP_EINVAL;
    r = mp_process_join(p, 0); /* it may have ended already */
    for (int i = 0; i < 3 && r == MP_ETIMEDOUT &&
                    steps[i]->action != MP_STOP_NOOP; i++) {
        if (steps[i]->action == MP_STOP_TERMINATE)
            r = mp_process_terminate(p);
        else if (steps[i]->action == MP_STOP_KILL)
            r = mp_process_kill(p);
        else
            r = 0;
        if (r < 0)
            return r;
        r = mp_process_join(p, steps[i]->timeout);
    }
    if (r < 0)
        return r;
    if (mp_process_exitcode(p, &c) != 1)
        return MP_ETIMEDOUT; /* cannot be: join() said it ended */
    if (code != NULL)
        *code = c;
    return 0;
}

int mp_process_close(mp_process *p)
{
    bool was = false, released = false;
    int r = 0;

    if (p == NULL)
        return MP_EINVAL;
    if (p->kind == MP__KIND_MAIN)
        return 0; /* _MainProcess.close() does nothing */
    if (is_started(p) && !is_closed(p)) {
        if (p->parent_pid != getpid())
            r = has_code(p);
        else
            r = process_wait(p, 0);
        if (r == 0)
            return MP_ERUNNING;
        if (r < 0 && r != MP_ECLOSED) /* ECLOSED: another thread's close */
            return r;
    }
    /* Decided again under the lock: a start() may have begun meanwhile. */
    pthread_mutex_lock(&reg_lock);
    if (p->starting || (p->started && !p->closed && !has_code(p))) {
        r = MP_ERUNNING;
    } else {
        if (p->started && !p->closed) {
            if (p->users == 0) {
                p->ops->close(p);
                released = true;
            } else
                p->release = true; /* the last fds_put() closes them */
            was = registry_unlink(p);
        }
        __atomic_store_n(&p->closed, true, __ATOMIC_RELEASE);
        r = 0;
    }
    pthread_mutex_unlock(&reg_lock);
    if (released) /* not under reg_lock: see fds_put() */
        mp__options_close(p);
    if (was)
        unref(p);
    return r;
}

/* attributes */

const char *mp_process_name(const mp_process *p)
{
    const char *name;

    if (p == NULL)
        return "";
    name = __atomic_load_n(&p->renamed, __ATOMIC_ACQUIRE);
    return name != NULL ? name : __atomic_load_n(&p->name, __ATOMIC_ACQUIRE);
}

/* Readers may hold any name the object had, so none is freed before the
 * object; a name given again reuses its copy, so that switching between a
 * few names (a status) does not grow the list.  During a start(), launch()
 * reads `name`: the new one waits in `renamed` until the start returns. */
int mp_process_set_name(mp_process *p, const char *name)
{
    struct mp__name *n, *had;
    char *use;
    size_t len;

    if (p == NULL)
        return MP_EINVAL;
    if (name == NULL)
        return MP_ENAME;
    len = strlen(name) + 1;
    if ((n = malloc(sizeof(*n) + len)) == NULL)
        return -ENOMEM;
    memcpy(n->s, name, len);
    pthread_mutex_lock(&reg_lock);
    for (had = p->names; had != NULL && strcmp(had->s, name) != 0;
         had = had->next)
        ;
    if (p->name_buf != NULL && strcmp(p->name_buf, name) == 0) {
        use = p->name_buf;
    } else if (had != NULL) {
        use = had->s;
    } else {
        n->next = p->names;
        p->names = n;
        use = n->s;
        n = NULL;
    }
    __atomic_store_n(p->starting ? &p->renamed : &p->name, use,
                     __ATOMIC_RELEASE);
    pthread_mutex_unlock(&reg_lock);
    free(n);
    return 0;
}

int mp_process_daemon(const mp_process *p)
{
    return p != NULL ? __atomic_load_n(&p->daemon, __ATOMIC_RELAXED) : 0;
}

int mp_process_set_daemon(mp_process *p, int daemon)
{
    int r = 0;

    if (p == NULL)
        return MP_EINVAL;
    pthread_mutex_lock(&reg_lock);
    if (p->starting || (p->started && !p->closed)) /* closed: no Popen */
        r = MP_EHASSTARTED;
    else
        __atomic_store_n(&p->daemon, daemon, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&reg_lock);
    return r;
}

/* repr() */

/* CPython's names for -signal exit codes (process._exitcode_to_name). */
static const char *signal_name(int sig)
{
    static const char *const names[] = {
        [SIGHUP] = "SIGHUP",   [SIGINT] = "SIGINT",       [SIGQUIT] = "SIGQUIT",
        [SIGILL] = "SIGILL",   [SIGTRAP] = "SIGTRAP",     [SIGABRT] = "SIGABRT",
        [SIGBUS] = "SIGBUS",   [SIGFPE] = "SIGFPE",       [SIGKILL] = "SIGKILL",
        [SIGUSR1] = "SIGUSR1", [SIGSEGV] = "SIGSEGV",     [SIGUSR2] = "SIGUSR2",
        [SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM",     [SIGTERM] = "SIGTERM",
        [SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT",
        [SIGSTOP] = "SIGSTOP", [SIGTSTP] = "SIGTSTP",     [SIGTTIN] = "SIGTTIN",
        [SIGTTOU] = "SIGTTOU", [SIGURG] = "SIGURG",       [SIGXCPU] = "SIGXCPU",
        [SIGXFSZ] = "SIGXFSZ", [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
        [SIGWINCH] = "SIGWINCH", [SIGPOLL] = "SIGPOLL",   [SIGPWR] = "SIGPWR",
        [SIGSYS] = "SIGSYS",
    };

    if (sig > 0 && (size_t)sig < ARRAY_SIZE(names) && names[sig] != NULL)
        return names[sig];
    if (sig == SIGRTMIN)
        return "SIGRTMIN";
    if (sig == SIGRTMAX)
        return "SIGRTMAX";
    return NULL;
}

struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(o->len < o->size ? o->buf + o->len : NULL,
                  o->len < o->size ? o->size - o->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/* Python's repr() of a str (pyrepr.h), appended as put() appends. */
static void put_str_repr(struct out *o, const char *s)
{
    size_t room = o->len < o->size ? o->size - o->len : 0;

    o->len += mp__py_repr_str(room > 0 ? o->buf + o->len : NULL, room, s);
}

int mp_process_repr(mp_process *p, char *buf, size_t size)
{
    struct out o = { buf, size, 0 };
    const char *status;
    int code = 0, r;
    bool show_code = false, started, closed;

    if (buf != NULL && size > 0)
        buf[0] = '\0';
    if (p == NULL)
        return MP_EINVAL;
    /* One view of a state other threads may change: started, then closed
     * (both only ever become true), then what wait() says. */
    started = is_started(p);
    closed = is_closed(p);
    if (p == current_process()) {
        status = "started";
    } else if (closed) {
        status = "closed";
    } else if (p->parent_pid != getpid()) {
        status = "unknown";
    } else if (!started) {
        status = "initial";
    } else if ((r = process_wait(p, 0)) == 1) {
        status = "stopped";
        code = p->code;
        show_code = true;
    } else if (r == MP_ECLOSED) {
        status = "closed";
        closed = true;
    } else {
        status = "started";
    }
    put(&o, "<%s name=", p->kind == MP__KIND_PARENT ? "_ParentProcess"
                                                     : p->type_name);
    put_str_repr(&o, mp_process_name(p));
    if (started && !closed) /* CPython: a closed process has no Popen */
        put(&o, " pid=%ld", (long)p->pid);
    if (p->parent_pid != 0)
        put(&o, " parent=%ld", (long)p->parent_pid);
    else
        put(&o, " parent=None");
    put(&o, " %s", status);
    if (show_code) {
        const char *sig = code < 0 ? signal_name(-code) : NULL;
        if (sig != NULL)
            put(&o, " exitcode=-%s", sig);
        else
            put(&o, " exitcode=%d", code);
    }
    if (mp_process_daemon(p))
        put(&o, " daemon");
    put(&o, ">");
    return (int)o.len;
}

/* identity */

mp_process *mp_current_process(void)
{
    init_once();
    return current_process();
}

mp_process *mp_parent_process(void)
{
    return parent;
}

int mp_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n > 0 ? (int)n : MP_ENOCPU;
}

int mp_set_daemon_death_signal(int sig)
{
    if (sig < 0 || sig >= NSIG)
        return MP_EINVAL;
    /* Starts in other threads read it without a lock. */
    return __atomic_exchange_n(&death_signal, sig, __ATOMIC_RELAXED);
}

int mp__daemon_death_signal(void)
{
    return __atomic_load_n(&death_signal, __ATOMIC_RELAXED);
}

/* SIGINT (mp_handle_sigint): the handler wakes sigint_thread through a
 * pipe, the one thing it may safely do; the thread does CPython's ending of
 * a main process that KeyboardInterrupt leaves. */

static int sigint_pipe[2] = { -1, -1 };
static pid_t sigint_owner; /* a fork child, before mp__child_init, is not */
static int sigint_state;   /* 0 not asked, 1 installed, 2 left alone */
static pthread_mutex_t sigint_lock = PTHREAD_MUTEX_INITIALIZER;

static void sigint_default_now(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static void sigint_handler(int sig)
{
    int saved = errno;

    /* Pending until the handler returns (SIGINT is blocked meanwhile),
     * then deadly. */
    if (atomic_load(&ending) || getpid() != sigint_owner ||
        write(sigint_pipe[1], "", 1) != 1) {
        sigint_default_now();
        raise(sig);
    }
    errno = saved;
}

static void *sigint_thread(void *arg)
{
    sigset_t set;
    char b;

    (void)arg;
    while (read(sigint_pipe[0], &b, 1) < 0 && errno == EINTR)
        ;
    atomic_store(&ending, true);
    pthread_mutex_lock(&ending_lock);
    /* The last line of CPython's traceback, before its atexit handlers. */
    fflush(stdout);
    fputs("KeyboardInterrupt\n", stderr);
    main_teardown();
    fflush(NULL);
    /* CPython 3.8+: after finalizing, it kills itself with SIGINT. */
    sigint_default_now();
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGINT);
    _exit(128 + SIGINT);
}

static int sigint_install(void)
{
    struct sigaction sa, old;
    pthread_attr_t attr;
    pthread_t t;
    int r;

    if (sigaction(SIGINT, NULL, &old) < 0)
        return -errno;
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
        return 2; /* the program's own, or ignored: CPython leaves it */
    if (pipe2(sigint_pipe, O_CLOEXEC) < 0)
        return -errno;
    if ((r = pthread_attr_init(&attr)) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &attr, sigint_thread, NULL);
        pthread_attr_destroy(&attr);
    }
    if (r != 0) {
        sigint_pipe[0] = mp__fd_close(sigint_pipe[0]);
        sigint_pipe[1] = mp__fd_close(sigint_pipe[1]);
        return -r;
    }
    init_once(); /* main_exit registered: it must wait for the thread */
    sigint_owner = getpid();
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sigint_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    return 1;
}

int mp_handle_sigint(void)
{
    int r;

    if (current_child != NULL || spawned_child)
        return MP_EINVAL;
    pthread_mutex_lock(&sigint_lock);
    if (sigint_state == 0) {
        r = sigint_install();
        if (r > 0)
            sigint_state = r;
    } else {
        r = sigint_state;
    }
    pthread_mutex_unlock(&sigint_lock);
    return r < 0 ? r : r - 1;
}

/* A fork child: the thread that answers the handler stayed in the parent. */
static void sigint_child(void)
{
    struct sigaction sa;

    if (sigaction(SIGINT, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == sigint_handler)
        sigint_default_now();
    /* Tested first: sigint_pipe is in .data, a page the child need not
     * copy when SIGINT was never handled. */
    if (sigint_pipe[0] >= 0) {
        sigint_pipe[0] = mp__fd_close(sigint_pipe[0]);
        sigint_pipe[1] = mp__fd_close(sigint_pipe[1]);
    }
    sigint_state = 0;
    pthread_mutex_init(&sigint_lock, NULL);
    atomic_store(&ending, false);
    pthread_mutex_init(&ending_lock, NULL);
}

/* the child's side */

/* Without pidfds a child watches its parent through a pipe whose write
 * end the parent holds (parent_w): a fork child keeping its siblings'
 * copies would keep them from seeing the parent end while it lives.  The
 * copies of the objects only the registry holds (the program dropped
 * them) are closed, as releasing the registry's reference closed them
 * once; the ones the program holds are kept, as CPython's are (replacing
 * them all would cost a system call per sibling in every fork child).
 * /dev/null takes each one's place, so that the number stays taken and
 * no sibling's page is written. */
static void drop_parent_watches(const mp_process *list)
{
    int null = -1;

    for (const mp_process *p = list; p != NULL; p = p->next) {
        if (p->parent_w < 0 ||
            __atomic_load_n(&p->refs, __ATOMIC_RELAXED) > 1)
            continue;
        if (null < 0 && (null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
            break; /* out of descriptors: the copies stay as CPython's */
        dup3(null, p->parent_w, O_CLOEXEC);
    }
    mp__fd_close(null);
}

void mp__child_init(mp_process *self, int parent_fd)
{
    mp_process *old_parent = parent;

    /* Its fork handlers, before anyone can take the locks they cover (a
     * spawned child starts without them; its teardown is child_finish()'s,
     * not main_exit()). */
    atfork_once();
    /* The registry now lists the parent's children: forget them (their
     * objects stay valid for the target, as copies).  A new generation
     * unlinks them all at once: visiting each would make every child's
     * start cost a cache miss, and writing to each a copied page, per
     * sibling.  The ones only the registry held stay allocated (reachable
     * from `inherited`) with their descriptors (but the pipe fallback's
     * parent watches), as the ones the program holds do, until this
     * process ends. */
    if (!mp__use_pidfd()) /* else no object has a parent_w: no visit */
        drop_parent_watches(children);
    inherited[reg_gen < ARRAY_SIZE(inherited) ? reg_gen
                                              : ARRAY_SIZE(inherited) - 1] =
        children;
    reg_gen++;
    children = NULL;
    counted = 0;
    exiting = false;
    mp__sigpipe_child();
    sigint_child();
    /* popen_fork: atexit._clear(); the parent's handlers are not ours. */
    free(handlers);
    handlers = NULL;
    nhandlers = caphandlers = 0;

    if (old_parent != NULL)
        mp__fd_close(old_parent->sentinel);
    parent = &parent_storage;
    memset(parent, 0, sizeof(*parent));
    parent->refs = 1;
    parent->kind = MP__KIND_PARENT;
    parent->ops = &mp__start_fork;
    parent->type_name = "_ParentProcess";
    parent->name = self->parent_name;
    parent->pid = self->parent_pid;
    parent->pidfd = parent->parent_w = -1;
    parent->sentinel = parent_fd;
    pthread_mutex_init(&parent->wait_lock, NULL);

    /* A fork child's copy, made while its start() ran: started it is not
     * (is_alive() of itself is answered by `current`), and a rename from
     * another thread during the start never reached the child. */
    self->starting = false;
    if (self->renamed != NULL)
        self->renamed = NULL;
    current_child = mp__process_ref(self);
    mp__set_child_conns(self->conns, self->conn_use, self->nconns);

    /* libmp's own settings (LIBMP_*) are the ones this program started
     * with: read before an environment option replaces them. */
    (void)mp__use_pidfd();
    if (self->env != NULL) /* else the lazy read finds the same */
        (void)mp__start_timeout();
    /* Its streams (stdin /dev/null by default, as util._close_stdin()),
     * directory and environment. */
    mp__options_apply(self);
}

void mp__set_spawned_child(void)
{
    spawned_child = true;
}

bool mp__spawned(void)
{
    return spawned_child;
}

_Noreturn static void child_finish(int code)
{
    /* _bootstrap flushes; then atexit runs the child's handlers, and last
     * util._exit_function, the teardown that joins the children. */
    fflush(NULL);
    run_handlers();
    exit_function();
    fflush(NULL);
    /* A spawned child is a program of its own: its atexit handlers run, as
     * CPython's spawn children's do.  A forked child's are its parent's. */
    if (spawned_child)
        exit(code);
    mp__child_calls->exit_now(code);
}

_Noreturn void mp__uncaught(int err)
{
    /* The header CPython prints for a child, then the last line of its
     * traceback. */
    char line[1024];

    /* In a pool's task, its caller gets the error before the worker ends
     * (CPython's worker catches it and goes on; C cannot unwind). */
    mp__pool_task_uncaught(err);
    mp_format_exception(err, line, sizeof(line));
    if (current_child != NULL) {
        fprintf(stderr, "Process %s:\n%s\n", mp_process_name(current_child),
                line);
        child_finish(1);
    }
    fflush(stdout);
    fprintf(stderr, "%s\n", line);
    exit(1);
}

int mp_check(int r)
{
    if (r < 0)
        mp__uncaught(r);
    return r;
}

_Noreturn void mp__child_run(mp_process *self)
{
    int r = 0;

    /* Arguments that cannot be read are the child's first error, not an
     * empty list its target would misread. */
    if (self->targs != NULL && self->args_view == NULL &&
        (r = mp__args_decode(self->targs, self->targs_len, self->conns,
                             self->conn_use, self->nconns,
                             &self->args_view)) < 0)
        mp__uncaught(r);
    r = self->fn != NULL ? self->fn(self->arg, self->arg_len) : 0;

    if (r < 0)
        mp__uncaught(r); /* an uncaught exception */
    child_finish(r);
}

_Noreturn void mp_exit(int code)
{
    if (current_child != NULL)
        child_finish(code);
    exit(code);
}
