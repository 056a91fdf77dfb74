# SuperFastPython.com
# example of restarting a process
from time import sleep
from multiprocessing import Process

# custom target function
def task():
    # block for a moment
    sleep(1)
    # report a message
    print('Hello from the new process')

# entry point
if __name__ == '__main__':
    # create a new process
    process = Process(target=task)
    # start the process
    process.start()
    # wait for the process to finish
    process.join()
    # try and start the process again
    process.start()
