"""
Times the broker's own work per queue message, in one process, with no
sockets: producers and consumers are sessions of the in-memory harness, so
the figure is stompd's parsing, dispatch and encoding alone, steady from run
to run, for comparing one change of the dispatch path with another.

    python benchmarks/dispatch.py --messages 200000 --ack client-individual
    python benchmarks/dispatch.py --ack auto

Every message is checked to arrive exactly once.
"""

import argparse
import re
import sys
import time

from stompd.testing.harness import FakeClient, make_broker

_ACK_ID = re.compile(rb"\nack:([^\n]*)\n")
_BODY = re.compile(rb"\n\n(p\d+:\d+)\x00")


def run(messages: int, producers: int, consumers: int, prefetch: int, ack: str, chunk: int) -> dict:
    broker = make_broker()
    broker.startService()
    destination = "/queue/bench.dispatch"
    subscribers = []
    for index in range(consumers):
        client = FakeClient(broker)
        client.connect()
        client.send("SUBSCRIBE", {"id": str(index), "destination": destination, "ack": ack, "prefetch-count": str(prefetch)})
        client.received()
        subscribers.append(client)
    senders = []
    for index in range(producers):
        client = FakeClient(broker)
        client.connect()
        senders.append(client)
    per_producer = messages // producers
    seen = set()
    duplicates = 0
    sent = [0] * producers
    started = time.process_time()
    while len(seen) < per_producer * producers:
        for index, client in enumerate(senders):
            first = sent[index]
            last = min(first + chunk, per_producer)
            if first == last:
                continue
            frames = []
            for sequence in range(first, last):
                receipt = b"receipt:r%d\n" % sequence if sequence == last - 1 else b""
                body = b"p%d:%d" % (index, sequence)
                frames.append(
                    b"SEND\ndestination:%s\ncontent-length:%d\n%s\n%s\x00"
                    % (destination.encode(), len(body), receipt, body)
                )
            sent[index] = last
            client.send_bytes(b"".join(frames))
            client.received()
        progressed = False
        for client in subscribers:
            data = client.received()
            if not data:
                continue
            progressed = True
            for body in _BODY.findall(data):
                if body in seen:
                    duplicates += 1
                seen.add(body)
            if ack != "auto":
                client.send_bytes(b"".join(b"ACK\nid:%s\n\n\x00" % ack_id for ack_id in _ACK_ID.findall(data)))
        if not progressed and all(count == per_producer for count in sent):
            raise SystemExit(f"stalled with {len(seen)} of {per_producer * producers} messages consumed")
    elapsed = time.process_time() - started
    return {"messages": len(seen), "duplicates": duplicates, "cpu_s": elapsed, "rate": len(seen) / elapsed}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=50, help="SEND frames per read of a producer")
    parser.add_argument("--ack", default="client-individual", choices=["auto", "client", "client-individual"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one round instead")
    parser.add_argument("--lines", type=int, default=45, help="how many functions the profile shows")
    parser.add_argument("--sort", default="tottime", help="the profile's order: tottime or cumulative")
    args = parser.parse_args(argv)
    options = (args.messages, args.producers, args.consumers, args.prefetch, args.ack, args.chunk)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(run, *options)
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.lines)
        return
    for round_number in range(args.rounds):
        result = run(*options)
        if result["duplicates"]:
            raise SystemExit(f"{result['duplicates']} messages arrived twice")
        print(
            f"round {round_number + 1}: {result['messages']:,} messages, ack {args.ack}: "
            f"{result['cpu_s']:.2f} s CPU = {result['rate']:,.0f} msgs/s, {1e6 / result['rate']:.1f} us per message"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
