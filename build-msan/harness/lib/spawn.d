build-msan/harness/lib/spawn.o: harness/lib/spawn.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
