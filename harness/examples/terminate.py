# Terminating a process: exitcode -15 (SIGTERM).  Under a pipe, the
# child's buffered lines die with it.
import multiprocessing
import time

def long_task():
    for i in range(100):
        print(f"Step {i}")
        time.sleep(0.1)

if __name__ == "__main__":
    p = multiprocessing.Process(target=long_task)
    p.start()

    time.sleep(1) # Let it run for ~1 second

    # Forcefully terminate
    p.terminate()
    p.join()

    print(f"Process exitcode: {p.exitcode}") # -15 (SIGTERM)
