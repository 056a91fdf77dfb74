# Checking process state: is_alive(), pid and exitcode around start() and
# join().  The pid differs from run to run: it is printed as <pid>.
import multiprocessing
import time

def worker():
    time.sleep(2)

if __name__ == "__main__":
    p = multiprocessing.Process(target=worker)

    print(f"is_alive() before start: {p.is_alive()}") # False

    p.start()
    print(f"is_alive() after start: {p.is_alive()}") # True
    print(f"pid: {'<pid>' if p.pid else None}") # OS process ID

    p.join()
    print(f"is_alive() after join: {p.is_alive()}") # False
    print(f"exitcode: {p.exitcode}") # 0 (success)
