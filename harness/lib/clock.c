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

int mp__ms_ceil(double seconds)
{
    double ms = seconds * 1000;
    int whole;

    if (!(ms > 0))
        return 0;
    if (ms > 2e9)
        return 2000000000;
    whole = (int)ms;
    return whole + (ms > (double)whole); /* never wake before the deadline */
}
