"""
Property tests for the codec: the parser survives any input, and encoding then
parsing gives back the frames, however the bytes are split.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from stompd.codec import SUPPORTED_VERSIONS, Frame, FrameParser, Limits, encode_frame
from stompd.errors import FrameError

SETTINGS = settings(max_examples=200, deadline=None)

COMMANDS = ["SEND", "MESSAGE", "SUBSCRIBE", "ACK", "RECEIPT", "ERROR", "CONNECT", "CONNECTED"]
UNESCAPED_COMMANDS = {"CONNECT", "CONNECTED"}

# Fragments that steer random input into the parser's interesting states.
TOKENS = [
    b"\n", b"\r\n", b"\r", b"\x00", b":", b"\\", b"\\c", b"\\n", b"\\r", b"\\t",
    b"SEND", b"CONNECT", b"content-length:", b"0", b"3", b"12", b"-1",
    b"destination:/queue/a", b"\xc3\xa9", b"\xff",
]

# Characters that need care somewhere, mixed into otherwise random text.
TRICKY = st.sampled_from(["\n", "\r", ":", "\\", "\x00", "é", "☃"])
TEXT = st.lists(st.text(max_size=4) | TRICKY, max_size=6).map("".join)


@st.composite
def small_limits(draw):
    return Limits(
        max_frame_size=draw(st.integers(1, 300)),
        max_body_size=draw(st.integers(1, 200)),
        max_headers=draw(st.integers(1, 6)),
        max_header_line=draw(st.integers(1, 40)),
        max_buffered=draw(st.integers(1, 600)),
    )


@st.composite
def chunked(draw, data):
    """
    Split C{data} at random points.
    """
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def representable(command, version, name, value):
    """
    Whether the encoder can carry this header so that the parser reads back
    the same thing, for this command and version.
    """
    if "\x00" in name or "\x00" in value or name == "content-length":
        return False
    if command in UNESCAPED_COMMANDS or version == "1.0":
        if "\n" in name or ":" in name or "\n" in value or value.endswith("\r"):
            return False
    elif version == "1.1" and value.endswith("\r"):
        return False
    return True


@st.composite
def frames(draw, version):
    command = draw(
        st.sampled_from(COMMANDS)
        | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8)
    )
    pairs = draw(st.lists(st.tuples(TEXT, TEXT), max_size=6))
    headers = {}
    for name, value in pairs:
        if representable(command, version, name, value) and name not in headers:
            headers[name] = value
    body = draw(st.binary(max_size=64) | st.sampled_from([b"", b"\x00", b"a\x00b", b"\n\r\n"]))
    if b"\x00" in body or draw(st.booleans()):
        headers["content-length"] = str(len(body))
    return Frame(command, headers, body)


@st.composite
def streams(draw):
    """
    A version, frames for it, and their encoding with heart-beats between.
    """
    version = draw(st.sampled_from(SUPPORTED_VERSIONS))
    stream_frames = draw(st.lists(frames(version), min_size=1, max_size=5))
    pieces = []
    for frame in stream_frames:
        pieces.append(draw(st.sampled_from([b"", b"", b"\n", b"\r\n", b"\n\r\n\n"])))
        pieces.append(encode_frame(frame, version))
    return version, stream_frames, b"".join(pieces)


@SETTINGS
@given(
    st.data(),
    st.lists(st.binary(max_size=8) | st.sampled_from(TOKENS), max_size=60).map(b"".join),
    st.sampled_from(SUPPORTED_VERSIONS),
    st.none() | small_limits(),
)
def test_any_bytes_raise_only_frame_error(data, raw, version, limits):
    parser = FrameParser() if limits is None else FrameParser(limits)
    parser.version = version
    try:
        for chunk in data.draw(chunked(raw)):
            parser.feed(chunk)
            while (frame := parser.next_frame()) is not None:
                assert isinstance(frame, Frame)
                assert isinstance(frame.body, bytes)
    except FrameError as error:
        assert error.message
        assert error.detail


@SETTINGS
@given(st.data(), st.sampled_from(SUPPORTED_VERSIONS))
def test_round_trip(data, version):
    frame = data.draw(frames(version))
    parser = FrameParser()
    parser.version = version
    parser.feed(encode_frame(frame, version))
    parsed = parser.next_frame()
    assert parsed == frame
    assert list(parsed.headers.items()) == list(frame.headers.items())
    assert parser.next_frame() is None


@SETTINGS
@given(st.data(), streams())
def test_any_split_gives_the_same_frames(data, stream):
    version, expected, encoded = stream
    parser = FrameParser()
    parser.version = version
    parsed = []
    for chunk in data.draw(chunked(encoded)):
        parser.feed(chunk)
        while (frame := parser.next_frame()) is not None:
            parsed.append(frame)
    assert parsed == expected
