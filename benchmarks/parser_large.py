#!/usr/bin/env python3
"""Time stompd's frame parser alone on large bodies arriving in 64 KiB reads.

    python benchmarks/parser_large.py [--sizes 1,4,16,64] [--read 65536]

For each body size (MiB) it feeds one SEND frame, with and without a
``content-length`` header, to a fresh ``FrameParser`` in reads of
``--read`` bytes, as a socket would deliver it, and prints the time and
the time per MiB.  Linear parsing shows as a flat time per MiB; a parser
that rescans or recopies what it already holds grows with the size.
The limits are raised to fit the largest body, as ``[limits]
max-body-size`` would be.
"""

import argparse
import time

from stompd.codec import FrameParser, Limits

MIB = 1024 * 1024


def frame_of(size, content_length):
    body = b"x" * size
    head = b"SEND\ndestination:/queue/large\n"
    if content_length:
        head += b"content-length:%d\n" % size
    return head + b"\n" + body + b"\x00"


def parse_in_reads(data, read, limits):
    """Feed ``data`` in ``read``-byte pieces; return (seconds, body length)."""
    parser = FrameParser(limits)
    pieces = [data[i:i + read] for i in range(0, len(data), read)]
    frames = []
    started = time.perf_counter()
    for piece in pieces:
        parser.feed(piece)
        frame = parser.next_frame()
        if frame is not None:
            frames.append(frame)
    elapsed = time.perf_counter() - started
    (frame,) = frames
    return elapsed, len(frame.body)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,4,16,64", help="body sizes in MiB (default 1,4,16,64)")
    p.add_argument("--read", type=int, default=64 * 1024, help="bytes per read (default 65536)")
    p.add_argument("--repeat", type=int, default=5, help="best of this many runs (default 5)")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    top = max(sizes) * MIB
    limits = Limits(max_body_size=top, max_frame_size=top + MIB, max_buffered=top + 2 * MIB)
    print("body MiB  content-length  seconds  ms per MiB")
    for content_length in (True, False):
        for size in sizes:
            data = frame_of(size * MIB, content_length)
            best = min(parse_in_reads(data, args.read, limits)[0] for _ in range(args.repeat))
            print("%8d  %14s  %7.3f  %10.2f" % (size, "yes" if content_length else "no", best, best * 1000 / size))


if __name__ == "__main__":
    main()
