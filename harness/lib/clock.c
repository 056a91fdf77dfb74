/*
 * clock.c - the monotonic clock deadlines are measured on (CPython:
 * time.monotonic() in connection.wait()).
 */
#include <time.h>

#include "internal.h"

double mp__now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
