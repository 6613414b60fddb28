import pytest

from stompd.broker.policy import DeliveryPolicy
from stompd.storage.memory import MemoryStore
from stompd.testing.store_contract import QUEUE, StoreContract, delivery, message


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return MemoryStore()


def test_settled_leases_do_not_pile_up():
    """
    Leases of acknowledged deliveries are dropped as the queue is used, not
    kept until their deadline: at a high rate with a long visibility
    timeout they would otherwise hold memory for every recent delivery.
    """
    store = MemoryStore()
    policy = DeliveryPolicy(lease=60.0)
    for n in range(1000):
        store.enqueue(QUEUE, [message(n)])
        [delivered] = store.reserve(QUEUE, 1, n / 1000.0, policy).result
        store.ack(QUEUE, [delivery(delivered)])
    assert sum(len(lane) for lane in store._queues[QUEUE].leases.values()) <= 1
