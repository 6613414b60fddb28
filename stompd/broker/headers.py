"""
Reading numeric frame headers, with one ERROR wording for every bad value.
"""

import math

from stompd.errors import ProtocolError


def number_header(headers: dict[str, str], name: str, unit: str, decimal: bool = False):
    """
    The value of header C{name}, or C{None} when it is absent.

    @param unit: what the number counts, for the error (C{"milliseconds"}).
    @param decimal: accept a decimal number (a float) rather than only a
        whole one (an int).
    @raise ProtocolError: naming the header, for anything but a
        non-negative number.
    """
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw) if decimal else int(raw)
    except ValueError:
        value = -1
    if not 0 <= value < math.inf:
        kind = "number of" if decimal else "whole number of"
        raise ProtocolError(f"invalid {name} header", f"{name} must be a non-negative {kind} {unit}, not {raw!r}.")
    return value
