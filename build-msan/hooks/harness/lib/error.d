build-msan/hooks/harness/lib/error.o: harness/lib/error.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
