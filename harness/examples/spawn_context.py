# Spawning vs forking: a process from the "spawn" context.
import multiprocessing

def say_hello(name):
    print(f"Hello from {name}!")

if __name__ == '__main__':
    ctx = multiprocessing.get_context("spawn")
    p = ctx.Process(target=say_hello, args=("Samantha",))
    p.start()
    p.join()
