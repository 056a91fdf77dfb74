build-msan/harness/tests/test_context.o: harness/tests/test_context.c \
  harness/tests/check.h harness/include/mp.h

harness/tests/check.h:

harness/include/mp.h:
