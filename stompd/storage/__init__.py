"""
Message stores: implementations of L{stompd.interfaces.IMessageStore}.
"""
