# Process name and identification.
import multiprocessing

def worker():
    print(f"Running in process: {multiprocessing.current_process().name}")

if __name__ == "__main__":
    p = multiprocessing.Process(target=worker, name="MyWorker")
    p.start()
    p.join()
