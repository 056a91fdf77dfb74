/*
 * helper_no_mp_main.c - a program that forgets to call mp_main(): its spawn
 * and forkserver children run main() again instead of their target.  Used by
 * test_context.c; prints what start() says for each method.
 */
#include <stdio.h>
#include <string.h>

#include "mp.h"

MP_TARGET(nothing) { (void)arg; (void)len; return 0; }

int main(int argc, char **argv)
{
    static const char *const methods[] = { "spawn", "forkserver" };

    (void)argv;
    /* Run again as a child: a real program would do its own work here. */
    if (argc > 1)
        return 0;
    for (int i = 0; i < 2; i++) {
        mp_context *ctx;
        mp_process *p = NULL;
        char line[256];
        int r = mp_get_context(&ctx, methods[i]);

        if (r == 0)
            r = mp_context_process_new(ctx, &p, "nothing", NULL, 0, NULL);
        if (r == 0)
            r = mp_process_start(p);
        mp_format_exception(r, line, sizeof(line));
        printf("%s: %s\n", methods[i], r < 0 ? line : "started");
        mp_process_free(p);
    }
    return 0;
}
