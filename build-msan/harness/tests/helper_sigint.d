build-msan/harness/tests/helper_sigint.o: harness/tests/helper_sigint.c \
  harness/include/mp.h

harness/include/mp.h:
