build-msan/harness/tests/test_signals.o: harness/tests/test_signals.c \
  harness/tests/check.h harness/include/mp.h harness/lib/internal.h

harness/tests/check.h:

harness/include/mp.h:

harness/lib/internal.h:
