build-msan/harness/lib/fd.o: harness/lib/fd.c harness/lib/internal.h \
  harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
