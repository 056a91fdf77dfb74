build-msan/harness/lib/args.o: harness/lib/args.c harness/lib/internal.h \
  harness/include/mp.h

harness/lib/internal.h:

harness/include/mp.h:
