"""
The STOMP wire format: frames, an incremental parser, an encoder, header
escaping and the limits that bound a connection's frames.

Pure Python: nothing here imports Twisted, so the codec can be used and
tested on its own.
"""

from stompd.codec.encoder import encode_frame
from stompd.codec.escaping import escape_header, unescape_header
from stompd.codec.frame import SUPPORTED_VERSIONS, Frame
from stompd.codec.limits import Limits
from stompd.codec.parser import FrameParser

__all__ = [
    "SUPPORTED_VERSIONS",
    "Frame",
    "FrameParser",
    "Limits",
    "encode_frame",
    "escape_header",
    "unescape_header",
]
