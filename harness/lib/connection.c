/*
 * connection.c - Pipe() and Connection, and wait() (CPython: connection.py).
 *
 * A connection carries CPython's framing: a 4-byte big-endian signed length
 * (-1, then an 8-byte length, for messages over 2 GiB), then the bytes; so
 * messages keep their boundaries, empty ones included, and the wire format is
 * CPython's.  As CPython's, a duplex pipe is a Unix socketpair and a one-way
 * pipe a pipe(2), the faster of the two.  A send to a closed peer is
 * BrokenPipeError, never a SIGPIPE that would kill a C program: sockets send
 * with MSG_NOSIGNAL; for pipes, libmp does once per process what CPython's
 * interpreter does at startup: SIGPIPE at its default becomes ignored
 * (MP_SIGPIPE_IGNORE), unless the program chose MP_SIGPIPE_KEEP, where each
 * pipe write blocks SIGPIPE in the calling thread and takes back a SIGPIPE
 * it caused.  A message is one write (header and payload together), and a
 * read asks for one message: a header and as many bytes as the previous
 * message had.  Reading more would take fewer calls from a backlog, but a
 * reader that empties the pipe sleeps and must be woken by every write,
 * which halves a stream's throughput (measured here: 0.8 against 1.5 M/s).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define RBUF_SIZE 65536
#define SMALL_MSG 1024 /* sent from one buffer, copied */
#define AHEAD_MAX 8192 /* larger payloads are read straight to the caller */

struct mp_conn {
    int refs;         /* the caller's, and each process it is handed to */
    int fd;
    bool readable, writable;
    bool is_pipe;     /* pipe(2): writes must keep SIGPIPE away */
    bool is_queue;    /* a queue's memfd (queue.c): not a connection */
    bool is_sync;     /* a synchronisation object's memfd (sync.c) */
    char *rbuf;       /* bytes read ahead: rbuf[rpos..rlen) */
    size_t rpos, rlen;
    size_t ahead;     /* the last message's length: read with a header */
    /* A message whose length was read but not its bytes (no memory for
     * them): the next receive takes it, so the stream stays in step. */
    bool has_len;
    size_t len;
    bool pending; /* listed in pending_fds: see note_pending() */
};

/*
 * The descriptors of connections holding a message, or part of one, that
 * a read took from the descriptor ahead of its receive (the read for one
 * message reaches as far as the previous message's length).  poll() cannot
 * see those bytes, so mp_wait(), which CPython's wait() is and which is
 * given descriptors, not connections, looks here first: otherwise it would
 * sleep, or hang, beside a message already read.  A connection enters the
 * list when a receive leaves bytes behind, and leaves it when they are
 * taken or it closes: rarely, so a locked list is enough.
 */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static int *pending_fds;
static size_t npending_cap;
static _Atomic size_t npending;

static void pending_prepare(void) { pthread_mutex_lock(&pending_lock); }
static void pending_release(void) { pthread_mutex_unlock(&pending_lock); }

__attribute__((constructor)) static void pending_init(void)
{
    pthread_atfork(pending_prepare, pending_release, pending_release);
}

static void pending_change(mp_conn *c, bool now)
{
    size_t n;

    pthread_mutex_lock(&pending_lock);
    n = atomic_load_explicit(&npending, memory_order_relaxed);
    if (now) {
        if (n == npending_cap) {
            size_t cap = npending_cap ? 2 * npending_cap : 8;
            int *grown = realloc(pending_fds, cap * sizeof(*grown));
            if (grown == NULL) { /* unlisted: a wait may then sleep */
                pthread_mutex_unlock(&pending_lock);
                return;
            }
            pending_fds = grown;
            npending_cap = cap;
        }
        pending_fds[n++] = c->fd;
    } else {
        for (size_t i = 0; i < n; i++)
            if (pending_fds[i] == c->fd) {
                pending_fds[i] = pending_fds[--n];
                break;
            }
        if (n == 0) { /* nothing held for good while nothing is listed */
            free(pending_fds);
            pending_fds = NULL;
            npending_cap = 0;
        }
    }
    atomic_store_explicit(&npending, n, memory_order_release);
    c->pending = now;
    pthread_mutex_unlock(&pending_lock);
}

/* Brings c's entry in pending_fds up to date: a test a receive, the lock
 * only on a change.  A closed connection holds no bytes (close() empties
 * the buffer before its descriptor goes). */
static inline void note_pending(mp_conn *c)
{
    bool now = c->rpos < c->rlen || c->has_len;

    if (__builtin_expect(now != c->pending, 0))
        pending_change(c, now);
}

/* Whether fd belongs to a connection holding bytes read ahead. */
static bool fd_pending(int fd)
{
    bool found = false;

    pthread_mutex_lock(&pending_lock);
    for (size_t i = 0; i < npending && !found; i++)
        found = pending_fds[i] == fd;
    pthread_mutex_unlock(&pending_lock);
    return found;
}

static int conn_new(mp_conn **out, int fd, bool readable, bool writable)
{
    mp_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return -ENOMEM;
    c->refs = 1;
    c->fd = fd;
    c->readable = readable;
    c->writable = writable;
    *out = c;
    return 0;
}

mp_conn *mp__conn_wrap(int fd, unsigned flags)
{
    mp_conn *c = NULL;

    if (conn_new(&c, fd, flags & 1, (flags & 2) != 0) < 0)
        return NULL;
    c->is_pipe = (flags & 4) != 0;
    c->is_queue = (flags & MP__CONN_QUEUE) != 0;
    c->is_sync = (flags & MP__CONN_SYNC) != 0;
    return c;
}

int mp__conn_take_fd(mp_conn *c)
{
    int fd = c->fd;

    c->fd = -1;
    return fd;
}

unsigned mp__conn_flags(const mp_conn *c)
{
    return (c->readable ? 1u : 0u) | (c->writable ? 2u : 0u) |
           (c->is_pipe ? 4u : 0u) | (c->is_queue ? MP__CONN_QUEUE : 0u) |
           (c->is_sync ? MP__CONN_SYNC : 0u);
}

static mp_conn **child_conns;
static const unsigned char *child_use;
static size_t nchild_conns;

void mp__set_child_conns(mp_conn **conns, const unsigned char *use,
                         size_t n)
{
    child_conns = conns;
    child_use = use;
    nchild_conns = n;
}

size_t mp__child_conn_count(void)
{
    return nchild_conns;
}

mp_conn *mp__child_conn_raw(size_t i)
{
    return i < nchild_conns && child_use[i] == MP__USE_ADDED ? child_conns[i]
                                                             : NULL;
}

/* The i-th of the connections proper: queues' handles do not count. */
mp_conn *mp_child_conn(size_t i)
{
    for (size_t j = 0; j < nchild_conns; j++)
        if (child_use[j] == MP__USE_ADDED && !child_conns[j]->is_queue &&
            !child_conns[j]->is_sync &&
            i-- == 0)
            return child_conns[j];
    return NULL;
}

int mp_pipe(mp_conn **a, mp_conn **b, int duplex)
{
    int sv[2], r;

    if (a == NULL || b == NULL)
        return MP_EINVAL;
    *a = *b = NULL;
    if (duplex ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0
               : pipe2(sv, O_CLOEXEC) < 0) /* (read end, write end) */
        return -errno;
    if ((r = conn_new(a, sv[0], true, duplex)) < 0) {
        close(sv[0]);
        close(sv[1]);
        return r;
    }
    if ((r = conn_new(b, sv[1], duplex, true)) < 0) {
        *a = mp_conn_free(*a); /* closes sv[0] */
        close(sv[1]);
        return r;
    }
    (*a)->is_pipe = (*b)->is_pipe = !duplex;
    return 0;
}

int mp_conn_close(mp_conn *c)
{
    if (c == NULL)
        return MP_EINVAL;
    c->rpos = c->rlen = 0;
    c->has_len = false;
    note_pending(c); /* unlisted while the descriptor is still its own */
    c->fd = mp__fd_close(c->fd); /* closing twice is fine, as CPython's */
    free(c->rbuf);
    c->rbuf = NULL;
    return 0;
}

mp_conn *mp__conn_ref(mp_conn *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

/* The last reference closes: a connection handed to a process that has not
 * started yet stays open for it, as a Connection in a Process's args. */
mp_conn *mp_conn_free(mp_conn *c)
{
    if (c != NULL && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        mp_conn_close(c);
        free(c);
    }
    return NULL;
}

int mp_conn_closed(const mp_conn *c)
{
    return c == NULL || c->fd < 0;
}

int mp_conn_readable(const mp_conn *c)
{
    return c != NULL && c->readable;
}

int mp_conn_writable(const mp_conn *c)
{
    return c != NULL && c->writable;
}

static int check(const mp_conn *c, bool reading)
{
    if (c == NULL)
        return MP_EINVAL;
    if (c->fd < 0)
        return MP_EHANDLECLOSED;
    if (reading && !c->readable)
        return MP_EWRITEONLY;
    if (!reading && !c->writable)
        return MP_EREADONLY;
    return 0;
}

int mp_conn_fileno(const mp_conn *c)
{
    if (c == NULL)
        return MP_EINVAL;
    return c->fd < 0 ? MP_EHANDLECLOSED : c->fd;
}

/* sending */

/* SIGPIPE policy: MP_SIGPIPE_IGNORE or MP_SIGPIPE_KEEP. */
static atomic_int sigpipe_policy = MP_SIGPIPE_IGNORE;
/* This process has looked at SIGPIPE's disposition (and ignored it if it
 * was the default): fork children inherit both the flag and the
 * disposition; exec starts again. */
static atomic_bool sigpipe_seen;

int mp_set_sigpipe_policy(int policy)
{
    if (policy != MP_SIGPIPE_IGNORE && policy != MP_SIGPIPE_KEEP)
        return MP_EINVAL;
    return atomic_exchange(&sigpipe_policy, policy);
}

/* As CPython's interpreter at startup: SIGPIPE at its default becomes
 * ignored; a program's own handler, or a SIG_IGN, is left alone. */
static void sigpipe_ignore_once(void)
{
    struct sigaction sa;

    if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
    atomic_store_explicit(&sigpipe_seen, true, memory_order_release);
}

void mp__sigpipe_child(void)
{
    if (atomic_load_explicit(&sigpipe_policy, memory_order_relaxed) ==
        MP_SIGPIPE_IGNORE)
        sigpipe_ignore_once();
}

/* writev() on a pipe under MP_SIGPIPE_KEEP: SIGPIPE blocked in this thread
 * meanwhile (a SIGPIPE from a write is sent to the writing thread); one this
 * write raised is taken back, one already pending is left alone. */
static ssize_t pipe_writev_keep(int fd, const struct iovec *iov, int n)
{
    sigset_t pipe_set, old, pending;
    struct timespec zero = { 0, 0 };
    struct sigaction sa;
    bool was_pending;
    ssize_t w;
    int err;

    /* A program that ignores SIGPIPE needs no more than one look at the
     * disposition. */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_IGN)
        return writev(fd, iov, n);
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    w = writev(fd, iov, n);
    err = errno;
    if (w < 0 && err == EPIPE && !was_pending)
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return w;
}

static ssize_t pipe_writev(int fd, const struct iovec *iov, int n)
{
    if (atomic_load_explicit(&sigpipe_policy, memory_order_relaxed) ==
        MP_SIGPIPE_KEEP)
        return pipe_writev_keep(fd, iov, n);
    if (!atomic_load_explicit(&sigpipe_seen, memory_order_acquire))
        sigpipe_ignore_once();
    return n == 1 ? write(fd, iov->iov_base, iov->iov_len) : writev(fd, iov, n);
}

static int send_all(mp_conn *c, struct iovec *iov, int n)
{
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };

    while (msg.msg_iovlen > 0) {
        ssize_t w = c->is_pipe
                        ? pipe_writev(c->fd, msg.msg_iov, (int)msg.msg_iovlen)
                        : sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno; /* EPIPE: BrokenPipeError, as CPython's */
        }
        while (msg.msg_iovlen > 0 && (size_t)w >= msg.msg_iov->iov_len) {
            w -= (ssize_t)msg.msg_iov->iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen > 0) {
            msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + w;
            msg.msg_iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

int mp_conn_send_bytes(mp_conn *c, const void *buf, size_t n)
{
    unsigned char head[12];
    struct iovec iov[2];
    int r = check(c, false), k;

    if (r < 0)
        return r;
    if (buf == NULL && n > 0)
        return MP_EINVAL;
    if (n > 0x7fffffff) { /* -1, then the 8-byte length */
        uint64_t v = n;
        memcpy(head, "\xff\xff\xff\xff", 4);
        for (k = 0; k < 8; k++)
            head[4 + k] = (unsigned char)(v >> (56 - 8 * k));
        iov[0].iov_len = 12;
    } else {
        for (k = 0; k < 4; k++)
            head[k] = (unsigned char)(n >> (24 - 8 * k));
        iov[0].iov_len = 4;
    }
    iov[0].iov_base = head;
    if (n > 0 && n <= SMALL_MSG) { /* one buffer: write() beats writev() */
        unsigned char msg[4 + SMALL_MSG];
        memcpy(msg, head, 4);
        memcpy(msg + 4, buf, n);
        iov[0].iov_base = msg;
        iov[0].iov_len = 4 + n;
        return send_all(c, iov, 1);
    }
    iov[1].iov_base = (void *)buf;
    iov[1].iov_len = n;
    return send_all(c, iov, n > 0 ? 2 : 1);
}

/* receiving */

/* Copies `size` bytes of the stream into dst (NULL: discards them); a read
 * asks for `ahead` bytes more, for the next message.  EOF before the first
 * byte is EOFError; within, "got end of file during message", as CPython's
 * _recv. */
static int read_exact(mp_conn *c, void *dst, size_t size, size_t ahead)
{
    size_t done = 0;

    while (done < size) {
        size_t need = size - done;
        if (c->rpos < c->rlen) {
            size_t k = c->rlen - c->rpos < need ? c->rlen - c->rpos : need;
            if (dst != NULL)
                memcpy((char *)dst + done, c->rbuf + c->rpos, k);
            c->rpos += k;
            done += k;
            continue;
        }
        bool direct = dst != NULL && need > AHEAD_MAX; /* large: no copy */
        if (!direct && c->rbuf == NULL && (c->rbuf = malloc(RBUF_SIZE)) == NULL)
            return -ENOMEM;
        ssize_t got = direct ? read(c->fd, (char *)dst + done, need)
                             : read(c->fd, c->rbuf,
                                    need + ahead < RBUF_SIZE ? need + ahead
                                                             : RBUF_SIZE);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (got == 0)
            return done == 0 ? MP_EEOF : MP_EEOFMSG;
        if (direct) {
            done += (size_t)got;
        } else {
            c->rpos = 0;
            c->rlen = (size_t)got;
        }
    }
    return 0;
}

/* The next message's length; MP_EBADLENGTH (the stream is then unusable
 * for reading, as CPython marks it) when it exceeds maxlength. */
static int read_length(mp_conn *c, size_t maxlength, size_t *size)
{
    unsigned char head[8];
    uint64_t n = 0;
    int r;

    if (c->has_len) {
        c->has_len = false;
        n = c->len;
        goto check;
    }
    if ((r = read_exact(c, head, 4, c->ahead)) < 0)
        return r;
    if (memcmp(head, "\xff\xff\xff\xff", 4) == 0) {
        if ((r = read_exact(c, head, 8, 0)) < 0)
            return r == MP_EEOF ? MP_EEOFMSG : r;
        for (int k = 0; k < 8; k++)
            n = n << 8 | head[k];
    } else {
        n = (uint64_t)head[0] << 24 | head[1] << 16 | head[2] << 8 | head[3];
        if (n > 0x7fffffff) /* another negative length: not a message */
            n = UINT64_MAX;
    }
check:
    if (n > maxlength || n > SIZE_MAX / 2) {
        /* _bad_message_length(): unreadable, or closed if it was only
         * readable. */
        if (c->writable)
            c->readable = false;
        else
            mp_conn_close(c);
        return MP_EBADLENGTH;
    }
    *size = (size_t)n;
    c->ahead = n <= AHEAD_MAX ? (size_t)n : 0; /* guess: the same again */
    return 0;
}

/* The n bytes of a message whose length was read, into a malloc'd,
 * NUL-terminated *out.  The buffer grows with the bytes that arrive (from
 * RBUF_SIZE, doubling), never ahead of them: a length header costs memory
 * only once its bytes are here, as CPython's _recv() grows a BytesIO, and
 * a peer that announces 2 GiB and sends nothing costs nothing.  Without
 * memory for it the rest of the message is still read past, so the next
 * one stays in step (-ENOMEM). */
static int read_payload(mp_conn *c, size_t n, char **out)
{
    size_t have = 0, cap = n < RBUF_SIZE ? n : RBUF_SIZE;
    char *buf = malloc(cap + 1), *grown;
    int r;

    *out = NULL;
    if (buf == NULL) {
        c->has_len = true; /* nothing read: the message stays for the next */
        c->len = n;
        return -ENOMEM;
    }
    for (;;) {
        if (buf == NULL) { /* partway: read past the rest, to stay in step */
            r = read_exact(c, NULL, n - have, 0);
            return r < 0 ? (r == MP_EEOF && n > 0 ? MP_EEOFMSG : r)
                         : -ENOMEM;
        }
        if ((r = read_exact(c, buf + have, cap - have, 0)) < 0) {
            free(buf);
            return r == MP_EEOF && n > 0 ? MP_EEOFMSG : r;
        }
        have = cap;
        if (have == n)
            break;
        cap = n - have > cap ? 2 * cap : n;
        if ((grown = realloc(buf, cap + 1)) == NULL)
            free(buf);
        buf = grown;
    }
    buf[n] = '\0'; /* a convenience for text; not counted in the length */
    *out = buf;
    return 0;
}

static int recv_bytes(mp_conn *c, void **out, size_t *len, size_t maxlength)
{
    size_t n;
    char *buf;
    int r;

    if (out != NULL)
        *out = NULL; /* never a stale pointer a caller might free twice */
    if ((r = check(c, true)) < 0)
        return r;
    if (out == NULL || len == NULL)
        return MP_EINVAL;
    if ((r = read_length(c, maxlength, &n)) < 0)
        return r;
    if ((r = read_payload(c, n, &buf)) < 0)
        return r;
    *out = buf;
    *len = n;
    return 0;
}

int mp_conn_recv_bytes_into(mp_conn *c, void *buf, size_t size, size_t *len)
{
    return mp_conn_recv_bytes_into_ex(c, buf, size, len, NULL);
}

static int recv_bytes_into(mp_conn *c, void *buf, size_t size, size_t *len,
                           void **whole)
{
    size_t n;
    char *copy;
    int r;

    if (whole != NULL)
        *whole = NULL; /* never a stale pointer a caller might free twice */
    if ((r = check(c, true)) < 0)
        return r;
    if ((buf == NULL && size > 0) || len == NULL)
        return MP_EINVAL;
    if ((r = read_length(c, MP_NOLIMIT, &n)) < 0)
        return r;
    *len = n;
    if (n <= size) {
        r = read_exact(c, buf, n, 0);
        return r == MP_EEOF && n > 0 ? MP_EEOFMSG : r;
    }
    /* BufferTooShort: consumed, as CPython's, and handed back whole when
     * the caller asks (CPython's e.args[0]). */
    if (whole == NULL) {
        r = read_exact(c, NULL, n, 0);
        return r < 0 ? (r == MP_EEOF ? MP_EEOFMSG : r) : MP_ETOOSHORT;
    }
    if ((r = read_payload(c, n, &copy)) < 0)
        return r;
    *whole = copy;
    return MP_ETOOSHORT;
}

/* Each receive, then the list of connections with bytes read ahead. */
int mp_conn_recv_bytes(mp_conn *c, void **out, size_t *len, size_t maxlength)
{
    int r = recv_bytes(c, out, len, maxlength);

    if (c != NULL)
        note_pending(c);
    return r;
}

int mp_conn_recv_bytes_into_ex(mp_conn *c, void *buf, size_t size,
                               size_t *len, void **whole)
{
    int r = recv_bytes_into(c, buf, size, len, whole);

    if (c != NULL)
        note_pending(c);
    return r;
}

int mp_conn_poll(mp_conn *c, double timeout)
{
    int r = check(c, true);

    if (r < 0)
        return r;
    if (isnan(timeout))
        return MP_EINVAL;
    if (c->rpos < c->rlen || c->has_len)
        return 1;
    /* Readable means data or EOF, as CPython's wait(). */
    r = mp__wait_readable(c->fd, timeout > 0 ? mp__now() + timeout : 0);
    return r;
}

/* wait() */

int mp_wait(const int *fds, size_t n, double timeout, int *ready)
{
    struct pollfd stack[16], *pfd = n <= 16 ? stack : calloc(n, sizeof(*pfd));
    double deadline = !(timeout > 0) ? 0 : isinf(timeout) ? timeout
                                                         : mp__now() + timeout;
    int count = 0, r;

    /* No descriptors: CPython's wait([], timeout) sleeps out the timeout
     * and returns an empty list. */
    if ((n > 0 && (fds == NULL || ready == NULL)) || pfd == NULL ||
        isnan(timeout)) {
        if (pfd != stack)
            free(pfd);
        return pfd == NULL ? -ENOMEM : MP_EINVAL;
    }
    bool ahead = false;
    for (size_t i = 0; i < n; i++) {
        pfd[i].fd = fds[i];
        pfd[i].events = POLLIN;
        pfd[i].revents = 0;
        ready[i] = atomic_load_explicit(&npending, memory_order_acquire) > 0 &&
                   fd_pending(fds[i]);
        ahead |= ready[i];
    }
    /* A message already read is ready now: the rest are only looked at. */
    r = mp__ppoll_until(pfd, n, ahead ? 0 : deadline);
    if (r >= 0) {
        for (size_t i = 0; i < n; i++) {
            ready[i] |= (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
            if (pfd[i].revents & POLLNVAL) {
                r = -EBADF; /* a closed descriptor is an error */
                break;
            }
            count += ready[i];
        }
        if (r >= 0)
            r = count;
    }
    if (pfd != stack)
        free(pfd);
    return r;
}

int mp_conn_send_str(mp_conn *c, const char *s)
{
    return s == NULL ? MP_EINVAL : mp_conn_send_bytes(c, s, strlen(s));
}

int mp_conn_recv_str(mp_conn *c, char **s)
{
    size_t len;

    if (s == NULL)
        return MP_EINVAL;
    return mp_conn_recv_bytes(c, (void **)s, &len, MP_NOLIMIT);
}
