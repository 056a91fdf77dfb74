# Process start methods: list them, set one (once only), and start a
# process from each one's context.
import multiprocessing

# function executed in a new process
def task(method):
    print(f'Hello from a {method} child')

# protect the entry point
if __name__ == '__main__':
    # get supported start methods
    methods = multiprocessing.get_all_start_methods()
    print(methods)
    # set the start method
    multiprocessing.set_start_method('spawn')
    # get the current start method
    method = multiprocessing.get_start_method()
    print(method)
    # the start method can be set only once
    try:
        multiprocessing.set_start_method('fork')
    except RuntimeError as e:
        print(f'RuntimeError: {e}')
    for method in methods:
        # get a context configured with a start method
        context = multiprocessing.get_context(method)
        # create a child process via a context
        process = context.Process(target=task, args=(method,))
        process.start()
        process.join()
        print(process.name)
