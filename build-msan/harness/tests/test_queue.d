build-msan/harness/tests/test_queue.o: harness/tests/test_queue.c \
  harness/tests/check.h harness/include/mp.h harness/tests/checked_msg.h \
  harness/lib/test_hooks.h

harness/tests/check.h:

harness/include/mp.h:

harness/tests/checked_msg.h:

harness/lib/test_hooks.h:
