build-msan/harness/tests/check.o: harness/tests/check.c \
  harness/tests/check.h harness/include/mp.h

harness/tests/check.h:

harness/include/mp.h:
