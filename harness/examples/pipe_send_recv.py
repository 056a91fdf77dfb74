# Using a multiprocessing Pipe: the child sends, the parent polls and
# receives.
from multiprocessing import Process
from multiprocessing import Pipe

# function executed in a new process
def task(conn2):
    # send an object
    conn2.send('Hello world')

# entry point
if __name__ == '__main__':
    # create a pipe
    conn1, conn2 = Pipe()
    process = Process(target=task, args=(conn2,))
    process.start()
    # check if there is data to receive
    if conn1.poll(timeout=5):
        # receive an object
        object = conn1.recv()
        print(object)
    process.join()
