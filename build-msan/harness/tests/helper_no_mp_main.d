build-msan/harness/tests/helper_no_mp_main.o: \
  harness/tests/helper_no_mp_main.c harness/include/mp.h

harness/include/mp.h:
