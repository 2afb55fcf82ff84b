# py_threads.py: an ordinary threaded Python program (threading + socket +
# queue, nothing greenring-specific) whose stdout is deterministic. Under the
# shim every Python thread is a green thread and the GIL's mutex/condvar
# waits go through the shim's sync, so this exercises both at once.
#  - a TCP server: an accept thread feeds connections to a queue.Queue served
#    by a pool of 8 worker threads; 64 client threads each send 20 lines and
#    check the upper-cased echo;
#  - threading.Condition producer/consumer, Semaphore bounding concurrency,
#    Barrier, Event, Lock-protected counter;
#  - 200 threads doing time.sleep(0.1) finish in well under 2 s.
import queue
import socket
import threading
import time

CLIENTS, LINES, POOL = 64, 20, 8


def handle(conn):
    with conn, conn.makefile("rwb") as f:
        for line in f:
            f.write(line.upper())
            f.flush()


def server(listener, conns):
    for _ in range(CLIENTS):
        conn, _ = listener.accept()
        conns.put(conn)
    for _ in range(POOL):
        conns.put(None)


def pool_worker(conns, served):
    while (conn := conns.get()) is not None:
        handle(conn)
        with served[0]:
            served[1] += 1


def client(port, idx, results):
    with socket.create_connection(("127.0.0.1", port)) as s, s.makefile("rwb") as f:
        ok = 0
        for i in range(LINES):
            msg = f"client {idx} line {i} payload {'x' * (idx * 7 % 300)}\n".encode()
            f.write(msg)
            f.flush()
            if f.readline() == msg.upper():
                ok += 1
        results[idx] = ok


def echo_test():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    conns = queue.Queue()
    served = [threading.Lock(), 0]
    threads = [threading.Thread(target=server, args=(listener, conns))]
    threads += [threading.Thread(target=pool_worker, args=(conns, served)) for _ in range(POOL)]
    results = [0] * CLIENTS
    threads += [threading.Thread(target=client, args=(port, i, results)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listener.close()
    print(f"echo: connections served {served[1]}, lines verified {sum(results)} of {CLIENTS * LINES}")


def sync_test():
    cond = threading.Condition()
    items, done = [], [0]
    total = [0]

    def producer(base):
        for i in range(1000):
            with cond:
                items.append(base + i)
                cond.notify()
        with cond:
            done[0] += 1
            cond.notify_all()

    def consumer():
        while True:
            with cond:
                while not items and done[0] < 4:
                    cond.wait()
                if not items:
                    return
                v = items.pop()
            with lock:
                total[0] += v

    lock = threading.Lock()
    ts = [threading.Thread(target=producer, args=(p * 10000,)) for p in range(4)]
    ts += [threading.Thread(target=consumer) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    want = sum(p * 10000 + i for p in range(4) for i in range(1000))
    print(f"condition producer/consumer sum correct: {total[0] == want}")

    sem = threading.Semaphore(3)
    inside, peak = [0], [0]
    barrier = threading.Barrier(12)
    serial = [0]
    event = threading.Event()

    def bounded():
        for _ in range(50):
            with sem:
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                time.sleep(0)
                with lock:
                    inside[0] -= 1
        if barrier.wait() == 0:
            with lock:
                serial[0] += 1
        event.wait()

    ts = [threading.Thread(target=bounded) for _ in range(12)]
    for t in ts:
        t.start()
    time.sleep(0.05)
    event.set()
    for t in ts:
        t.join()
    print(f"semaphore peak <= 3: {peak[0] <= 3}, barrier serial threads: {serial[0]}")


def sleep_test():
    t0 = time.monotonic()
    ts = [threading.Thread(target=time.sleep, args=(0.1,)) for _ in range(200)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(f"200 sleeping threads concurrent: {time.monotonic() - t0 < 2.0}")


echo_test()
sync_test()
sleep_test()
