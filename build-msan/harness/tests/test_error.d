build-msan/harness/tests/test_error.o: harness/tests/test_error.c \
  harness/tests/check.h harness/include/mp.h

harness/tests/check.h:

harness/include/mp.h:
