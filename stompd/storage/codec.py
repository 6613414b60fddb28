"""
Messages as bytes, for stores and nodes that keep or send them outside
this process.

A message is three parts, so that a store's scripts can change its state
without touching the rest, and never parse its body:

    - head: C{[id, destination, [name, value, ...]]}, a MessagePack array
      of strings (UTF-8); headers are a flat list so that their order, and
      values holding C{:} or newlines, come back exactly;
    - body: the bytes as they are;
    - state: C{[sequence, priority, channel, expires_at, delivery_count,
      first_delivered_at, last_delivered_at, visible_at]}, a MessagePack
      array with C{false} for a value that is not set.
"""

import msgpack

from stompd.broker.message import Message

# One packer, reused: cheaper than msgpack.packb's new one per call.
_pack = msgpack.Packer(use_bin_type=True).pack


def _optional(value):
    return False if value is None else value


def _present(value):
    return None if value is False else value


def pack_head(message: Message) -> bytes:
    """
    The parts of C{message} that never change once it is sent, but its body.
    """
    return _pack([message.id, message.destination, [part for pair in message.headers.items() for part in pair]])


def pack_state(message: Message) -> bytes:
    """
    The parts of C{message} that a store changes as it is delivered. The
    sequence is the store's to give (0 here); the Lua scripts read these
    fields by position (1-based there).
    """
    return _pack(
        [
            0,
            message.priority,
            _optional(message.channel),
            _optional(message.expires_at),
            message.delivery_count,
            _optional(message.first_delivered_at),
            _optional(message.last_delivered_at),
            _optional(message.visible_at),
        ]
    )


def unpack_message(head: bytes, body: bytes, state: bytes) -> Message:
    """
    The message that L{pack_head} and L{pack_state} (or a store script
    that changed the state) made, with C{body}.
    """
    id, destination, flat = msgpack.unpackb(head)
    _, priority, channel, expires_at, count, first, last, visible_at = msgpack.unpackb(state)
    return Message(
        id,
        destination,
        dict(zip(flat[::2], flat[1::2])),
        body,
        delivery_count=count,
        expires_at=_present(expires_at),
        visible_at=_present(visible_at),
        priority=priority,
        channel=_present(channel),
        first_delivered_at=_present(first),
        last_delivered_at=_present(last),
    )


def pack_message(message: Message) -> bytes:
    """
    The whole of C{message} in one piece, for sending to other nodes.
    """
    return _pack([pack_head(message), message.body, pack_state(message)])


def unpack_message_packed(data: bytes) -> Message:
    """
    The message L{pack_message} made.
    """
    head, body, state = msgpack.unpackb(data)
    return unpack_message(head, body, state)
