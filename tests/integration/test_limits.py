"""
Connection limits on a real broker over real sockets: the connection over
the limit is told before it sends CONNECT, and the others are served.
"""

import pytest

pytestmark = pytest.mark.integration


def test_a_connection_over_the_per_address_limit_gets_an_error_before_connect(tmp_path, broker_process, raw):
    running = broker_process(tmp_path, "[limits]\nmax-connections-per-address = 2\n")
    try:
        # One after the other: the broker has seen its start-up probe go.
        first = raw(running.port)
        assert first.connect("1.2").command == "CONNECTED"
        second = raw(running.port)
        assert second.connect("1.2").command == "CONNECTED"
        third = raw(running.port)
        error = third.read_frame()
        assert (error.command, error.headers["message"]) == ("ERROR", "too many connections from your address")
        assert third.is_closed()
        first.send_frame("DISCONNECT", {"receipt": "bye"})
        assert first.read_frame().command == "RECEIPT"
        assert first.is_closed()
        fourth = raw(running.port)
        assert fourth.connect("1.2").command == "CONNECTED"
    finally:
        running.stop()
    assert "Limit max-connections-per-address hit 1 times" in running.log
