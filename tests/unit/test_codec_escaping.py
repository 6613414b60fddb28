"""
Tests for L{stompd.codec.escaping}.
"""

import pytest

from stompd.codec import escape_header, unescape_header
from stompd.errors import FrameError


class TestEscapeHeader:
    def test_stomp_10_never_escapes(self):
        value = "a:b\\c\nd\re"
        assert escape_header(value, "1.0") is value

    def test_stomp_11_escapes(self):
        assert escape_header("a\nb", "1.1") == "a\\nb"
        assert escape_header("a:b", "1.1") == "a\\cb"
        assert escape_header("a\\b", "1.1") == "a\\\\b"

    def test_stomp_11_has_no_carriage_return_escape(self):
        assert escape_header("a\rb", "1.1") == "a\rb"

    def test_stomp_12_escapes_carriage_return_too(self):
        assert escape_header("a\rb", "1.2") == "a\\rb"
        assert escape_header("a\n:\\\r", "1.2") == "a\\n\\c\\\\\\r"

    def test_backslash_escaped_before_the_others(self):
        # A backslash escaped after \n would turn "\\n" into "\\\\n".
        assert escape_header("\\\n", "1.1") == "\\\\\\n"

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_plain_value_is_returned_as_is(self, version):
        value = "/queue/orders"
        assert escape_header(value, version) is value

    def test_unsupported_version(self):
        with pytest.raises(ValueError, match="2.0"):
            escape_header("a", "2.0")


class TestUnescapeHeader:
    def test_stomp_10_never_unescapes(self):
        assert unescape_header("a\\cb\\x", "1.0") == "a\\cb\\x"

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_defined_escapes(self, version):
        assert unescape_header("a\\nb\\cc\\\\d", version) == "a\nb:c\\d"

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_escaped_backslash_before_letter(self, version):
        # "\\\\n" is an escaped backslash and then "n", not a newline.
        assert unescape_header("\\\\n", version) == "\\n"
        assert unescape_header("\\\\\\n", version) == "\\\n"

    def test_stomp_12_carriage_return(self):
        assert unescape_header("a\\rb", "1.2") == "a\rb"

    @pytest.mark.parametrize("raw", ["a\\rb", "a\\tb", "\\x", "\\ ", "a\\\nb"])
    def test_undefined_escape_in_stomp_11(self, raw):
        with pytest.raises(FrameError) as caught:
            unescape_header(raw, "1.1")
        assert caught.value.message == "invalid header escape"
        assert "undefined escape sequence" in caught.value.detail

    @pytest.mark.parametrize("raw", ["a\\tb", "\\x", "\\C", "\\N"])
    def test_undefined_escape_in_stomp_12(self, raw):
        with pytest.raises(FrameError, match="invalid header escape"):
            unescape_header(raw, "1.2")

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    @pytest.mark.parametrize("raw", ["\\", "abc\\", "a\\\\\\"])
    def test_trailing_lone_backslash(self, version, raw):
        with pytest.raises(FrameError) as caught:
            unescape_header(raw, version)
        assert "backslash at the end" in caught.value.detail

    def test_escaped_trailing_backslash_is_fine(self):
        assert unescape_header("a\\\\", "1.1") == "a\\"

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_plain_value_is_returned_as_is(self, version):
        raw = "/queue/orders"
        assert unescape_header(raw, version) is raw

    def test_long_value_is_shortened_in_detail(self):
        with pytest.raises(FrameError) as caught:
            unescape_header("x" * 10_000 + "\\t", "1.2")
        assert len(caught.value.detail) < 300

    def test_unsupported_version(self):
        with pytest.raises(ValueError, match="2.0"):
            unescape_header("a\\n", "2.0")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize(
    "value", ["", "plain", "a:b:c", "line\nbreak", "back\\slash", "\\n", "é:ü\n"]
)
def test_round_trip(version, value):
    assert unescape_header(escape_header(value, version), version) == value


def test_round_trip_carriage_return_in_stomp_12():
    assert unescape_header(escape_header("a\r\n", "1.2"), "1.2") == "a\r\n"
