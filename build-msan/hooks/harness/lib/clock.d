build-msan/hooks/harness/lib/clock.o: harness/lib/clock.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
