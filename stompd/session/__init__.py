"""
The STOMP session layer: frames in, broker calls out, frames back. Knows
nothing of the transport beyond L{stompd.interfaces.ISessionTransport}.
"""

from stompd.session.session import StompSession

__all__ = ["StompSession"]
