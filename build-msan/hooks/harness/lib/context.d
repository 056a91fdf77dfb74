build-msan/hooks/harness/lib/context.o: harness/lib/context.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
