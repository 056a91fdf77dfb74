# A target that raises: the child prints the traceback on stderr and its
# exit code is 1.
from multiprocessing import Process

# Create a new process with a specific function that has an error
# to execute with args.
def example(args):
    split_args = list(args.split())
    # "name" variable is not in the function namespace - should raise error
    return name

if __name__ == '__main__':
    # New process
    process = Process(target=example, args=("Hi",))

    # Running the new process
    process.start()
    process.join()
    print(process.exitcode)
