"""
Messages as bytes, for stores and nodes that keep or send them outside
this process.

A message is two parts, so that a store's scripts can change its state
without touching its content:

    - content: C{[id, destination, [name, value, ...], body]}
    - state: C{[sequence, priority, channel, expires_at, delivery_count,
      first_delivered_at, last_delivered_at, visible_at]}

each a MessagePack array, with C{false} for a value that is not set.
Strings are UTF-8; the body is bytes as they are. Headers are a flat list
so that their order, and values holding C{:} or newlines, come back
exactly.
"""

import msgpack

from stompd.broker.message import Message

# Positions in the state array, shared with the Lua scripts (1-based there).
SEQUENCE, PRIORITY, CHANNEL, EXPIRES_AT, DELIVERY_COUNT, FIRST_DELIVERED_AT, LAST_DELIVERED_AT, VISIBLE_AT = range(8)


def _optional(value):
    return False if value is None else value


def _present(value):
    return None if value is False else value


def pack_content(message: Message) -> bytes:
    """
    The parts of C{message} that never change once it is sent.
    """
    flat = []
    for name, value in message.headers.items():
        flat.append(name)
        flat.append(value)
    return msgpack.packb([message.id, message.destination, flat, message.body], use_bin_type=False)


def pack_state(message: Message, sequence: int = 0) -> bytes:
    """
    The parts of C{message} that a store changes as it is delivered.
    """
    return msgpack.packb(
        [
            sequence,
            message.priority,
            _optional(message.channel),
            _optional(message.expires_at),
            message.delivery_count,
            _optional(message.first_delivered_at),
            _optional(message.last_delivered_at),
            _optional(message.visible_at),
        ],
        use_bin_type=False,
    )


def _text(value) -> str:
    # Redis's MessagePack for Lua has no "bin" type, so every string,
    # the body included, is "str" on the wire: read as bytes, decoded here.
    return value.decode("utf-8") if isinstance(value, bytes) else value


def unpack_message(content: bytes, state: bytes) -> Message:
    """
    The message that L{pack_content} and L{pack_state} (or a store script
    that changed the state) made.
    """
    id, destination, flat, body = msgpack.unpackb(content, raw=True)
    headers = {_text(flat[n]): _text(flat[n + 1]) for n in range(0, len(flat), 2)}
    _, priority, channel, expires_at, count, first, last, visible_at = msgpack.unpackb(state, raw=True)
    channel = _present(channel)
    return Message(
        _text(id),
        _text(destination),
        headers,
        bytes(body),
        delivery_count=count,
        expires_at=_present(expires_at),
        visible_at=_present(visible_at),
        priority=priority,
        channel=None if channel is None else _text(channel),
        first_delivered_at=_present(first),
        last_delivered_at=_present(last),
    )


def pack_message(message: Message) -> bytes:
    """
    The whole of C{message} in one piece, for sending to other nodes.
    """
    return msgpack.packb([pack_content(message), pack_state(message)], use_bin_type=False)


def unpack_message_packed(data: bytes) -> Message:
    """
    The message L{pack_message} made.
    """
    content, state = msgpack.unpackb(data, raw=True)
    return unpack_message(content, state)
