# Using a multiprocessing Queue: a producer process puts items, a consumer
# process gets them until it gets None.
from multiprocessing import Process
from multiprocessing import Queue

# producer: adds items, then None to say there are no more
def producer(queue):
    for item in range(5):
        # add an item to the queue
        queue.put(item)
    queue.put(None)

# consumer: reports each item until None
def consumer(queue):
    while True:
        # get an item from the queue
        item = queue.get()
        if item is None:
            break
        print(f'Got {item}')

# entry point
if __name__ == '__main__':
    # created a size limited queue
    queue = Queue(maxsize=100)
    consumer_process = Process(target=consumer, args=(queue,))
    consumer_process.start()
    producer_process = Process(target=producer, args=(queue,))
    producer_process.start()
    producer_process.join()
    consumer_process.join()
    print('Done')
