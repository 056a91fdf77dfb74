build-msan/harness/lib/wire.o: harness/lib/wire.c harness/lib/internal.h \
  harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
