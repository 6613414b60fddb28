"""
Size limits that bound how much memory one connection's frames can use.
"""

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Limits:
    """
    The limits a L{FrameParser<stompd.codec.parser.FrameParser>} enforces
    on one connection. All sizes are in bytes.

    @ivar max_frame_size: the largest whole frame (command, headers and
        body, without the heart-beat EOLs around it).
    @ivar max_body_size: the largest body.
    @ivar max_headers: the most header lines in one frame (repeated headers
        count once per line).
    @ivar max_header_line: the longest command or header line, without its
        EOL.
    @ivar max_buffered: the most bytes buffered and not yet returned as
        frames.
    """

    max_frame_size: int = 10 * 1024 * 1024
    max_body_size: int = 8 * 1024 * 1024
    max_headers: int = 128
    max_header_line: int = 16 * 1024
    max_buffered: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            # bool is an int subclass, but True as a size is a config mistake.
            if type(value) is not int or value <= 0:
                raise ValueError(
                    f"{field.name} must be a positive integer, not {value!r}"
                )
