"""
Connectors: links from this broker to other STOMP brokers, on a STOMP
client protocol built on the codec. See docs/connectors.md.
"""
