build-msan/harness/lib/process.o: harness/lib/process.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
