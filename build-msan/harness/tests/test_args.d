build-msan/harness/tests/test_args.o: harness/tests/test_args.c \
  harness/tests/check.h harness/include/mp.h harness/lib/internal.h

harness/tests/check.h:

harness/include/mp.h:

harness/lib/internal.h:
