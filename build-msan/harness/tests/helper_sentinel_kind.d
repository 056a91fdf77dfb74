build-msan/harness/tests/helper_sentinel_kind.o: \
  harness/tests/helper_sentinel_kind.c harness/include/mp.h

harness/include/mp.h:
