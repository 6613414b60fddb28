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
    acknowledged (in flight), delivery counts and times, leases (visibility
    timeouts), delays, priorities, channels, expiry and dead letters.

    Topics are not stored: a topic message exists only while it is being
    fanned out. All times are seconds on the broker's clock
    (C{reactor.seconds()}), so tests can drive them with a C{Clock}.

    A delivery is named by C{(message id, delivery count)}: the count the
    message had when L{reserve} handed it out. Settling calls (L{ack},
    L{release}, L{unreserve}, L{dead_letter}) take such pairs and ignore
    any that is not the message's current delivery (acknowledged already,
    or whose lease ran out and which was delivered again since), so that a
    late answer to an old delivery never touches a newer one.

    Every method but the C{watch} ones returns a L{Deferred}; none may
    block the reactor. A Deferred that cannot do its work (the store is
    unreachable, or too slow) fails with L{stompd.errors.StorageError}. A
    store may be shared by several brokers (each with its own node id), so
    a message is handed to at most one consumer at a time across all of
    them, and a node that is gone (it stopped renewing its lease) has its
    deliveries given back by the others. L{stompd.testing.store_contract}
    holds every rule below as a test.
    """

    shared = Attribute(
        "True if other broker nodes may use the same store (queues, then, "
        "may have consumers this node does not know of)."
    )

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

    def watch(callback):
        """
        Call C{callback(queue)} whenever messages become deliverable in
        C{queue} by the store's own doing rather than by this broker's
        L{enqueue} or L{release} (a message moved to a dead-letter queue;
        for a shared store, another node's work), so that the broker
        dispatches them. C{callback(None)} means any queue may have work
        (a lost connection to the store is back). Returns nothing;
        C{callback} may be called from within any other method, after its
        change is made.
        """

    def watch_dead_letters(callback):
        """
        Call C{callback(queue, reason, dead_letter_queue, count)} after a
        call of this broker's took C{count} messages out of C{queue}
        without an acknowledgement: moved to C{dead_letter_queue}, or
        dropped when that is C{None} (the policy has no dead-letter queue,
        or the message expired and C{policy.dead_letter_expired} is off).
        C{reason} is the one the dead letters carry: C{expired},
        C{max-deliveries}, or what L{dead_letter} was given. The broker
        counts them for its metrics; what other nodes sharing the store do
        is reported to them, not here. Returns nothing.
        """

    def watch_topics(callback):
        """
        Call C{callback(vhost, topic, message)} for every topic message
        that another broker node sharing the store published (see
        L{publish}), so that this node delivers it to its own subscribers.
        A store used by one node only never calls it. Returns nothing.
        """

    def publish(vhost, topic, message):
        """
        Hand a topic message, already delivered to this node's subscribers,
        to the other nodes sharing the store, which deliver it to theirs
        (each exactly once). A store for one node does nothing.

        @param vhost: the virtual host's name.
        @param topic: the topic's name, as subscriptions match it.
        @return: a Deferred firing once the message is on its way to every
            node, or failing with L{stompd.errors.StorageError}.
        """

    def bind(vhost, queue, pattern):
        """
        Make C{queue} (a durable topic subscription's queue) receive a copy
        of every message published in C{vhost} to a topic that C{pattern}
        matches, by whichever node publishes it; replaces an earlier
        binding of C{queue}. Kept until L{unbind}, across restarts if the
        store keeps anything.

        @return: a Deferred firing once every node will see the binding.
        """

    def unbind(vhost, queue):
        """
        Undo L{bind} (the queue itself is left to L{delete}).

        @return: a Deferred firing when done.
        """

    def bindings():
        """
        @return: a Deferred firing with every binding, as a list of
            C{(vhost, queue, pattern)}.
        """

    def watch_bindings(callback):
        """
        Call C{callback(vhost, queue, pattern)} when another node binds
        C{queue}, and C{callback(vhost, queue, None)} when it unbinds it.
        Returns nothing.
        """

    def enqueue(queue, messages):
        """
        Add C{messages} to C{queue} in their order, creating the queue: each
        after every message of its priority, and not visible before its
        C{visible_at} if that is set. The SENDs of one read to one queue
        come in one call: a store over the network stores them in one
        round trip.

        @param queue: the queue's name, e.g. C{"/queue/work"}.
        @param messages: a non-empty list of
            L{stompd.broker.message.Message}.
        @return: a Deferred firing, once all are stored, with the number of
            messages then waiting in the queue (in flight excluded, delayed
            included), which the broker uses for publisher flow control.
        """

    def reserve(queue, limit, now, policy):
        """
        Take up to C{limit} messages that are visible at C{now} and that
        C{policy} reads (its channel filter) for delivery: highest
        C{priority} first, oldest first within a priority.

        Before anything is taken, leases that ran out by C{now} end (their
        messages come back as with L{release}) and delayed messages whose
        time came become visible. A message found expired (C{expires_at}
        not after C{now}) is never returned: it is dead-lettered with reason
        C{expired} if C{policy.dead_letter_expired}, else dropped. A message
        already delivered C{policy.max_deliveries} times is dead-lettered
        with reason C{max-deliveries}. Dead-lettering moves a message, in
        one step, to C{policy.dead_letter} as built by
        L{stompd.broker.message.dead_letter_of} (or drops it if that is
        C{None}), and announces the dead-letter queue to the watchers.

        Each returned message has its C{delivery_count} incremented and its
        C{last_delivered_at} (and, on its first delivery,
        C{first_delivered_at}) set to C{now}. It is in flight until settled,
        or until its lease (C{now + policy.lease}, none if C{policy.lease}
        is C{None}) runs out. The store keeps C{policy} with the delivery
        for when it comes back.

        @type policy: L{stompd.broker.policy.DeliveryPolicy}
        @return: a Deferred firing with a list of
            L{stompd.broker.message.Message}, possibly empty.
        """

    def ack(queue, deliveries):
        """
        Forget the messages of current C{deliveries} for good.

        @param deliveries: C{(message id, delivery count)} pairs.
        @return: a Deferred firing with the number of messages removed.
        """

    def release(queue, deliveries, visible_at):
        """
        End current C{deliveries} without an acknowledgement (a NACK, a
        consumer gone, a lease run out): each message comes back to the head
        of its queue, in the original order, visible at once or from
        C{visible_at}; but one already delivered as often as the policy it
        was reserved with allows is dead-lettered (reason
        C{max-deliveries}) instead.

        @return: a Deferred firing with the number of deliveries ended.
        """

    def unreserve(queue, deliveries):
        """
        Give back messages that L{reserve} handed out but that were never
        written to a consumer (it became unable to take them): back at the
        head of the queue in order, visible at once, their delivery count
        and delivery times as they were before the reserve. A delivery
        counts only when a consumer was sent it.

        @return: a Deferred firing with the number of messages given back.
        """

    def dead_letter(queue, deliveries, reason):
        """
        Move the messages of current C{deliveries} to the dead-letter queue
        of the policy they were reserved with, as L{reserve} does, with
        C{reason} (C{rejected} for a NACK that refuses a requeue).

        @return: a Deferred firing with the number of messages moved (or
            dropped, for a policy without a dead-letter queue).
        """

    def next_visible_at(queue):
        """
        When does a message of C{queue} that is not visible now next become
        visible (a lease running out, a delayed message or release)?

        @return: a Deferred firing with a time, or C{None} if nothing is
            waiting to become visible.
        """

    def depth(queue):
        """
        @return: a Deferred firing with the number of messages waiting in
            C{queue} (in flight excluded, delayed included).
        """

    def purge(queue):
        """
        Remove the messages of C{queue} that wait (ready or delayed);
        those delivered and not yet settled are spared and settle as usual.

        @return: a Deferred firing with the number of messages removed.
        """

    def delete(queue):
        """
        Drop C{queue} and everything in it, in flight included.

        @return: a Deferred firing when done.
        """


class ITimedStore(Interface):
    """
    An L{IMessageStore} that times its own message calls. The broker times
    a store's calls one by one otherwise; a store that answers many calls
    with one round trip (a batch) times that answer once for all of them.
    """

    def time_calls(observe):
        """
        From now on, call C{observe(operation, seconds, calls)} as calls
        end: C{calls} calls of C{operation} (the method's name: C{enqueue},
        C{reserve}, C{ack}, C{release}, C{unreserve}, C{dead_letter},
        C{depth} or C{purge}) took C{seconds} each, failed or not.
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

    def groups(user):
        """
        The groups of an authenticated C{user}, which authorization rules
        name; a frozenset of strings, empty for none. Never fails, never
        blocks.
        """


class IReloadable(Interface):
    """
    A plugin that can take a new configuration while the broker runs (on
    SIGHUP), without dropping connections.
    """

    def reload(config):
        """
        Take what it reads from the new L{stompd.config.Config} (users
        files, tokens, ...). Synchronous.

        @raise stompd.errors.ConfigError: if the new one is bad; the old one
            stays in force.
        """


class ISessionTransport(Interface):
    """
    What a STOMP session needs from the connection carrying it: a byte pipe
    with flow control both ways. A TCP transport provides it as it is; the
    WebSocket transport adapts Autobahn to it.

    A transport may also have C{buffered_bytes()}, the number of bytes
    written and not yet handed to the kernel: then a client is a slow
    consumer when that passes C{[limits] max-buffered}; without it, when
    what was written since the transport last asked the session to pause
    does, which a client that reads on but never quite catches up with a
    stream of large messages also reaches.

    And it may have C{write_frames(frames)}: write a list of whole STOMP
    frames (C{bytes} each), in order, in one go; plain TCP sends at once
    what the socket takes, WebSocket makes one message of each and writes
    them together. The session then keeps what it writes during a burst of
    frames (L{stompd.broker.dispatch.DispatchGate}) and gives it to
    C{write_frames} at the end of the burst, and outside a burst gives it
    each frame as it is made; without it, every frame goes to C{write} as
    it is made.
    """

    def write(data):
        """
        Send bytes to the client.
        """

    def writeSequence(data):
        """
        Send the bytes of a sequence of buffers (C{bytes}, or a
        C{bytearray} body) as one piece (one frame: its parts are not
        joined first, so a large body is not copied into a frame).
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

    def room():
        """
        Whether a topic's publisher should wait for this target before it
        publishes more: C{None} if not, else a Deferred that fires when it
        should go on (the client has read what waited for it, or the target
        gave up waiting for it). Asked by the broker after delivering a
        topic message to a target that is not C{writable}.
        """


class IBrokerFacade(Interface):
    """
    What a connector may touch of the broker, and nothing more: it never
    reaches into virtual hosts, queues or sessions. Given to
    L{IConnector.start}.
    """

    node_id = Attribute("This broker node's id, for origin headers and logs.")

    clock = Attribute("The reactor (a Clock in tests), for timers.")

    def publish(vhost, headers, body, origin):
        """
        Route a message into virtual host C{vhost} as a client's SEND would
        be (C{headers} as a SEND frame's, C{destination} among them): to
        local topic subscribers and queues, and to every connector owning
        the destination except the one named C{origin}, so that a message
        never goes back to where it came from.

        @return: a Deferred firing once the message is stored (queues) or
            handed on (topics); it fails with L{stompd.errors.StompError}
            for a bad destination or header.
        """


class IRemoteSubscription(Interface):
    """
    A local client's subscription to a destination that a connector serves
    (L{IConnector.relays_subscriptions}): the connector feeds it from its
    upstream and is told of its acknowledgements.
    """

    vhost = Attribute("The name of the virtual host the client is in.")

    destination = Attribute("The destination the client subscribed to.")

    headers = Attribute("The SUBSCRIBE frame's headers, for those the connector passes upstream.")

    acks = Attribute("True if the client acknowledges each delivery (ack mode client or client-individual).")

    prefetch = Attribute("The most unacknowledged deliveries the client holds at once, or None.")

    def deliver(headers, body, upstream_id):
        """
        Hand the client a message that arrived from upstream (C{headers} as
        the upstream MESSAGE's); C{upstream_id} names the upstream delivery
        in L{IConnector.settle}. Never fails.
        """


class IConnector(Interface):
    """
    A link from this broker to other brokers, owning the destinations that
    start with one of its prefixes: the broker hands it the SENDs to them,
    and (if it relays subscriptions) the local subscriptions to them.

    Found through the C{stompd.connectors} entry-point group, by the
    C{type} of a C{[[connectors]]} table; the entry point's settings are
    that table (see L{stompd.plugins}).
    """

    name = Attribute("The connector's name from its table, for logs and errors.")

    prefixes = Attribute("The destination prefixes it owns, a tuple of strings.")

    relays_subscriptions = Attribute(
        "True if local subscriptions to its destinations are served from upstream "
        "(subscribe, settle and unsubscribe are called); False if they are local "
        "subscriptions like any other."
    )

    def start(broker):
        """
        Start connecting, with the L{IBrokerFacade} C{broker}.

        @return: a Deferred firing once the connector can take calls (an
            upstream need not be up yet); a failure ends the broker's start.
        """

    def stop():
        """
        Disconnect from every upstream.

        @return: a Deferred firing when done; never fails.
        """

    def upstreams_connected():
        """
        How many of its upstream brokers are connected now, for metrics and
        the console. Never blocks.
        """

    def backlog():
        """
        How many forwarded frames wait for an upstream now (buffered, or
        sent and not yet confirmed): its lag, for metrics. Never blocks.
        """

    def send(vhost, headers, body, producer):
        """
        Take a local client's SEND (C{headers} as its frame's) to one of
        its destinations. C{producer} names the client's connection, so
        that one producer's messages keep their order.

        @return: a Deferred firing once the message may be confirmed to the
            client (for a SEND with a C{receipt} header: when the upstream
            confirmed it); it fails with L{stompd.errors.StompError} naming
            the connector when it cannot be forwarded.
        """

    def subscribe(subscription):
        """
        An L{IRemoteSubscription} to one of its destinations appeared.

        @return: a Deferred firing once the subscription is in force
            upstream, or is waiting for the upstream to come back; it fails
            with L{stompd.errors.StompError} if it is refused.
        """

    def unsubscribe(subscription):
        """
        C{subscription} is gone: unsubscribe upstream if it was the last
        to need it. Its unacknowledged deliveries go back to the upstream.

        @return: a Deferred; never fails.
        """

    def settle(subscription, upstream_ids, action):
        """
        The client settled the deliveries named by C{upstream_ids}:
        C{action} is C{"ack"} (ACK), C{"release"} (NACK: deliver again) or
        C{"reject"} (NACK with C{requeue:false}: dead-letter).

        @return: a Deferred firing once passed upstream; it fails with
            L{stompd.errors.StompError} if the upstream is away.
        """


class IDiscoveryAgent(Interface):
    """
    Finds the upstream brokers of a fanout connector, and advertises this
    broker to others. Found through the C{stompd.discovery} entry-point
    group by the scheme of a discovery URI (C{static} for C{static:(...)});
    the entry point's settings are C{{"uri": URI}}.

    URIs of brokers are C{tcp://} or C{ssl://} URIs or endpoint strings, as
    L{stompd.connectors.settings} reads them.
    """

    def watch(found, lost):
        """
        Before L{start}: call C{found(uri)} for each broker as it appears
        and C{lost(uri)} when it goes (never for this broker's own
        advertised URI).
        """

    def advertise(uri, name):
        """
        Before L{start}: announce this broker, reachable at C{uri}, as
        C{name} (its node id), until L{stop}.

        @raise stompd.errors.ConfigError: if this agent cannot advertise.
        """

    def start():
        """
        Start discovering and advertising. An unreachable directory is not
        a failure: it is tried again.

        @return: a Deferred firing once started.
        """

    def stop():
        """
        Stop, and withdraw this broker's advertisement.

        @return: a Deferred firing when done; never fails.
        """
