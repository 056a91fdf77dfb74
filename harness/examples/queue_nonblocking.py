# A size limited Queue: put and get without blocking or with a timeout,
# qsize(), full() and empty().
from queue import Empty, Full
from multiprocessing import Queue

# entry point
if __name__ == '__main__':
    # created a size limited queue
    queue = Queue(maxsize=2)
    # add items to the queue
    queue.put('A')
    queue.put('B', block=True, timeout=None)
    # check if the queue is full
    if queue.full():
        print('full')
    # add an item to a size limited queue without blocking
    try:
        queue.put_nowait('C')
    except Full:
        print('Full')
    # add an item to a size limited queue with a timeout
    try:
        queue.put('C', timeout=0.1)
    except Full:
        print('Full after the timeout')
    # check the size of the queue
    print(queue.qsize())
    # get items from the queue
    print(queue.get(), queue.get())
    # get an item from the queue without blocking
    try:
        item = queue.get_nowait()
    except Empty:
        print('Empty')
    # get an item from the queue with a timeout
    try:
        item = queue.get(timeout=0.1)
    except Empty:
        print('Empty after the timeout')
    # check if the queue is empty
    if queue.empty():
        print('empty')
