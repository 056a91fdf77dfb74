build-msan/harness/lib/queue.o: harness/lib/queue.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
