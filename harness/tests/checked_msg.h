/*
 * checked_msg.h - checked queue messages, for the tests that kill queue
 * users (test_queue.c) and for the stress suite (harness/stress/): a header
 * (producer id, sequence number, length, a sum of the bytes) and bytes that
 * depend on (id, seq, position), so a message torn, mixed with another or
 * delivered under another's header is told apart.  Sizes vary from 0 to
 * ~8 KiB, with an occasional 300 KB one that makes a ring grow.
 */
#ifndef CHECKED_MSG_H
#define CHECKED_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct checked_head {
    uint32_t id, seq, len, sum;
};

/* The largest message: a header and 300000 bytes. */
#define CHECKED_MSG_MAX (sizeof(struct checked_head) + 300000)
/* The id of a stop message (a header alone), which no producer has. */
#define CHECKED_STOP_ID 0xffffffffu

/* A byte pattern that depends on (id, seq, i). */
static inline unsigned char checked_pat(uint32_t id, uint32_t seq, size_t i)
{
    uint32_t x = id * 2654435761u ^ seq * 40503u ^ (uint32_t)i * 2246822519u;

    return (unsigned char)(x ^ (x >> 13) ^ (x >> 24));
}

static inline size_t checked_msg_size(uint32_t id, uint32_t seq)
{
    uint32_t x = (id + 1) * 7919u + seq * 104729u;

    return x % 97 == 0 ? 300000 : (x >> 3) % 8192;
}

/* Writes message (id, seq) to buf (CHECKED_MSG_MAX bytes); returns its
 * length. */
static inline size_t checked_msg_make(unsigned char *buf, uint32_t id,
                                      uint32_t seq)
{
    struct checked_head h = { id, seq, (uint32_t)checked_msg_size(id, seq),
                              0 };

    for (size_t i = 0; i < h.len; i++) {
        buf[sizeof(h) + i] = checked_pat(id, seq, i);
        h.sum = h.sum * 31 + buf[sizeof(h) + i];
    }
    memcpy(buf, &h, sizeof(h));
    return sizeof(h) + h.len;
}

/* Checks n bytes got from a queue and copies their header to *h: NULL when
 * the message is whole (or a stop message), else what is wrong with it.
 * max_id bounds the ids a producer may have. */
static inline const char *checked_msg_check(const unsigned char *buf,
                                            size_t n, uint32_t max_id,
                                            struct checked_head *h)
{
    uint32_t sum = 0;

    if (n < sizeof(*h))
        return "short message";
    memcpy(h, buf, sizeof(*h));
    if (h->id == CHECKED_STOP_ID)
        return NULL;
    if (h->id >= max_id || h->len != n - sizeof(*h) ||
        h->len != checked_msg_size(h->id, h->seq))
        return "bad header";
    for (size_t i = 0; i < h->len; i++) {
        if (buf[sizeof(*h) + i] != checked_pat(h->id, h->seq, i))
            return "corrupt bytes";
        sum = sum * 31 + buf[sizeof(*h) + i];
    }
    return sum != h->sum ? "bad sum" : NULL;
}

#endif /* CHECKED_MSG_H */
