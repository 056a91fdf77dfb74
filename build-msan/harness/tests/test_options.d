build-msan/harness/tests/test_options.o: harness/tests/test_options.c \
  harness/tests/check.h harness/include/mp.h harness/lib/internal.h

harness/tests/check.h:

harness/include/mp.h:

harness/lib/internal.h:
