"""
Public test helpers for stompd and its plugin authors: interface contract
suites and an in-memory harness for sessions.
"""
