#!/usr/bin/env python3
"""Open many idle STOMP connections to one broker; report the rate and the broker's memory.

    python benchmarks/connections.py --port 61613 --count 50000 --pid BROKER_PID
    python benchmarks/connections.py --port 61663 --count 50000 --pid NODE1 --pid NODE2 ...

Worker processes open ``--count`` connections in all, each a TCP connect,
a STOMP 1.2 CONNECT (``heart-beat:0,0``) and its CONNECTED, keeping up to
``--in-flight`` handshakes going at once per worker.  Connections come from
several loopback source addresses (127.0.0.1 .. 127.0.0.N, ``--sources``),
since one source address has fewer ephemeral ports than 50,000
connections need.  Once all are open they are held for ``--hold``
seconds, checked to be still open, and closed.

Reported:

- **connections/s**: connections whose CONNECTED arrived / time from the
  first connect to the last CONNECTED.
- **broker RSS per connection**: with ``--pid``, the growth of the broker's
  ``VmRSS`` (``/proc/PID/status``) from before the first connection to
  when all are open, divided by the count.  Run it first on a fresh broker
  process: memory a process once took is not always given back.  A broker
  of several processes (stompd nodes sharing one listening socket) gets a
  ``--pid`` for each; their growth is added up.

The fd limit of this process is raised to its hard limit; the broker's must
allow the count too (``ulimit -n`` before starting it; stompd under systemd
has ``LimitNOFILE``).  Everything is bounded by ``--duration-limit``.
Loopback only.
"""

import argparse
import errno
import json
import multiprocessing
import resource
import selectors
import socket
import sys
import time

CONNECT = b"CONNECT\naccept-version:1.2\nhost:%s\nlogin:%s\npasscode:%s\nheart-beat:0,0\n\n\x00"


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)


def total_rss(pids):
    """The RSS of the processes ``pids`` added up, or None for none."""
    return sum(rss_bytes(pid) for pid in pids) if pids else None


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_connections(index, opts, results, go, done):
    """One worker: open its share, report, hold until told, check, close."""
    count = opts["count"]
    frame = CONNECT % (opts["vhost"].encode(), opts["login"].encode(), opts["passcode"].encode())
    sources = ["127.0.0.%d" % (1 + (index + n) % opts["sources"]) for n in range(opts["sources"])]
    selector = selectors.DefaultSelector()
    opened, pending, failures = [], 0, 0
    started = next_source = 0
    deadline = time.monotonic() + opts["duration_limit"]
    go.wait()
    first = time.monotonic()
    buffers = {}
    while len(opened) + failures < count:
        if time.monotonic() > deadline:
            results.put((index, {"error": "duration limit: %d of %d open" % (len(opened), count)}))
            return
        while pending < opts["in_flight"] and started < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.bind((sources[next_source % len(sources)], 0))
            next_source += 1
            error = sock.connect_ex((opts["host"], opts["port"]))
            if error not in (0, errno.EINPROGRESS):
                sock.close()
                failures += 1
                started += 1
                continue
            selector.register(sock, selectors.EVENT_WRITE)
            buffers[sock] = b""
            pending += 1
            started += 1
        for key, events in selector.select(timeout=1.0):
            sock = key.fileobj
            if events & selectors.EVENT_WRITE:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    selector.unregister(sock)
                    sock.close()
                    pending -= 1
                    failures += 1
                    continue
                sock.send(frame)
                selector.modify(sock, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(4096)
            except OSError:
                # Reset: the broker ran out of something (its fd limit).
                data = b""
            answer = buffers[sock] = buffers[sock] + data
            if data and b"\x00" not in answer:
                continue
            selector.unregister(sock)
            del buffers[sock]
            pending -= 1
            if answer.lstrip(b"\r\n").startswith(b"CONNECTED\n"):
                opened.append(sock)
            else:
                sock.close()
                failures += 1
    last = time.monotonic()
    results.put((index, {"opened": len(opened), "failed": failures, "first": first, "last": last}))
    done.wait(opts["duration_limit"] + opts["hold"])
    # Still open? A closed connection is readable with b"" (or an ERROR).
    for sock in opened:
        selector.register(sock, selectors.EVENT_READ)
    closed = sum(1 for key, _ in selector.select(timeout=0.5))
    for sock in opened:
        sock.close()
    results.put((index, {"closed_by_broker": closed}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=61613)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--in-flight", type=int, default=100, help="handshakes at once per process (default 100)")
    p.add_argument("--sources", type=int, default=8, help="loopback source addresses (default 8)")
    p.add_argument("--hold", type=float, default=5.0, help="seconds to hold them open (default 5)")
    p.add_argument("--pid", type=int, action="append", default=[],
                   help="the broker's process id, for its RSS; once per process of a broker of several")
    p.add_argument("--login", default="guest")
    p.add_argument("--passcode", default="guest")
    p.add_argument("--vhost", default="/")
    p.add_argument("--duration-limit", type=float, default=120.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if not args.host.startswith("127."):
        p.error("loopback only")
    per_process = [args.count // args.processes + (i < args.count % args.processes) for i in range(args.processes)]
    limit = raise_fd_limit(max(per_process) + 100)
    if limit < max(per_process) + 100:
        p.error("fd limit %d is too low for %d connections a process" % (limit, max(per_process)))
    wall_started = time.monotonic()
    ctx = multiprocessing.get_context("fork")
    results, go, done = ctx.Queue(), ctx.Event(), ctx.Event()
    before = total_rss(args.pid)
    workers = []
    for index, count in enumerate(per_process):
        opts = dict(vars(args), count=count)
        worker = ctx.Process(target=open_connections, args=(index, opts, results, go, done), daemon=True)
        worker.start()
        workers.append(worker)
    go.set()
    opened = {}
    try:
        while len(opened) < len(workers):
            index, result = results.get(timeout=args.duration_limit + 30)
            if "error" in result:
                raise SystemExit("worker %d: %s" % (index, result["error"]))
            opened[index] = result
        total = sum(r["opened"] for r in opened.values())
        failed = sum(r["failed"] for r in opened.values())
        elapsed = max(r["last"] for r in opened.values()) - min(r["first"] for r in opened.values())
        time.sleep(1.0)
        after = total_rss(args.pid)
        time.sleep(args.hold)
        done.set()
        closed = 0
        for _ in workers:
            closed += results.get(timeout=30)[1]["closed_by_broker"]
    finally:
        done.set()
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()
    result = {
        "scenario": "connections", "requested": args.count, "opened": total, "failed": failed,
        "closed_by_broker_while_held": closed, "elapsed_s": round(elapsed, 3),
        "connections_per_s": round(total / max(elapsed, 1e-9), 1), "held_s": args.hold,
        "wall_s": round(time.monotonic() - wall_started, 1),
        "ok": total == args.count and not closed,
    }
    if before is not None:
        result["rss_before"] = before
        result["rss_after"] = after
        result["rss_bytes_per_connection"] = round((after - before) / max(total, 1), 1)
    text = sys.stderr if args.json else sys.stdout
    print("connections: %d of %d open (%d failed) in %.2f s = %.0f connections/s; held %g s, %d closed by the broker"
          % (total, args.count, failed, elapsed, result["connections_per_s"], args.hold, closed), file=text)
    if before is not None:
        print("  broker RSS %.1f MiB -> %.1f MiB: %.0f bytes per connection"
              % (before / 2**20, after / 2**20, result["rss_bytes_per_connection"]), file=text)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
