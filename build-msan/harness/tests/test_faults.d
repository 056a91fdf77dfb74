build-msan/harness/tests/test_faults.o: harness/tests/test_faults.c \
  harness/tests/check.h harness/include/mp.h harness/lib/internal.h \
  harness/lib/test_hooks.h

harness/tests/check.h:

harness/include/mp.h:

harness/lib/internal.h:

harness/lib/test_hooks.h:
