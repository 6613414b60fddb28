"""
The broker core: virtual hosts, destinations, subscriptions and dispatch.
It knows sessions only as delivery targets and never sees a transport.
"""
