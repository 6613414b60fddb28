"""
HTTP Basic credentials for the management listener, checked against the
broker's own users.
"""

import base64

# Groups that may read what the management listener shows.
READERS = frozenset(("monitor", "admin"))


def basic_credentials(request) -> tuple[str, str] | None:
    header = (request.getHeader(b"authorization") or b"").decode("latin-1")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        login, _, passcode = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return login, passcode
