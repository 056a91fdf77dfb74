# Process basics: a target with arguments, start() and join().
import multiprocessing
import time

def worker(name, duration):
    """A simple worker function that sleeps and prints."""
    print(f"[{name}] Starting")
    time.sleep(duration)
    print(f"[{name}] Done after {duration}s")

if __name__ == "__main__":
    # Create a process targeting the worker function
    p = multiprocessing.Process(target=worker, args=("Worker-1", 2))

    # Start the process (does not block)
    p.start()

    # Wait for the process to complete
    p.join()

    print("Main process finished")
