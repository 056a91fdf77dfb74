/*
 * seeds.c - writes the seeds that libmp itself makes for the fuzz targets
 * (make fuzz-seeds; harness/fuzz/README.md), so they are the real thing,
 * not hand-written guesses:
 *
 *   DIR/conn/gen-*  byte streams mp_conn_send_bytes() wrote (read raw off
 *                   the pipe), behind fuzz_conn.c's 4 bytes of choices
 *   DIR/blob/gen-*  blobs mp__blob_build() made of processes with typed
 *                   arguments, handles and options, in each of
 *                   fuzz_blob.c's three modes
 *
 * Written with a fixed working directory ("/"), so a blob's bytes do not
 * depend on where it runs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

MP_TARGET_DECLARE(fuzz_noop); /* fuzz_blob.c's */

static char *out_dir; /* absolute: the blobs are made from "/" */

static void die(const char *what)
{
    fprintf(stderr, "seeds: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void save(const char *target, const char *name, const void *head,
                 size_t hlen, const void *body, size_t blen)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", out_dir, target);
    if (mkdir(path, 0777) < 0 && errno != EEXIST)
        die(path);
    snprintf(path, sizeof(path), "%s/%s/gen-%s", out_dir, target, name);
    if ((f = fopen(path, "wb")) == NULL ||
        fwrite(head, 1, hlen, f) != hlen ||
        (blen > 0 && fwrite(body, 1, blen, f) != blen) || fclose(f) != 0)
        die(path);
}

/* connections: what send_bytes writes */

static void stream(const char *name, unsigned char mode, unsigned char size,
                   unsigned char calls, const size_t *lens, size_t n)
{
    unsigned char head[4] = { mode, size, calls, 0 };
    mp_conn *a, *b;
    char *buf, *raw;
    size_t total = 0;
    ssize_t got;

    for (size_t i = 0; i < n; i++)
        total += lens[i] + 4;
    if (mp_pipe(&a, &b, 0) < 0 || (raw = malloc(total + 1)) == NULL)
        die("pipe");
    for (size_t i = 0; i < n; i++) {
        if ((buf = malloc(lens[i] + 1)) == NULL)
            die("malloc");
        for (size_t k = 0; k < lens[i]; k++)
            buf[k] = (char)('a' + (i + k) % 26);
        if (mp_conn_send_bytes(b, buf, lens[i]) < 0)
            die("send");
        free(buf);
    }
    b = mp_conn_free(b);
    got = read(mp_conn_fileno(a), raw, total + 1);
    if (got != (ssize_t)total)
        die("read");
    save("conn", name, head, 4, raw, total);
    free(raw);
    mp_conn_free(a);
}

static void conn_seeds(void)
{
    static const size_t one[] = { 5 }, empty[] = { 0 },
                        mixed[] = { 1, 0, 3, 200, 2 },
                        same[] = { 100, 100, 100, 100 },
                        edge[] = { 1024, 1025 }, large[] = { 9000, 7 };
    /* -1, then an 8-byte length: what libmp sends past 2 GiB, here for 5 */
    static const unsigned char wide[] = { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
                                          0, 0, 0, 0, 0, 0, 0, 5,
                                          'h', 'e', 'l', 'l', 'o' };

    stream("one", 0, 0, 0, one, 1);
    stream("empty-pipe", 1, 0, 0, empty, 1);
    stream("mixed-into", 0, 16, 0x55, mixed, 5);   /* recv_bytes_into */
    stream("mixed-whole", 1, 8, 0xaa, mixed, 5);   /* ..._ex, kept */
    stream("same-maxlength", 2, 150, 0, same, 4);  /* maxlength 150 */
    stream("edge", 0, 0, 0xe4, edge, 2);
    stream("large", 1, 0, 0, large, 2);            /* read to the caller */
    save("conn", "wide-header", wide, sizeof(wide), NULL, 0);
    {   /* 100000 bytes said, 9000 given, written 16 times: a message past
         * 64 KiB on a one-way pipe, and the stream goes on after it */
        static unsigned char grow[4 + 4 + 9000] = { 1, 0, 0, 15,
                                                    0, 0x01, 0x86, 0xa0 };
        memset(grow + 8, 'g', 9000);
        save("conn", "grow", grow, sizeof(grow), NULL, 0);
    }
}

/* blobs: what a parent tells a spawned or forkserver child */

static void blob_seed(const char *name, mp_process *p)
{
    unsigned char head[2] = { 0, (unsigned char)p->nconns };
    char *blob, *framed, sub[256];
    size_t len;
    uint64_t n;

    if (mp__blob_build(p, &blob, &len) < 0)
        die("blob");
    save("blob", name, head, 2, blob, len);
    /* as it travels: its length first (mp__blob_send) */
    if ((framed = malloc(sizeof(n) + len)) == NULL)
        die("malloc");
    n = len;
    memcpy(framed, &n, sizeof(n));
    memcpy(framed + sizeof(n), blob, len);
    head[0] = 1;
    snprintf(sub, sizeof(sub), "%s-framed", name);
    save("blob", sub, head, 2, framed, sizeof(n) + len);
    free(framed);
    free(blob);
    if (p->targs_len > 0) { /* the arguments alone, with their handles */
        unsigned char h[1 + 1 + 8];
        size_t k = p->nconns < 8 ? p->nconns : 8;
        h[0] = 2;
        h[1] = (unsigned char)k;
        for (size_t i = 0; i < k; i++)
            h[2 + i] = (unsigned char)((mp__conn_flags(p->conns[i]) & 0xf) |
                                       p->conn_use[i] << 4);
        snprintf(sub, sizeof(sub), "%s-args", name);
        save("blob", sub, h, 2 + k, p->targs, p->targs_len);
    }
}

static void blob_seeds(void)
{
    static const unsigned char bytes[] = { 0, 1, 0xff, 'x' };
    static const char *const env[] = { "A=1", "EMPTY=", "GONE", NULL };
    mp_process_options named = { .name = "worker", .daemon = MP_DAEMON_YES,
                                 .env = env, .env_mode = MP_ENV_REPLACE };
    mp_process *p;
    mp_queue *q;
    mp_conn *a, *b;

    if (mp_process_new(&p, NULL, "payload", 7, NULL) < 0)
        die("process");
    blob_seed("plain", p);
    mp_process_free(p);

    if (mp_process_create(&p, &fuzz_noop_target,
                          MP_ARGS(42, -1.5, "text", MP_NAMED("n", 7),
                                  mp_arg_bytes(bytes, sizeof(bytes))),
                          &named) < 0)
        die("process");
    blob_seed("typed", p);
    mp_process_free(p);

    if (mp_pipe(&a, &b, 1) < 0 || mp_queue_new(&q, 0) < 0)
        die("pipe");
    if (mp_process_create(&p, &fuzz_noop_target,
                          MP_ARGS(a, q, MP_NAMED("again", a), "s"), NULL) < 0 ||
        mp_process_add_conn(p, b) < 0)
        die("process");
    blob_seed("handles", p);
    mp_process_free(p);
    mp_queue_free(q);
    mp_conn_free(a);
    mp_conn_free(b);
}

int main(int argc, char **argv)
{
    mp_main(argc, argv);
    if (argc != 2) {
        fprintf(stderr, "usage: seeds DIR\n");
        return 2;
    }
    if ((mkdir(argv[1], 0777) < 0 && errno != EEXIST) ||
        (out_dir = realpath(argv[1], NULL)) == NULL)
        die(argv[1]);
    conn_seeds();
    if (chdir("/") < 0)
        die("/");
    blob_seeds();
    free(out_dir);
    return 0;
}
