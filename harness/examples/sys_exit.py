# How do you exit a process?  sys.exit() in the child sets its exitcode.
import sys
from multiprocessing import Process

# function executed in a new process
def task():
    # exit with error
    sys.exit(1)

# entry point
if __name__ == '__main__':
    process = Process(target=task)
    process.start()
    process.join()
    print(process.exitcode)
