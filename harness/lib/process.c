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
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static bool spawned_child;       /* a fresh program run by spawn */
static mp_process *children;     /* CPython's _children */
static unsigned counter = 1;     /* CPython's _process_counter */
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
static mp_process *current = &main_process;
static mp_process *parent;

static void exit_function(void);
static void main_exit(void);
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

static void atfork_prepare(void) { pthread_mutex_lock(&reg_lock); }
static void atfork_release(void) { pthread_mutex_unlock(&reg_lock); }

static void init(void)
{
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
    atexit(main_exit);
}

static void init_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, init);
}

/* references */

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
    free(p->identity);
    free(p->parent_name);
    free(p->arg);
    mp__process_release_conns(p);
    free(p->cwd);
    free(p);
}

mp_process *mp_process_free(mp_process *p)
{
    if (p != NULL)
        unref(p);
    return NULL;
}

/* the registry of children */

static void registry_add(mp_process *p)
{
    pthread_mutex_lock(&reg_lock);
    mp__process_ref(p);
    p->registered = true;
    p->prev = NULL;
    p->next = children;
    if (children != NULL)
        children->prev = p;
    children = p;
    pthread_mutex_unlock(&reg_lock);
}

/* Returns whether p was registered; the caller then drops its reference. */
static bool registry_unlink(mp_process *p)
{
    if (!p->registered)
        return false;
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

/* CPython's _cleanup(): forget (reap) the children that have finished. */
static void cleanup(void)
{
    mp_process *done = NULL, *p, *next;
    pid_t self = getpid();

    mp__forkserver_reap(); /* a server that was killed, say */
    pthread_mutex_lock(&reg_lock);
    for (p = children; p != NULL; p = next) {
        next = p->next;
        if (p->parent_pid == self && p->ops->wait(p, 0) == 1) {
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

/* At the main program's exit: mp_atexit handlers, then the teardown, as
 * CPython's atexit runs util._exit_function last (registered first). */
static void main_exit(void)
{
    run_handlers();
    /* CPython's main has flushed its stdout by the time it joins its
     * children: its last lines come before theirs in a pipe. */
    fflush(NULL);
    exit_function();
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
            if (list[i]->daemon)
                list[i]->ops->send_signal(list[i], SIGTERM);
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
    pthread_mutex_init(&p->wait_lock, NULL);
    return p;
}

static int process_new(const mp_context *ctx, mp_process **out,
                       const char *target, const void *arg, size_t len,
                       const mp_process_options *options)
{
    mp_process *p = NULL;
    mp_target_fn fn = NULL;
    const char *name = options != NULL ? options->name : NULL;
    int daemon = options != NULL ? options->daemon : MP_DAEMON_INHERIT;
    unsigned count;

    if (out == NULL || (arg == NULL && len > 0) ||
        daemon < MP_DAEMON_INHERIT || daemon > MP_DAEMON_NO)
        return MP_EINVAL;
    *out = NULL;
    if (target != NULL && (fn = mp_target_lookup(target)) == NULL)
        return mp__target_missing(target);
    init_once();

    if ((p = mp__process_alloc()) == NULL)
        return -ENOMEM;
    p->ctx = ctx;
    if (ctx != NULL)
        p->type_name = mp__context_type(ctx);
    p->fn = fn;
    if (fn != NULL)
        snprintf(p->target_name, sizeof(p->target_name), "%s", target);

    pthread_mutex_lock(&reg_lock);
    count = counter++;
    pthread_mutex_unlock(&reg_lock);
    p->identity_len = current->identity_len + 1;
    p->identity = malloc(p->identity_len * sizeof(*p->identity));
    if (p->identity == NULL)
        goto fail;
    if (current->identity_len > 0)
        memcpy(p->identity, current->identity,
               current->identity_len * sizeof(*p->identity));
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
    if ((p->parent_name = strdup(current->name)) == NULL)
        goto fail;
    p->daemon = daemon == MP_DAEMON_INHERIT ? current->daemon
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

int mp_process_add_conn(mp_process *p, mp_conn *c)
{
    mp_conn **grown;

    if (p == NULL || c == NULL)
        return MP_EINVAL;
    if (p->closed)
        return MP_ECLOSED;
    if (p->started)
        return MP_EHASSTARTED;
    /* A closed connection is accepted, as CPython's args are: a fork child
     * gets it closed; spawn and forkserver fail at start(). */
    if (p->nconns == 56) /* what fits in one SCM_RIGHTS message with ours */
        return -EMFILE;
    grown = realloc(p->conns, (p->nconns + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    p->conns = grown;
    p->conns[p->nconns++] = mp__conn_ref(c);
    return 0;
}

void mp__process_release_conns(mp_process *p)
{
    for (size_t i = 0; i < p->nconns; i++)
        mp_conn_free(p->conns[i]);
    free(p->conns);
    p->conns = NULL;
    p->nconns = 0;
}

/* lifecycle */

int mp_process_start(mp_process *p)
{
    int r;

    if (p == NULL)
        return MP_EINVAL;
    if (p->closed)
        return MP_ECLOSED;
    if (p->started)
        return MP_ESTARTTWICE;
    if (p->parent_pid != getpid())
        return MP_ENOTCREATOR;
    if (current->daemon)
        return MP_EDAEMONIC;
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
    /* Popen flushes stdout and stderr; libmp flushes every output stream, so
     * no buffered output of any FILE is written twice. */
    fflush(NULL);
    r = p->ops->launch(p);
    if (r < 0)
        return r;
    /* CPython's start() drops its args once the child has them. */
    mp__process_release_conns(p);
    p->started = true;
    registry_add(p);
    return 0;
}

/* The parent as a child sees it: alive until its pidfd (or the pipe whose
 * write end it holds) becomes readable.  Returns the descriptor, -ESRCH once
 * the parent is known to be gone, or another error (EMFILE...), which is not
 * remembered. */
static int parent_sentinel(mp_process *pp)
{
    int fd;

    if (pp->sentinel >= 0)
        return pp->sentinel;
    if (pp->has_code)
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
    pp->has_code = true;
    return -ESRCH;
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
        pp->has_code = true;
    return r;
}

int mp_process_join(mp_process *p, double timeout)
{
    int r;

    if (p == NULL || isnan(timeout))
        return MP_EINVAL;
    if (p->closed)
        return MP_ECLOSED;
    if (p->kind == MP__KIND_PARENT) {
        r = parent_wait(p, timeout);
        return r == 0 ? MP_ETIMEDOUT : r < 0 ? r : 0;
    }
    if (p->parent_pid != getpid())
        return MP_ENOTCHILD;
    if (!p->started)
        return MP_ENOTSTARTEDJOIN;
    r = p->ops->wait(p, timeout);
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
    if (p->closed)
        return MP_ECLOSED;
    if (p == current)
        return 1;
    if (p->kind == MP__KIND_PARENT) {
        r = parent_wait(p, 0);
        return r < 0 ? r : !r;
    }
    if (p->parent_pid != getpid())
        return MP_ENOTCHILDTEST;
    if (!p->started)
        return 0;
    r = p->ops->wait(p, 0);
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
    if (p->closed)
        return MP_ECLOSED;
    if (!p->started)
        return 0;
    /* Another process's copy cannot reap it: CPython's waitpid fails and
     * exitcode reads None unless it was known when the copy was made. */
    r = p->parent_pid == getpid() ? p->ops->wait(p, 0) : p->has_code;
    if (r == 1)
        *code = p->code;
    return r;
}

int mp_process_pid(mp_process *p, pid_t *pid)
{
    if (p == NULL || pid == NULL)
        return MP_EINVAL;
    if (p->closed)
        return MP_ECLOSED;
    if (p == current) {
        *pid = getpid();
        return 1;
    }
    if (!p->started && p->kind != MP__KIND_PARENT)
        return 0;
    *pid = p->pid;
    return 1;
}

int mp_process_sentinel(mp_process *p)
{
    int fd;

    if (p == NULL)
        return MP_EINVAL;
    if (p->closed)
        return MP_ECLOSED;
    if (p->kind == MP__KIND_PARENT) {
        fd = parent_sentinel(p);
        return fd != -ESRCH ? fd : MP_ENOTSTARTED;
    }
    if (!p->started)
        return MP_ENOTSTARTED;
    return p->sentinel;
}

static int send_signal(mp_process *p, int sig, int not_started)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->closed)
        return MP_ECLOSED;
    if (!p->started)
        return not_started;
    return p->ops->send_signal(p, sig);
}

int mp_process_terminate(mp_process *p)
{
    return send_signal(p, SIGTERM, MP_ENOPOPENTERM);
}

int mp_process_kill(mp_process *p)
{
    return send_signal(p, SIGKILL, MP_ENOPOPENKILL);
}

int mp_process_close(mp_process *p)
{
    int r;

    if (p == NULL)
        return MP_EINVAL;
    if (p->kind == MP__KIND_MAIN)
        return 0; /* _MainProcess.close() does nothing */
    if (p->started) {
        if (p->parent_pid != getpid())
            r = p->has_code;
        else
            r = p->ops->wait(p, 0);
        if (r == 0)
            return MP_ERUNNING;
        if (r < 0)
            return r;
        p->ops->close(p);
        p->started = false;
        registry_remove(p);
    }
    p->closed = true;
    return 0;
}

/* attributes */

const char *mp_process_name(const mp_process *p)
{
    if (p == NULL)
        return "";
    return p->name;
}

int mp_process_set_name(mp_process *p, const char *name)
{
    char *copy;

    if (p == NULL)
        return MP_EINVAL;
    if (name == NULL)
        return MP_ENAME;
    if ((copy = strdup(name)) == NULL)
        return -ENOMEM;
    free(p->name_buf);
    p->name = p->name_buf = copy;
    return 0;
}

int mp_process_daemon(const mp_process *p)
{
    return p != NULL ? p->daemon : 0;
}

int mp_process_set_daemon(mp_process *p, int daemon)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->started)
        return MP_EHASSTARTED;
    p->daemon = daemon;
    return 0;
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

/* Python's repr() of a str: quotes chosen as Python chooses them. */
static void put_str_repr(struct out *o, const char *s)
{
    char q = strchr(s, '\'') != NULL && strchr(s, '"') == NULL ? '"' : '\'';

    put(o, "%c", q);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '\\' || *c == (unsigned char)q)
            put(o, "\\%c", *c);
        else if (*c == '\n')
            put(o, "\\n");
        else if (*c == '\r')
            put(o, "\\r");
        else if (*c == '\t')
            put(o, "\\t");
        else if (*c < 0x20 || *c == 0x7f)
            put(o, "\\x%02x", *c);
        else
            put(o, "%c", *c);
    }
    put(o, "%c", q);
}

int mp_process_repr(mp_process *p, char *buf, size_t size)
{
    struct out o = { buf, size, 0 };
    const char *status;
    int code = 0;
    bool show_code = false;

    if (buf != NULL && size > 0)
        buf[0] = '\0';
    if (p == NULL)
        return MP_EINVAL;
    if (p == current) {
        status = "started";
    } else if (p->closed) {
        status = "closed";
    } else if (p->parent_pid != getpid()) {
        status = "unknown";
    } else if (!p->started) {
        status = "initial";
    } else if (p->ops->wait(p, 0) == 1) {
        status = "stopped";
        code = p->code;
        show_code = true;
    } else {
        status = "started";
    }
    put(&o, "<%s name=", p->kind == MP__KIND_PARENT ? "_ParentProcess"
                                                     : p->type_name);
    put_str_repr(&o, mp_process_name(p));
    if (p->started)
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
    if (p->daemon)
        put(&o, " daemon");
    put(&o, ">");
    return (int)o.len;
}

/* identity */

mp_process *mp_current_process(void)
{
    init_once();
    return current;
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
    int prev = death_signal;

    if (sig < 0 || sig >= NSIG)
        return MP_EINVAL;
    death_signal = sig;
    return prev;
}

int mp__daemon_death_signal(void)
{
    return death_signal;
}

/* the child's side */

void mp__child_init(mp_process *self, int parent_fd)
{
    mp_process *p, *next, *old_parent = parent;
    int fd;

    /* The registry now lists the parent's children: forget them (their
     * objects stay valid for the target, as copies). */
    for (p = children; p != NULL; p = next) {
        next = p->next;
        p->prev = p->next = NULL;
        p->registered = false;
        unref(p);
    }
    children = NULL;
    counter = 1;
    exiting = false;
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

    current = mp__process_ref(self);
    mp__set_child_conns(self->conns, self->nconns);

    /* util._close_stdin(): the child reads from /dev/null. */
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd > 0) {
        dup2(fd, 0);
        close(fd);
    } else if (fd == 0) {
        fcntl(0, F_SETFD, 0);
    }
    __fpurge(stdin);
    clearerr(stdin);
}

void mp__set_spawned_child(void)
{
    spawned_child = true;
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
    _exit(code);
}

_Noreturn void mp__child_run(mp_process *self)
{
    int r = self->fn != NULL ? self->fn(self->arg, self->arg_len) : 0;
    int code = r;

    if (r < 0) {
        /* An uncaught exception: the header CPython prints, then the last
         * line of its traceback. */
        char line[1024];
        mp_format_exception(r, line, sizeof(line));
        fprintf(stderr, "Process %s:\n%s\n", current->name, line);
        code = 1;
    }
    child_finish(code);
}

_Noreturn void mp_exit(int code)
{
    if (current != &main_process)
        child_finish(code);
    exit(code);
}
