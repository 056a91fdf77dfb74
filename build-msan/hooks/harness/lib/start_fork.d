build-msan/hooks/harness/lib/start_fork.o: harness/lib/start_fork.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
