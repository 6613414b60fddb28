"""
Times the broker's own work per queue message, in one process, with no
sockets to the clients: producers and consumers are sessions of the
in-memory harness, so the figure is stompd's parsing, dispatch and encoding
alone, steady from run to run, for comparing one change of the message path
with another.

    python benchmarks/dispatch.py --messages 200000 --ack client-individual
    python benchmarks/dispatch.py --ack auto
    python benchmarks/dispatch.py --redis redis://127.0.0.1:6379/0 --messages 40000

With C{--redis}, the broker stores in that Redis (its keys under a fresh
prefix, deleted afterwards) and runs on the real reactor, which waits for
Redis's answers between passes; the figure then includes the Redis client's
work in this process, and leaves out redis-server's own.

Every message is checked to arrive exactly once.
"""

import argparse
import os
import re
import sys
import time

from stompd.tap import collect_less
from stompd.testing.harness import FakeClient, make_broker

_ACK_ID = re.compile(rb"\nack:([^\n]*)\n")
_BODY = re.compile(rb"\n\n(p\d+:\d+)\x00")
# A run on Redis that takes longer than this has stalled.
_REDIS_TIME_LIMIT = 120.0


class Load:
    """
    The producers and consumers of one run, advanced one pass at a time.
    """

    def __init__(self, broker, messages: int, producers: int, consumers: int, prefetch: int, ack: str, chunk: int):
        self.destination = "/queue/bench.dispatch.%s" % os.urandom(4).hex()
        self.ack = ack
        self.chunk = chunk
        self.subscribers = []
        for index in range(consumers):
            client = FakeClient(broker)
            client.connect()
            client.send(
                "SUBSCRIBE",
                {"id": str(index), "destination": self.destination, "ack": ack, "prefetch-count": str(prefetch)},
            )
            self.subscribers.append(client)
        self.senders = []
        for index in range(producers):
            client = FakeClient(broker)
            client.connect()
            self.senders.append(client)
        self.per_producer = messages // producers
        self.expected = self.per_producer * producers
        self.seen: set = set()
        self.duplicates = 0
        self.sent = [0] * producers

    @property
    def done(self) -> bool:
        return len(self.seen) >= self.expected

    @property
    def all_sent(self) -> bool:
        return all(count == self.per_producer for count in self.sent)

    def step(self) -> bool:
        """
        One pass: each producer sends a chunk, each consumer takes what it
        got and acknowledges it. Whether any consumer got anything.
        """
        destination = self.destination.encode()
        for index, client in enumerate(self.senders):
            first = self.sent[index]
            last = min(first + self.chunk, self.per_producer)
            if first == last:
                continue
            frames = []
            for sequence in range(first, last):
                receipt = b"receipt:r%d\n" % sequence if sequence == last - 1 else b""
                body = b"p%d:%d" % (index, sequence)
                frames.append(
                    b"SEND\ndestination:%s\ncontent-length:%d\n%s\n%s\x00" % (destination, len(body), receipt, body)
                )
            self.sent[index] = last
            client.send_bytes(b"".join(frames))
            client.received()
        progressed = False
        for client in self.subscribers:
            data = client.received()
            if not data:
                continue
            progressed = True
            for body in _BODY.findall(data):
                if body in self.seen:
                    self.duplicates += 1
                self.seen.add(body)
            if self.ack != "auto":
                client.send_bytes(b"".join(b"ACK\nid:%s\n\n\x00" % ack_id for ack_id in _ACK_ID.findall(data)))
        return progressed

    def result(self, cpu_s: float) -> dict:
        return {"messages": len(self.seen), "duplicates": self.duplicates, "cpu_s": cpu_s, "rate": len(self.seen) / cpu_s}


def run(messages: int, producers: int, consumers: int, prefetch: int, ack: str, chunk: int) -> dict:
    broker = make_broker()
    broker.startService()
    load = Load(broker, messages, producers, consumers, prefetch, ack, chunk)
    started = time.process_time()
    while not load.done:
        if not load.step() and load.all_sent:
            raise SystemExit(f"stalled with {len(load.seen)} of {load.expected} messages consumed")
    return load.result(time.process_time() - started)


def run_on_redis(url: str, rounds: int, *options) -> list[dict]:
    """
    C{rounds} runs of L{Load} on a broker storing in the Redis at C{url},
    each with a store of its own under a fresh key prefix.
    """
    from twisted.internet import reactor, task
    from twisted.internet.defer import ensureDeferred

    from stompd.config import Config
    from stompd.storage.redis import RedisSettings, RedisStore

    results: list = []
    failed: list = []

    async def one_round() -> dict:
        prefix = "stompd-bench-%s:" % os.urandom(4).hex()
        store = RedisStore(RedisSettings(url=url, key_prefix=prefix), "bench", reactor)
        broker = make_broker(Config(), store=store, clock=reactor)
        await broker.startService()
        load = Load(broker, *options)
        started = time.process_time()
        deadline = time.monotonic() + _REDIS_TIME_LIMIT
        while not load.done:
            if time.monotonic() > deadline:
                raise SystemExit(f"stalled with {len(load.seen)} of {load.expected} messages consumed")
            load.step()
            # Redis's answers come in while the reactor runs.
            await task.deferLater(reactor, 0, lambda: None)
        result = load.result(time.process_time() - started)
        await store.delete(load.destination)
        await broker.stopService()
        return result

    async def drive() -> None:
        try:
            for _ in range(rounds):
                results.append(await one_round())
        except BaseException as e:
            failed.append(e)
        finally:
            reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(drive()))
    reactor.run()
    if failed:
        raise failed[0]
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=50, help="SEND frames per read of a producer")
    parser.add_argument("--ack", default="client-individual", choices=["auto", "client", "client-individual"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", metavar="URL", help="store in this Redis (redis://host:port/db) instead of memory")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one round instead")
    parser.add_argument("--lines", type=int, default=45, help="how many functions the profile shows")
    parser.add_argument("--sort", default="tottime", help="the profile's order: tottime or cumulative")
    args = parser.parse_args(argv)
    # As the twistd plugin does once the broker runs.
    collect_less()
    options = (args.messages, args.producers, args.consumers, args.prefetch, args.ack, args.chunk)
    if args.redis:
        rounds = lambda count: run_on_redis(args.redis, count, *options)  # noqa: E731
    else:
        rounds = lambda count: [run(*options) for _ in range(count)]  # noqa: E731
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(rounds, 1)
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.lines)
        return
    for round_number, result in enumerate(rounds(args.rounds)):
        if result["duplicates"]:
            raise SystemExit(f"{result['duplicates']} messages arrived twice")
        print(
            f"round {round_number + 1}: {result['messages']:,} messages, ack {args.ack}"
            f"{', Redis' if args.redis else ''}: "
            f"{result['cpu_s']:.2f} s CPU = {result['rate']:,.0f} msgs/s, {1e6 / result['rate']:.1f} us per message"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
