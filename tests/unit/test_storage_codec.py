"""
The message codec: what a store keeps outside the process comes back as it
was.
"""

from hypothesis import given
from hypothesis import strategies as st

from stompd.broker.message import Message
from stompd.storage.codec import pack_head, pack_message, pack_state, unpack_message, unpack_message_packed

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
times = st.none() | st.floats(min_value=0, max_value=1e13, allow_nan=False)


@st.composite
def messages(draw) -> Message:
    headers = {"destination": "/queue/x"}
    headers.update(draw(st.dictionaries(text, text, max_size=6)))
    return Message(
        draw(text),
        "/queue/x",
        headers,
        draw(st.binary(max_size=300)),
        delivery_count=draw(st.integers(0, 10**6)),
        expires_at=draw(times),
        visible_at=draw(times),
        priority=draw(st.integers(0, 9)),
        channel=draw(st.none() | text),
        first_delivered_at=draw(times),
        last_delivered_at=draw(times),
    )


def fields(message: Message) -> tuple:
    return tuple(getattr(message, name) for name in Message.__slots__ if name != "_encoded") + (list(message.headers),)


@given(messages())
def test_round_trip(message):
    assert fields(unpack_message(pack_head(message), message.body, pack_state(message))) == fields(message)
    assert fields(unpack_message_packed(pack_message(message))) == fields(message)
