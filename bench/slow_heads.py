#!/usr/bin/env python3
"""Slow heads: opens N connections to 127.0.0.1:PORT, sends each SIZE bytes of a request head
that never ends, waits, then prints the server process's VmRSS and how many connections it still
holds open, and closes them all. Used by bench/run.sh (not a test).

usage: slow_heads.py PORT N SIZE SERVER_PID [WAIT_SECONDS]
prints: rss_kb=R open=O refused=F
"""
import resource
import select
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    port, n, size, pid = (int(a) for a in sys.argv[1:5])
    wait = float(sys.argv[5]) if len(sys.argv) > 5 else 2.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    # Fields of 1,000 bytes: every field fits nginx's 8 KiB large header buffers.
    head = b"GET / HTTP/1.1\r\nHost: bench.example.com\r\n"
    field = b"x-pad: " + b"a" * 991 + b"\r\n"
    while len(head) + len(field) <= size:
        head += field
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(head)
        except OSError:
            pass  # refused (answered and closed) while sending: counted below
        socks.append(s)
    time.sleep(wait)
    rss = rss_kb(pid)
    # A connection the server answered (503) or closed is readable; one still waiting is not.
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLHUP)
    ready = {fd for fd, _ in poller.poll(0)}
    open_ = sum(1 for s in socks if s.fileno() not in ready)
    for s in socks:
        s.close()
    print(f"rss_kb={rss} open={open_} refused={n - open_}")


if __name__ == "__main__":
    main()
