# Running multiple processes.  Each child's line would come out in whatever
# order the children run, so each sends it to the parent, which prints them
# sorted.
import multiprocessing

def say_hello(name, q):
    q.put(f"Hello from {name}!")

if __name__ == "__main__":
    names = ["Lucia", "Cherish", "Stephen", "Mary"]
    q = multiprocessing.Queue()
    processes = []
    for name in names:
        p = multiprocessing.Process(target=say_hello, args=(name, q))
        p.start()
        processes.append(p)
    for p in processes:
        p.join()
    for line in sorted(q.get() for _ in names):
        print(line)
