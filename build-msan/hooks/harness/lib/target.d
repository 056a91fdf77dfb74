build-msan/hooks/harness/lib/target.o: harness/lib/target.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
