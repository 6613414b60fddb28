"""
Makes C{twistd stompd} appear. Imports nothing of stompd until it runs.
"""

from twisted.application.service import ServiceMaker

stompd = ServiceMaker(
    "stompd",
    "stompd.tap",
    "A STOMP 1.0/1.1/1.2 message broker.",
    "stompd",
)
