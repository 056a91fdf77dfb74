build-msan/harness/tests/test_process.o: harness/tests/test_process.c \
  harness/tests/check.h harness/include/mp.h

harness/tests/check.h:

harness/include/mp.h:
