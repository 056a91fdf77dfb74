build-msan/hooks/harness/lib/queue.o: harness/lib/queue.c \
  harness/lib/internal.h harness/include/mp.h harness/lib/test_hooks.h

harness/lib/internal.h:

harness/include/mp.h:

harness/lib/test_hooks.h:
