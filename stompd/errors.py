"""
Exceptions shared across stompd's layers.

Nothing here imports Twisted, so the codec can use these too.
"""


class StompError(Exception):
    """
    A failure that a client is told about in an ERROR frame.

    @ivar message: the short text for the ERROR frame's C{message} header.
    @ivar detail: a longer explanation for the ERROR frame's body.
    @ivar headers: further headers for the ERROR frame (e.g. C{version}).
    """

    def __init__(self, message: str, detail: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or message
        self.headers = headers or {}


class FrameError(StompError):
    """
    The bytes on the wire are not a valid STOMP frame, or break a configured
    limit. The connection cannot continue after this.
    """


class ProtocolError(StompError):
    """
    A well-formed frame that breaks the protocol: a frame before CONNECT, a
    missing required header, an unknown transaction, and so on.
    """


class AuthenticationError(StompError):
    """
    The client's credentials were refused.
    """


class DestinationError(StompError):
    """
    A destination name that this broker does not route.
    """


class StorageError(StompError):
    """
    The store could not do what was asked (it is unreachable, or did not
    answer in time): the client is told, and nothing it sent was
    confirmed.
    """


class ConfigError(Exception):
    """
    The configuration cannot be used; the message names the file, key and
    problem.
    """
