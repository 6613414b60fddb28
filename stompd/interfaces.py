"""
Every extension point of stompd, as zope interfaces.

Implementations, built-in or third-party, are found through packaging entry
points (see L{stompd.plugins}) and checked with C{verifyObject} when loaded.
Methods that touch the outside world return Deferreds, so that an
asynchronous implementation (Redis, a remote user directory) fits without
changing the broker core.
"""

from zope.interface import Attribute, Interface


class IMessageStore(Interface):
    """
    Durable state of queues: messages waiting, messages delivered but not yet
    acknowledged (in flight), delivery counts, visibility deadlines and expiry.

    Topics are not stored: a topic message exists only while it is being
    fanned out. All times are seconds on the broker's clock
    (C{reactor.seconds()}), so tests can drive them with a C{Clock}.

    Every method returns a L{Deferred}; none may block the reactor. A store
    may be shared by several brokers (each with its own node id), so a
    message is handed to at most one consumer at a time across all of them.
    """

    def start():
        """
        Open connections or load state.

        @return: a Deferred that fires when the store is ready, or fails with
            a L{stompd.errors.ConfigError} naming what is wrong.
        """

    def stop():
        """
        Flush and close.

        @return: a Deferred that fires when the store is closed.
        """

    def enqueue(queue, message):
        """
        Append C{message} to the end of C{queue}, creating the queue.

        @param queue: the queue's name, e.g. C{"/queue/work"}.
        @type message: L{stompd.broker.message.Message}
        @return: a Deferred firing with the number of messages now waiting
            in the queue (in flight excluded), which the broker uses for
            publisher flow control.
        """

    def reserve(queue, limit, now, lease_until):
        """
        Take up to C{limit} visible messages from the head of C{queue} for
        delivery.

        Messages whose expiry time is not after C{now} are dropped instead of
        returned. Each returned message has its C{delivery_count} incremented
        and is in flight until acknowledged, released, or until
        C{lease_until} passes, after which it is visible again (at the head
        of the queue). C{lease_until} of C{None} means no deadline.

        @return: a Deferred firing with a list of
            L{stompd.broker.message.Message}, possibly empty, oldest first.
        """

    def ack(queue, message_ids):
        """
        Forget in-flight messages for good.

        Unknown ids (already acknowledged, or whose lease ran out and which
        were delivered again elsewhere) are ignored.

        @return: a Deferred firing with the number of messages removed.
        """

    def release(queue, message_ids, visible_at):
        """
        Return in-flight messages to the head of C{queue}, in their original
        order, so that they are delivered again.

        @param visible_at: the time from which they may be delivered again,
            or C{None} for at once.
        @return: a Deferred firing with the number of messages released.
        """

    def next_visible_at(queue):
        """
        When does a message of C{queue} that is not visible now next become
        visible (a lease running out, a delayed release)?

        @return: a Deferred firing with a time, or C{None} if nothing is
            waiting to become visible.
        """

    def depth(queue):
        """
        @return: a Deferred firing with the number of messages waiting in
            C{queue} (in flight excluded).
        """

    def delete(queue):
        """
        Drop C{queue} and everything in it, in flight included.

        @return: a Deferred firing when done.
        """


class IAuthenticator(Interface):
    """
    Decides who may connect.
    """

    def authenticate(login, passcode, vhost):
        """
        Check credentials from a CONNECT frame.

        @param login: the C{login} header, or C{None} if absent.
        @param passcode: the C{passcode} header, or C{None} if absent.
        @param vhost: the name of the virtual host the client asked for.
        @return: a Deferred firing with the authenticated user name (a
            C{str}), or failing with L{stompd.errors.AuthenticationError}
            whose message says why.
        """


class ISessionTransport(Interface):
    """
    What a STOMP session needs from the connection carrying it: a byte pipe
    with flow control both ways. A TCP transport provides it as it is; the
    WebSocket transport adapts Autobahn to it.
    """

    def write(data):
        """
        Send bytes to the client.
        """

    def loseConnection():
        """
        Close after the buffered bytes are sent.
        """

    def abortConnection():
        """
        Close at once, dropping what is buffered: for a client that does not
        read what it was sent before L{loseConnection}.
        """

    def registerProducer(producer, streaming):
        """
        Register the session as the producer of outgoing data, so that it is
        paused while the client does not keep up.
        """

    def unregisterProducer():
        """
        Undo L{registerProducer}.
        """

    def pauseProducing():
        """
        Stop reading from the client for a while.
        """

    def resumeProducing():
        """
        Read from the client again.
        """

    def getPeer():
        """
        @return: the client's address, for logs.
        """


class IDeliveryTarget(Interface):
    """
    The broker's view of a subscriber: where messages of a subscription go.
    Implemented by the session layer; the broker never sees a transport.
    """

    writable = Attribute(
        "True while the connection accepts more messages; queue messages are "
        "only dispatched to writable targets."
    )

    def deliver(subscription, message):
        """
        Send C{message} to the client for C{subscription}. Called by the
        broker; never fails (a target that cannot take more closes itself).
        """
