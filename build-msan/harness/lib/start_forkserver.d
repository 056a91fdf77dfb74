build-msan/harness/lib/start_forkserver.o: harness/lib/start_forkserver.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
