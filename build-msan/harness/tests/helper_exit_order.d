build-msan/harness/tests/helper_exit_order.o: \
  harness/tests/helper_exit_order.c harness/include/mp.h

harness/include/mp.h:
