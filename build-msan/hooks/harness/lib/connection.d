build-msan/hooks/harness/lib/connection.o: harness/lib/connection.c \
  harness/lib/internal.h harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
