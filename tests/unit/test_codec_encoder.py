"""
Tests for L{stompd.codec.encoder.encode_frame} and L{stompd.codec.frame.Frame}.
"""

import pytest

from stompd.codec import SUPPORTED_VERSIONS, Frame, FrameParser, encode_frame


def parse_one(data, version):
    parser = FrameParser()
    parser.version = version
    parser.feed(data)
    frame = parser.next_frame()
    assert parser.next_frame() is None
    return frame


class TestEncodeFrame:
    @pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
    def test_layout(self, version):
        frame = Frame("SEND", {"destination": "/queue/a", "receipt": "7"}, b"hello")
        assert encode_frame(frame, version) == (
            b"SEND\ndestination:/queue/a\nreceipt:7\n\nhello\x00"
        )

    def test_no_headers(self):
        assert encode_frame(Frame("DISCONNECT"), "1.2") == b"DISCONNECT\n\n\x00"

    def test_returns_bytes(self):
        assert type(encode_frame(Frame("SEND", {}, bytearray(b"x")), "1.2")) is bytes

    def test_utf8(self):
        frame = Frame("SEND", {"näme": "välue ☃"}, b"")
        assert encode_frame(frame, "1.2") == "SEND\nnäme:välue ☃\n\n\x00".encode()

    def test_does_not_add_content_length(self):
        assert b"content-length" not in encode_frame(Frame("SEND", {}, b"abc"), "1.2")

    def test_empty_value(self):
        assert encode_frame(Frame("SEND", {"a": ""}), "1.0") == b"SEND\na:\n\n\x00"

    def test_stomp_10_is_not_escaped(self):
        frame = Frame("SEND", {"a\\b": "c:d\\e"})
        assert encode_frame(frame, "1.0") == b"SEND\na\\b:c:d\\e\n\n\x00"

    def test_stomp_11_escapes(self):
        frame = Frame("SEND", {"a:b": "c\nd\\e:f"})
        assert encode_frame(frame, "1.1") == b"SEND\na\\cb:c\\nd\\\\e\\cf\n\n\x00"

    def test_stomp_11_leaves_inner_carriage_return(self):
        frame = Frame("SEND", {"a": "1\r2"})
        assert encode_frame(frame, "1.1") == b"SEND\na:1\r2\n\n\x00"

    def test_stomp_12_escapes_carriage_return(self):
        frame = Frame("SEND", {"a": "1\r2\r"})
        assert encode_frame(frame, "1.2") == b"SEND\na:1\\r2\\r\n\n\x00"

    @pytest.mark.parametrize("command", ["CONNECT", "CONNECTED"])
    @pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
    def test_connect_and_connected_are_never_escaped(self, command, version):
        frame = Frame(command, {"login": "guest", "passcode": "a\\b:c"})
        data = encode_frame(frame, version)
        assert data == command.encode() + b"\nlogin:guest\npasscode:a\\b:c\n\n\x00"
        assert parse_one(data, version) == frame

    def test_body_with_nul_needs_content_length(self):
        with pytest.raises(ValueError, match="content-length"):
            encode_frame(Frame("SEND", {}, b"a\x00b"), "1.2")
        with pytest.raises(ValueError, match="content-length"):
            encode_frame(Frame("SEND", {"destination": "/queue/a"}, b"a\x00b"), "1.2")

    def test_body_with_nul_and_content_length(self):
        frame = Frame("SEND", {"content-length": "3"}, b"a\x00b")
        data = encode_frame(frame, "1.2")
        assert data == b"SEND\ncontent-length:3\n\na\x00b\x00"
        assert parse_one(data, "1.2") == frame

    @pytest.mark.parametrize("length", ["2", "4", "-3", "x", ""])
    def test_content_length_must_match_body(self, length):
        with pytest.raises(ValueError, match="does not match"):
            encode_frame(Frame("SEND", {"content-length": length}, b"abc"), "1.2")

    def test_content_length_with_leading_zeros(self):
        frame = Frame("SEND", {"content-length": "03"}, b"abc")
        assert parse_one(encode_frame(frame, "1.2"), "1.2") == frame

    @pytest.mark.parametrize(
        "headers",
        [
            {"a": "line\nbreak"},
            {"a\nb": "c"},
            {"a:b": "c"},
            {"a": "ends with CR\r"},
        ],
    )
    def test_unrepresentable_in_stomp_10(self, headers):
        with pytest.raises(ValueError, match="STOMP 1.0"):
            encode_frame(Frame("SEND", headers), "1.0")

    @pytest.mark.parametrize("command", ["CONNECT", "CONNECTED"])
    @pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
    @pytest.mark.parametrize(
        "headers", [{"passcode": "a\nb"}, {"a:b": "c"}, {"passcode": "a\r"}]
    )
    def test_unrepresentable_in_connect(self, command, version, headers):
        with pytest.raises(ValueError, match=command):
            encode_frame(Frame(command, headers), version)

    def test_trailing_carriage_return_in_stomp_11(self):
        with pytest.raises(ValueError, match="carriage return"):
            encode_frame(Frame("SEND", {"a": "b\r"}), "1.1")

    @pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
    @pytest.mark.parametrize("headers", [{"a": "b\x00"}, {"a\x00": "b"}])
    def test_nul_in_header(self, version, headers):
        with pytest.raises(ValueError, match="NUL"):
            encode_frame(Frame("SEND", headers), version)

    @pytest.mark.parametrize("command", ["", "SE ND", "SËND", "SEND\n", "\x00"])
    def test_invalid_command(self, command):
        with pytest.raises(ValueError, match="command"):
            encode_frame(Frame(command), "1.2")

    def test_unsupported_version(self):
        with pytest.raises(ValueError, match="2.0"):
            encode_frame(Frame("SEND"), "2.0")

    def test_frame_is_not_changed(self):
        headers = {"a:b": "c\nd"}
        frame = Frame("SEND", headers, b"x")
        encode_frame(frame, "1.2")
        assert frame.headers is headers
        assert headers == {"a:b": "c\nd"}

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_round_trip_with_escapes(self, version):
        frame = Frame(
            "MESSAGE",
            {"message-id": "ID:host:1:2", "x\\y": "a\nb", "empty": "", "é": "ü"},
            b"body",
        )
        assert parse_one(encode_frame(frame, version), version) == frame


class TestFrame:
    def test_defaults(self):
        frame = Frame("DISCONNECT")
        assert frame.command == "DISCONNECT"
        assert frame.headers == {}
        assert frame.body == b""

    def test_default_headers_are_not_shared(self):
        first, second = Frame("SEND"), Frame("SEND")
        first.headers["a"] = "b"
        assert second.headers == {}

    def test_slots(self):
        with pytest.raises(AttributeError):
            Frame("SEND").extra = 1

    def test_equality(self):
        assert Frame("SEND", {"a": "1"}, b"x") == Frame("SEND", {"a": "1"}, b"x")
        assert Frame("SEND", {"a": "1", "b": "2"}) == Frame("SEND", {"b": "2", "a": "1"})
        assert Frame("SEND", {"a": "1"}, b"x") != Frame("SEND", {"a": "1"}, b"y")
        assert Frame("SEND", {"a": "1"}) != Frame("SEND", {"a": "2"})
        assert Frame("SEND") != Frame("MESSAGE")
        assert Frame("SEND") != "SEND"

    def test_not_hashable(self):
        with pytest.raises(TypeError):
            hash(Frame("SEND"))

    def test_repr(self):
        frame = Frame("SEND", {"destination": "/queue/a"}, b"hi")
        assert repr(frame) == "Frame('SEND', {'destination': '/queue/a'}, b'hi')"

    def test_repr_truncates_large_body(self):
        frame = Frame("SEND", {}, b"x" * 1_000_000)
        text = repr(frame)
        assert len(text) < 200
        assert "1000000 bytes" in text

    def test_repr_hides_passcode(self):
        frame = Frame("CONNECT", {"login": "guest", "passcode": "secret"})
        assert "secret" not in repr(frame)
        assert "guest" in repr(frame)
