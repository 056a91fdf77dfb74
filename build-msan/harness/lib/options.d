build-msan/harness/lib/options.o: harness/lib/options.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
