# Getting return values from processes: through a Queue.
import multiprocessing

def double_number(n, q):
    q.put(n * 2)

if __name__ == "__main__":
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=double_number, args=(10, q))
    p.start()
    p.join()
    result = q.get()
    print(f"Doubled number: {result}")
