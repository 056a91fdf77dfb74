# Daemon vs. non-daemon: the main process ends its daemonic child as it
# exits.  Under a pipe, the daemon's buffered lines die with it.
import multiprocessing
import time

def long_running():
    for i in range(10):
        print(f"Iteration {i}")
        time.sleep(1)

if __name__ == "__main__":
    # Non-daemon: main waits for this to finish
    p_normal = multiprocessing.Process(target=long_running, daemon=False)

    # Daemon: main exits immediately, terminating this process
    p_daemon = multiprocessing.Process(target=long_running, daemon=True)

    p_daemon.start()
    # Main exits after 0.1s; daemon process is killed
    time.sleep(0.1)
    print("Main exiting (daemon is terminated)")
