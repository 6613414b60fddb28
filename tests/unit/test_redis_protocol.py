"""
The Redis store's protocol writes commands exactly as txredisapi would.
"""

import pytest
import txredisapi

from stompd.storage.redis import _Protocol


@pytest.mark.parametrize(
    "args",
    [
        (b"PING",),
        (b"EVALSHA", "0123abcd", b"1", b"stompd:q:{/queue/a}", b"\x00\xff\r\n" * 3, b""),
        ("SET", "clé", 17, 2.5),
    ],
)
def test_commands_are_encoded_as_txredisapi_encodes_them(args):
    assert _Protocol()._build_command(*args) == txredisapi.BaseRedisProtocol()._build_command(*args)


def test_a_command_is_redis_protocol():
    assert _Protocol()._build_command(b"GET", b"k\r\n") == b"*2\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n"


def test_replies_are_read_as_txredisapi_reads_them_without_conversion():
    # As the store's connections are made: bytes, no number conversion.
    options = {"charset": None, "convertNumbers": False}
    reply = [[b"", [b"42", b"1.5"], []], [b"\xff\x00 head", b"body"], 7, None]
    assert _Protocol(**options).tryConvertData(reply) == txredisapi.BaseRedisProtocol(**options).tryConvertData(reply)
    # Other settings still convert.
    assert _Protocol(convertNumbers=True, charset=None).tryConvertData([b"42"]) == [42]
