# Keyword arguments with kwargs.
import multiprocessing

def greet(name, greeting="Hello"):
    print(f"{greeting}, {name}!")

if __name__ == "__main__":
    p = multiprocessing.Process(
        target=greet,
        args=("Alice",),
        kwargs={"greeting": "Hi"}
    )
    p.start()
    p.join()
