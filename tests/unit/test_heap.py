"""
The C heap keeps large bodies' buffers for reuse (L{stompd.heap}).
"""

import subprocess
import sys
import textwrap

import pytest

# In a process of its own, so that the heap starts as a broker's does: 1 MiB
# bodies received into their own buffers (as a transport receives them:
# straight into FrameParser.body_buffer), kept until four have come and then
# all freed together, as a burst of them is delivered; counting the pages
# the kernel had to fault in for the second hundred of them.
_RECEIVE_BODIES = textwrap.dedent(
    """
    import resource, sys
    from stompd.codec.limits import Limits
    from stompd.codec.parser import FrameParser
    from stompd.heap import keep_freed_buffers

    if sys.argv[1] == "tuned" and not keep_freed_buffers():
        print("no mallopt")
        sys.exit()
    size = 1 << 20
    head = b"SEND\\ndestination:/queue/a\\ncontent-length:%d\\n\\n" % size
    chunk = bytes(range(256)) * 256
    parser = FrameParser(Limits(max_body_size=2 * size, max_frame_size=4 * size))
    alive = []

    def receive():
        parser.feed(head + chunk)
        assert parser.next_frame() is None
        while (into := parser.body_buffer()) is not None:
            count = min(len(into), len(chunk))
            into[:count] = chunk[:count]
            parser.body_filled(count)
        parser.feed(b"\\x00")
        frame = parser.next_frame()
        assert len(frame.body) == size
        alive.append(frame)
        if len(alive) == 4:
            alive.clear()

    for _ in range(100):
        receive()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        receive()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _pages_faulted(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _RECEIVE_BODIES, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if done.stdout.strip() == "no mallopt":
        pytest.skip("the C library has no mallopt")
    return int(done.stdout)


def test_large_bodies_reuse_freed_memory():
    # 100 bodies are 25,600 pages: a body's buffer comes from memory a
    # freed one left, not from pages faulted in and cleared for it.
    assert _pages_faulted("tuned") < 256


def test_without_it_bodies_are_faulted_in():
    # What the setting spares, so that the test above can fail.
    assert _pages_faulted("default") > 2560
