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
