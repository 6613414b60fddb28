"""
Tests for L{stompd.codec.parser.FrameParser} and L{stompd.codec.limits.Limits}.
"""

import subprocess
import sys

import pytest

from stompd.codec import Frame, FrameParser, Limits
from stompd.errors import FrameError


def parse(data, version="1.0", limits=None):
    """
    Feed C{data} in one piece and return every complete frame.
    """
    parser = FrameParser() if limits is None else FrameParser(limits)
    parser.version = version
    parser.feed(data)
    return drain(parser)


def drain(parser):
    frames = []
    while (frame := parser.next_frame()) is not None:
        frames.append(frame)
    return frames


def parse_error(data, version="1.0", limits=None):
    """
    Parse C{data} and return the L{FrameError} it must cause.
    """
    with pytest.raises(FrameError) as caught:
        parse(data, version, limits)
    return caught.value


# A stream that uses most of the syntax: heart-beats, CRLF, escapes, NULs in a
# content-length body, a repeated header, UTF-8 and an empty value.
STREAM = (
    b"\n\r\n"
    b"SEND\ndestination:/queue/a\\cb\ncontent-length:5\n\na\x00b\x00c\x00"
    b"\n"
    b"SEND\r\ndestination:/queue/\xc3\xa9\r\nempty:\r\nrepeat:1\r\nrepeat:2\r\n\r\nhello\x00"
    b"\r\n\n"
    b"DISCONNECT\nreceipt:77\n\n\x00"
)
STREAM_FRAMES = [
    Frame("SEND", {"destination": "/queue/a:b", "content-length": "5"}, b"a\x00b\x00c"),
    Frame("SEND", {"destination": "/queue/é", "empty": "", "repeat": "1"}, b"hello"),
    Frame("DISCONNECT", {"receipt": "77"}),
]


class TestFrames:
    def test_simple_frame(self):
        parser = FrameParser()
        parser.feed(b"SEND\ndestination:/queue/a\n\nhello\x00")
        frame = parser.next_frame()
        assert frame == Frame("SEND", {"destination": "/queue/a"}, b"hello")
        assert type(frame.body) is bytes
        assert parser.next_frame() is None

    def test_stream(self):
        assert parse(STREAM, "1.2") == STREAM_FRAMES

    def test_header_order_is_kept(self):
        [frame] = parse(b"SEND\nz:1\na:2\nm:3\n\n\x00")
        assert list(frame.headers.items()) == [("z", "1"), ("a", "2"), ("m", "3")]

    def test_no_headers_no_body(self):
        assert parse(b"DISCONNECT\n\n\x00") == [Frame("DISCONNECT")]

    def test_incomplete_frame(self):
        parser = FrameParser()
        parser.feed(b"SEND\ndestination:/queue/a\n\nhel")
        assert parser.next_frame() is None
        parser.feed(b"lo\x00")
        assert parser.next_frame() == Frame("SEND", {"destination": "/queue/a"}, b"hello")

    def test_empty_parser(self):
        parser = FrameParser()
        assert parser.next_frame() is None
        parser.feed(b"")
        assert parser.next_frame() is None

    def test_many_frames_in_one_feed(self):
        one = b"SEND\ndestination:/queue/a\nn:%d\n\nbody %d\x00"
        data = b"".join(one % (i, i) for i in range(1000))
        frames = parse(data)
        assert len(frames) == 1000
        assert frames[999] == Frame("SEND", {"destination": "/queue/a", "n": "999"}, b"body 999")

    def test_unknown_command_is_returned_as_is(self):
        assert parse(b"FROB\n\n\x00") == [Frame("FROB")]
        assert parse(b"send\n\n\x00") == [Frame("send")]


# A frame whose body is large enough to be received into place, between two
# small ones.
LARGE_BODY = bytes(range(256)) * 1200 + b"\x00end"
LARGE_STREAM = (
    b"SEND\ndestination:/queue/a\n\nbefore\x00\n"
    + b"SEND\ndestination:/queue/a\ncontent-length:%d\n\n" % len(LARGE_BODY)
    + LARGE_BODY
    + b"\x00\r\nSEND\ndestination:/queue/a\n\nafter\x00"
)
LARGE_FRAMES = [
    Frame("SEND", {"destination": "/queue/a"}, b"before"),
    Frame("SEND", {"destination": "/queue/a", "content-length": str(len(LARGE_BODY))}, LARGE_BODY),
    Frame("SEND", {"destination": "/queue/a"}, b"after"),
]


class TestLargeBodies:
    """
    A content-length body still largely to come is received into a buffer
    of its own: the same frames, whatever the splits.
    """

    @pytest.mark.parametrize("chunk", [1000, 4096, 65536, 65537, 300_000])
    def test_in_chunks(self, chunk):
        parser = FrameParser()
        frames = []
        for index in range(0, len(LARGE_STREAM), chunk):
            parser.feed(LARGE_STREAM[index : index + chunk])
            frames += drain(parser)
        assert frames == LARGE_FRAMES

    def test_body_received_into_its_buffer_is_not_copied(self):
        """
        A transport receives the rest of the body straight into
        L{FrameParser.body_buffer}: the frame's body is that buffer, with
        the bytes as sent, and the frames after it come through as usual.
        """
        start = LARGE_STREAM.index(LARGE_BODY)
        parser = FrameParser()
        parser.feed(LARGE_STREAM[: start + 1000])
        assert drain(parser) == LARGE_FRAMES[:1]
        rest = memoryview(LARGE_STREAM)[start + 1000 :]
        into = parser.body_buffer()
        buffer = into.obj
        while into is not None:
            count = min(len(into), 70_000)
            into[:count] = rest[:count]
            rest = rest[count:]
            parser.body_filled(count)
            into = parser.body_buffer()
        parser.feed(bytes(rest))
        frames = drain(parser)
        assert frames == LARGE_FRAMES[1:]
        assert frames[0].body is buffer

    def test_split_around_the_end_of_the_body(self):
        body_end = LARGE_STREAM.index(b"\x00end") + 4
        for split in range(body_end - 3, body_end + 4):
            parser = FrameParser()
            parser.feed(LARGE_STREAM[:100])
            frames = drain(parser)
            parser.feed(LARGE_STREAM[100:split])
            frames += drain(parser)
            parser.feed(LARGE_STREAM[split:])
            frames += drain(parser)
            assert frames == LARGE_FRAMES, split

    def test_each_frame_reports_its_size(self):
        parser = FrameParser()
        parser.feed(LARGE_STREAM[:5000])
        assert parser.next_frame() == LARGE_FRAMES[0]
        assert parser.next_frame() is None
        parser.feed(LARGE_STREAM[5000:])
        assert parser.next_frame() == LARGE_FRAMES[1]
        assert parser.frame_size == LARGE_STREAM.index(b"\x00\r\nSEND") + 1 - LARGE_STREAM.index(b"SEND\ndestination:/queue/a\ncontent")

    def test_headers_follow_a_version_change_while_the_body_comes(self):
        frame = b"SEND\ndestination:/queue/a\\cb\ncontent-length:100000\n\n" + b"x" * 100000 + b"\x00"
        parser = FrameParser()
        parser.feed(frame[:1000])
        assert parser.next_frame() is None
        parser.version = "1.2"
        parser.feed(frame[1000:])
        assert parser.next_frame().headers["destination"] == "/queue/a:b"

    def test_a_missing_nul_after_the_body_is_an_error(self):
        frame = b"SEND\ncontent-length:100000\n\n" + b"x" * 100001
        parser = FrameParser()
        parser.feed(frame[:1000])
        parser.next_frame()
        parser.feed(frame[1000:])
        with pytest.raises(FrameError):
            parser.next_frame()

    def test_what_waits_is_still_bounded(self):
        parser = FrameParser(Limits(max_buffered=200_000, max_body_size=500_000, max_frame_size=600_000))
        parser.feed(b"SEND\ncontent-length:400000\n\n" + b"x" * 1000)
        assert parser.next_frame() is None
        parser.feed(b"x" * 150_000)
        with pytest.raises(FrameError):
            parser.feed(b"x" * 100_000)


class TestFragmentation:
    def test_every_split_point(self):
        for split in range(len(STREAM) + 1):
            parser = FrameParser()
            parser.version = "1.2"
            parser.feed(STREAM[:split])
            frames = drain(parser)
            parser.feed(STREAM[split:])
            frames += drain(parser)
            assert frames == STREAM_FRAMES, split

    def test_every_pair_of_split_points(self):
        for first in range(0, len(STREAM) + 1, 3):
            for second in range(first, len(STREAM) + 1, 2):
                parser = FrameParser()
                parser.version = "1.2"
                frames = []
                for piece in (STREAM[:first], STREAM[first:second], STREAM[second:]):
                    parser.feed(piece)
                    frames += drain(parser)
                assert frames == STREAM_FRAMES, (first, second)

    def test_one_byte_at_a_time(self):
        parser = FrameParser()
        parser.version = "1.2"
        frames = []
        for index in range(len(STREAM)):
            parser.feed(STREAM[index : index + 1])
            frames += drain(parser)
        assert frames == STREAM_FRAMES

    def test_large_body_in_small_chunks(self):
        body = bytes(range(256)) * 4096
        data = b"SEND\ncontent-length:%d\n\n%b\x00" % (len(body), body)
        parser = FrameParser()
        frames = []
        for index in range(0, len(data), 1000):
            parser.feed(data[index : index + 1000])
            frames += drain(parser)
        assert frames == [Frame("SEND", {"content-length": str(len(body))}, body)]

    def test_large_body_without_content_length_in_small_chunks(self):
        body = b"x" * 1_000_000
        data = b"SEND\n\n" + body + b"\x00"
        parser = FrameParser()
        frames = []
        for index in range(0, len(data), 999):
            parser.feed(data[index : index + 999])
            frames += drain(parser)
        assert frames == [Frame("SEND", {}, body)]


class TestHeartBeats:
    @pytest.mark.parametrize("beats", [b"\n", b"\r\n", b"\n\n\n", b"\r\n\n\r\n"])
    def test_skipped_between_frames(self, beats):
        data = beats + b"SEND\n\na\x00" + beats + b"SEND\n\nb\x00" + beats
        assert parse(data) == [Frame("SEND", {}, b"a"), Frame("SEND", {}, b"b")]

    def test_only_heart_beats(self):
        parser = FrameParser()
        parser.feed(b"\n\r\n\n")
        assert parser.next_frame() is None

    def test_carriage_return_split_from_its_line_feed(self):
        parser = FrameParser()
        parser.feed(b"\r")
        assert parser.next_frame() is None
        parser.feed(b"\nSEND\n\n\x00")
        assert parser.next_frame() == Frame("SEND")

    def test_lone_carriage_return_is_not_a_heart_beat(self):
        error = parse_error(b"\rSEND\n\n\x00")
        assert error.message == "invalid command"

    def test_leading_blank_lines_are_heart_beats_not_an_empty_command(self):
        assert parse(b"\n\nSEND\n\n\x00") == [Frame("SEND")]


class TestLineEndings:
    def test_crlf_everywhere(self):
        assert parse(b"SEND\r\na:1\r\nb:2\r\n\r\nbody\x00") == [
            Frame("SEND", {"a": "1", "b": "2"}, b"body")
        ]

    def test_crlf_blank_line_only(self):
        assert parse(b"SEND\na:1\n\r\nbody\x00") == [Frame("SEND", {"a": "1"}, b"body")]

    def test_crlf_without_headers(self):
        assert parse(b"DISCONNECT\r\n\r\n\x00") == [Frame("DISCONNECT")]

    def test_only_one_carriage_return_belongs_to_the_eol(self):
        [frame] = parse(b"SEND\na:1\r\r\n\n\x00")
        assert frame.headers == {"a": "1\r"}

    def test_carriage_return_inside_value_is_kept(self):
        [frame] = parse(b"SEND\na:1\r2\n\n\x00")
        assert frame.headers == {"a": "1\r2"}

    def test_body_starting_with_newlines(self):
        assert parse(b"SEND\na:1\n\n\n\r\nx\x00") == [Frame("SEND", {"a": "1"}, b"\n\r\nx")]


class TestBody:
    def test_content_length_body_with_nuls(self):
        assert parse(b"SEND\ncontent-length:4\n\n\x00\x00\x00\x00\x00") == [
            Frame("SEND", {"content-length": "4"}, b"\x00\x00\x00\x00")
        ]

    def test_four_mebibyte_body_with_nuls(self):
        body = (b"\x00\x01\x02\x00" * 1024) * 1024
        data = b"SEND\ncontent-length:4194304\n\n" + body + b"\x00SEND\n\nnext\x00"
        frames = parse(data)
        assert len(frames) == 2
        assert frames[0].body == body
        assert frames[1] == Frame("SEND", {}, b"next")

    def test_zero_content_length(self):
        assert parse(b"SEND\ncontent-length:0\n\n\x00") == [
            Frame("SEND", {"content-length": "0"})
        ]

    def test_content_length_with_leading_zeros(self):
        [frame] = parse(b"SEND\ncontent-length:003\n\nabc\x00")
        assert frame.body == b"abc"

    def test_content_length_not_followed_by_nul(self):
        error = parse_error(b"SEND\ncontent-length:2\n\nabc\x00")
        assert error.message == "missing NUL after body"
        assert "2 bytes" in error.detail

    def test_content_length_not_followed_by_nul_when_fed_later(self):
        parser = FrameParser()
        parser.feed(b"SEND\ncontent-length:2\n\nab")
        assert parser.next_frame() is None
        parser.feed(b"c\x00")
        with pytest.raises(FrameError, match="missing NUL"):
            parser.next_frame()

    def test_body_without_content_length_ends_at_first_nul(self):
        assert parse(b"SEND\n\nab\x00DISCONNECT\n\n\x00") == [
            Frame("SEND", {}, b"ab"),
            Frame("DISCONNECT"),
        ]

    def test_first_content_length_wins(self):
        [frame] = parse(b"SEND\ncontent-length:1\ncontent-length:5\n\na\x00")
        assert frame.body == b"a"

    @pytest.mark.parametrize(
        "value",
        [b"", b"-1", b"+1", b" 1", b"1 ", b"1.0", b"abc", b"0x10", b"\xd9\xa3", b"\xc2\xb2"],
    )
    def test_invalid_content_length(self, value):
        error = parse_error(b"SEND\ncontent-length:" + value + b"\n\nabc\x00")
        assert error.message == "invalid content-length"

    def test_invalid_content_length_detected_before_body(self):
        parser = FrameParser()
        parser.feed(b"SEND\ncontent-length:x\n\n")
        with pytest.raises(FrameError, match="invalid content-length"):
            parser.next_frame()


class TestHeaders:
    def test_repeated_header_first_wins(self):
        [frame] = parse(b"SEND\nfoo:1\nfoo:2\nbar:3\nfoo:4\n\n\x00")
        assert list(frame.headers.items()) == [("foo", "1"), ("bar", "3")]

    def test_utf8_names_and_values(self):
        [frame] = parse("SEND\nnäme:välue ☃\n\n\x00".encode())
        assert frame.headers == {"näme": "välue ☃"}

    @pytest.mark.parametrize(
        "data", [b"SEND\na:\xff\n\n\x00", b"SEND\n\xc3:b\n\n\x00", b"SEND\xe2\x82\n\n\x00"]
    )
    def test_invalid_utf8(self, data):
        assert parse_error(data).message == "invalid UTF-8 in headers"

    def test_value_may_contain_colons(self):
        [frame] = parse(b"SEND\nmessage-id:ID:host-1:2:3\n\n\x00")
        assert frame.headers == {"message-id": "ID:host-1:2:3"}

    def test_empty_value(self):
        [frame] = parse(b"SEND\nempty:\n\n\x00")
        assert frame.headers == {"empty": ""}

    def test_line_without_colon(self):
        error = parse_error(b"SEND\ndestination\n\n\x00")
        assert error.message == "invalid header line"
        assert "destination" in error.detail

    def test_nul_in_incomplete_header_block(self):
        # No need to wait for the end of the header block to see this.
        parser = FrameParser()
        parser.feed(b"DISCONNECT\n\x00")
        with pytest.raises(FrameError, match="NUL octet in headers"):
            parser.next_frame()

    def test_stray_nul_between_frames(self):
        error = parse_error(b"SEND\n\n\x00\x00SEND\n\n\x00")
        assert error.message == "NUL octet in headers"

    def test_nul_in_header_block(self):
        # A frame that lacks the blank line after its command runs into the
        # next frame.
        error = parse_error(b"DISCONNECT\n\x00SEND\na:b\n\n\x00")
        assert error.message == "NUL octet in headers"


class TestCommand:
    @pytest.mark.parametrize("command", ["SËND".encode(), "☃".encode()])
    def test_non_ascii_command(self, command):
        assert parse_error(command + b"\n\n\x00").message == "invalid command"

    @pytest.mark.parametrize("command", [b" ", b"SEND ", b"SE ND", b"\tSEND", b"\x01"])
    def test_blank_or_control_command(self, command):
        assert parse_error(command + b"\n\n\x00").message == "invalid command"

    def test_empty_command_after_carriage_returns(self):
        # "\r\r\n": the last CR belongs to the EOL; what is left is not a command.
        assert parse_error(b"\r\r\n\n\x00").message == "invalid command"


class TestEscapes:
    FRAME = b"SEND\ndestination:/queue/a\\cb\nlines:1\\n2\\\\3\n\n\x00"

    def test_stomp_10_does_not_unescape(self):
        [frame] = parse(self.FRAME, "1.0")
        assert frame.headers == {"destination": "/queue/a\\cb", "lines": "1\\n2\\\\3"}

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_unescaped_in_11_and_12(self, version):
        [frame] = parse(self.FRAME, version)
        assert frame.headers == {"destination": "/queue/a:b", "lines": "1\n2\\3"}

    def test_names_are_unescaped(self):
        [frame] = parse(b"SEND\na\\cb:c\n\n\x00", "1.1")
        assert frame.headers == {"a:b": "c"}

    def test_repeated_after_unescaping_first_wins(self):
        [frame] = parse(b"SEND\na\\cb:1\na\\cb:2\n\n\x00", "1.2")
        assert frame.headers == {"a:b": "1"}

    def test_carriage_return_escape_in_12(self):
        [frame] = parse(b"SEND\na:1\\r2\n\n\x00", "1.2")
        assert frame.headers == {"a": "1\r2"}

    @pytest.mark.parametrize("raw", [b"1\\r2", b"1\\t2"])
    def test_undefined_escape_in_11(self, raw):
        error = parse_error(b"SEND\na:" + raw + b"\n\n\x00", "1.1")
        assert error.message == "invalid header escape"

    def test_undefined_escape_in_12(self):
        assert parse_error(b"SEND\na:\\t\n\n\x00", "1.2").message == "invalid header escape"

    def test_trailing_backslash(self):
        assert parse_error(b"SEND\na:b\\\n\n\x00", "1.2").message == "invalid header escape"

    @pytest.mark.parametrize("command", [b"CONNECT", b"CONNECTED"])
    @pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
    def test_connect_and_connected_are_never_unescaped(self, command, version):
        data = command + b"\nlogin:guest\npasscode:pa\\ss\\t\\\n\n\x00"
        [frame] = parse(data, version)
        assert frame.headers == {"login": "guest", "passcode": "pa\\ss\\t\\"}

    def test_version_switch_between_pipelined_frames(self):
        data = (
            b"CONNECT\naccept-version:1.0,1.1,1.2\npasscode:a\\b\n\n\x00"
            b"SEND\ndestination:/queue/a\\cb\n\n\x00"
            b"SEND\ndestination:/queue/c\\rd\n\n\x00"
        )
        parser = FrameParser()
        parser.feed(data)
        connect = parser.next_frame()
        assert connect.headers["passcode"] == "a\\b"
        parser.version = "1.2"
        assert parser.next_frame().headers == {"destination": "/queue/a:b"}
        parser.version = "1.1"
        # "\r" is not an escape in 1.1.
        with pytest.raises(FrameError, match="invalid header escape"):
            parser.next_frame()

    def test_version_switch_while_frame_is_incomplete(self):
        parser = FrameParser()
        parser.feed(b"SEND\ndestination:/queue/a\\cb\n\nbo")
        assert parser.next_frame() is None
        parser.version = "1.1"
        parser.feed(b"dy\x00")
        assert parser.next_frame() == Frame("SEND", {"destination": "/queue/a:b"}, b"body")

    def test_unsupported_version(self):
        parser = FrameParser()
        with pytest.raises(ValueError, match="1.3"):
            parser.version = "1.3"
        assert parser.version == "1.0"


class TestConsumption:
    def test_does_not_consume_beyond_returned_frame(self):
        parser = FrameParser()
        parser.feed(b"SEND\n\na\x00SEND\n\nb\x00SEND\n")
        assert parser.next_frame() == Frame("SEND", {}, b"a")
        # The session stops pulling for a while and more data arrives.
        parser.feed(b"\nc\x00")
        assert drain(parser) == [Frame("SEND", {}, b"b"), Frame("SEND", {}, b"c")]

    def test_buffered_bytes_are_released(self):
        limits = Limits(max_buffered=100)
        parser = FrameParser(limits)
        frame = b"SEND\n\n" + b"x" * 80 + b"\x00"
        for _ in range(10):
            parser.feed(frame)
            assert parser.next_frame() == Frame("SEND", {}, b"x" * 80)


class TestLimits:
    def test_header_line_too_long(self):
        limits = Limits(max_header_line=20)
        error = parse_error(b"SEND\na:" + b"x" * 19 + b"\n\n\x00", limits=limits)
        assert error.message == "header line too long"
        assert "20" in error.detail

    def test_header_line_at_the_limit(self):
        limits = Limits(max_header_line=20)
        [frame] = parse(b"SEND\na:" + b"x" * 18 + b"\r\n\r\n\x00", limits=limits)
        assert frame.headers == {"a": "x" * 18}

    def test_command_line_too_long(self):
        limits = Limits(max_header_line=20)
        assert parse_error(b"X" * 21 + b"\n\n\x00", limits=limits).message == (
            "header line too long"
        )

    def test_incomplete_header_line_too_long(self):
        # No EOL yet: the line is already too long, so do not wait for it.
        parser = FrameParser(Limits(max_header_line=100))
        parser.feed(b"SEND\na:" + b"x" * 98)
        assert parser.next_frame() is None
        parser.feed(b"x")
        with pytest.raises(FrameError, match="header line too long"):
            parser.next_frame()

    def test_incomplete_line_may_end_with_carriage_return(self):
        parser = FrameParser(Limits(max_header_line=10))
        parser.feed(b"SEND\na:" + b"x" * 8 + b"\r")
        assert parser.next_frame() is None
        parser.feed(b"\n\n\x00")
        assert parser.next_frame() == Frame("SEND", {"a": "x" * 8})

    def test_long_complete_line_in_incomplete_block(self):
        parser = FrameParser(Limits(max_header_line=100))
        parser.feed(b"SEND\n")
        assert parser.next_frame() is None
        parser.feed(b"a:" + b"x" * 200 + b"\nb:c\n")
        with pytest.raises(FrameError, match="header line too long"):
            parser.next_frame()

    def test_too_many_headers(self):
        limits = Limits(max_headers=3)
        assert parse(b"SEND\na:1\nb:2\nc:3\n\n\x00", limits=limits)
        error = parse_error(b"SEND\na:1\nb:2\nc:3\nd:4\n\n\x00", limits=limits)
        assert error.message == "too many headers"

    def test_repeated_headers_count(self):
        limits = Limits(max_headers=3)
        error = parse_error(b"SEND\na:1\na:1\na:1\na:1\n\n\x00", limits=limits)
        assert error.message == "too many headers"

    def test_too_many_headers_in_incomplete_block(self):
        parser = FrameParser(Limits(max_headers=3))
        parser.feed(b"SEND\na:1\nb:2\nc:3\n")
        assert parser.next_frame() is None
        parser.feed(b"d:4\n")
        with pytest.raises(FrameError, match="too many headers"):
            parser.next_frame()

    def test_header_block_that_never_ends(self):
        limits = Limits(max_headers=1000, max_header_line=50, max_frame_size=1000)
        parser = FrameParser(limits)
        parser.feed(b"SEND\n")
        with pytest.raises(FrameError, match="header block too large"):
            for index in range(1000):
                parser.feed(b"h:%d\n" % index)
                assert parser.next_frame() is None

    def test_content_length_above_max_body_size_fails_before_body(self):
        parser = FrameParser(Limits(max_body_size=1000))
        parser.feed(b"SEND\ncontent-length:1001\n\n")
        with pytest.raises(FrameError) as caught:
            parser.next_frame()
        assert caught.value.message == "body exceeds 1000 bytes"

    def test_content_length_at_max_body_size(self):
        limits = Limits(max_body_size=1000)
        [frame] = parse(b"SEND\ncontent-length:1000\n\n" + b"x" * 1000 + b"\x00", limits=limits)
        assert len(frame.body) == 1000

    def test_body_without_content_length_too_large(self):
        parser = FrameParser(Limits(max_body_size=1000))
        parser.feed(b"SEND\n\n" + b"x" * 1000)
        assert parser.next_frame() is None
        parser.feed(b"x")
        with pytest.raises(FrameError) as caught:
            parser.next_frame()
        assert caught.value.message == "body exceeds 1000 bytes"

    def test_body_without_content_length_too_large_in_one_feed(self):
        error = parse_error(b"SEND\n\n" + b"x" * 2000 + b"\x00", limits=Limits(max_body_size=1000))
        assert error.message == "body exceeds 1000 bytes"

    def test_body_without_content_length_at_max_body_size(self):
        limits = Limits(max_body_size=1000)
        [frame] = parse(b"SEND\n\n" + b"x" * 1000 + b"\x00", limits=limits)
        assert len(frame.body) == 1000

    def test_frame_too_large_with_content_length(self):
        parser = FrameParser(Limits(max_frame_size=100, max_body_size=1000))
        parser.feed(b"SEND\ncontent-length:90\n\n")
        with pytest.raises(FrameError) as caught:
            parser.next_frame()
        assert caught.value.message == "frame too large"

    def test_frame_too_large_without_content_length(self):
        limits = Limits(max_frame_size=100, max_body_size=1000)
        assert parse_error(b"SEND\n\n" + b"x" * 100 + b"\x00", limits=limits).message == (
            "frame too large"
        )

    def test_frame_at_max_frame_size(self):
        limits = Limits(max_frame_size=100, max_body_size=1000)
        data = b"SEND\n\n" + b"x" * 93 + b"\x00"
        assert len(data) == 100
        assert parse(data, limits=limits) == [Frame("SEND", {}, b"x" * 93)]
        assert parse_error(b"SEND\n\n" + b"x" * 94 + b"\x00", limits=limits).message == (
            "frame too large"
        )

    def test_too_much_buffered(self):
        parser = FrameParser(Limits(max_buffered=100))
        parser.feed(b"x" * 60)
        with pytest.raises(FrameError) as caught:
            parser.feed(b"x" * 41)
        assert caught.value.message == "too much unprocessed data"

    def test_buffered_limit_counts_unreturned_frames(self):
        # The session stopped pulling frames: complete frames still count.
        parser = FrameParser(Limits(max_buffered=100))
        parser.feed(b"SEND\n\n" + b"x" * 50 + b"\x00")
        with pytest.raises(FrameError, match="too much unprocessed data"):
            parser.feed(b"SEND\n\n" + b"x" * 50 + b"\x00")

    def test_errors_are_sticky(self):
        parser = FrameParser()
        parser.feed(b"SEND\nbad\n\n\x00SEND\n\n\x00")
        with pytest.raises(FrameError) as first:
            parser.next_frame()
        with pytest.raises(FrameError) as second:
            parser.next_frame()
        assert second.value is first.value
        with pytest.raises(FrameError):
            parser.feed(b"more")


class TestLimitsValidation:
    def test_defaults(self):
        limits = Limits()
        assert limits.max_frame_size == 10 * 1024 * 1024
        assert limits.max_body_size == 8 * 1024 * 1024
        assert limits.max_headers == 128
        assert limits.max_header_line == 16 * 1024
        assert limits.max_buffered == 16 * 1024 * 1024

    @pytest.mark.parametrize(
        "field",
        ["max_frame_size", "max_body_size", "max_headers", "max_header_line", "max_buffered"],
    )
    @pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, None])
    def test_invalid_values_name_the_field(self, field, value):
        with pytest.raises(ValueError, match=field):
            Limits(**{field: value})

    def test_frozen(self):
        with pytest.raises(AttributeError):
            Limits().max_headers = 5  # type: ignore[misc]


def test_buffered_says_whether_more_of_the_read_waits():
    parser = FrameParser()
    parser.feed(b"SEND\ndestination:/q\n\na\x00SEND\ndestination:/q\n\nb\x00SEN")
    assert parser.next_frame().body == b"a"
    assert parser.buffered
    assert parser.next_frame().body == b"b"
    # Part of a frame waits.
    assert parser.buffered
    assert parser.next_frame() is None
    parser.feed(b"D\ndestination:/q\n\nc\x00")
    assert parser.next_frame().body == b"c"
    assert not parser.buffered


def test_codec_does_not_import_twisted():
    code = (
        "import sys, stompd.codec; "
        "bad = [m for m in sys.modules if m == 'twisted' or m.startswith('twisted.')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
