build-msan/harness/tests/test_connection.o: \
  harness/tests/test_connection.c harness/tests/check.h \
  harness/include/mp.h

harness/tests/check.h:

harness/include/mp.h:
