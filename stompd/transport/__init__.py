"""
Transports: carry a session's bytes. No STOMP logic lives here.
"""
