build-msan/harness/tests/test_threads.o: harness/tests/test_threads.c \
  harness/tests/check.h harness/include/mp.h

harness/tests/check.h:

harness/include/mp.h:
