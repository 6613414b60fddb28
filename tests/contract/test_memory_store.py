import pytest

from stompd.storage.memory import MemoryStore
from stompd.testing.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return MemoryStore()
