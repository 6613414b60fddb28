"""
The built-in authenticator and the users file.
"""

import pytest
from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from stompd.auth import UserEntry, UsersAuthenticator, check_password, hash_password, hash_token, parse_users
from stompd.errors import AuthenticationError, ConfigError
from stompd.interfaces import IAuthenticator


class InlineReactor:
    """
    Runs "threaded" work inline, so hashing is checked synchronously.
    """

    def getThreadPool(self):
        return self

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        try:
            on_result(True, f(*args, **kwargs))
        except Exception as e:
            on_result(False, e)

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


def authenticate(authenticator, login, passcode):
    outcome = []
    d: Deferred = authenticator.authenticate(login, passcode, "/")
    d.addBoth(outcome.append)
    [result] = outcome
    return result


def test_hash_is_salted_and_checks():
    one, two = hash_password("secret", iterations=1000), hash_password("secret", iterations=1000)
    assert one != two
    assert "secret" not in one
    assert check_password("secret", one)
    assert not check_password("Secret", one)


def test_users_file_errors_name_line():
    with pytest.raises(ConfigError, match=r"users.txt, line 2"):
        parse_users("# comment\nalice:plaintext\n", "users.txt")


def test_users_authenticator():
    users = {"alice": UserEntry(passwords=[hash_password("wonder", iterations=1000)])}
    authenticator = UsersAuthenticator(InlineReactor(), users)
    assert verifyObject(IAuthenticator, authenticator)
    assert authenticate(authenticator, "alice", "wonder") == "alice"
    # Remembered: still right, and still refuses a wrong passcode.
    assert authenticate(authenticator, "alice", "wonder") == "alice"
    assert authenticate(authenticator, "alice", "wrong").check(AuthenticationError)
    assert authenticate(authenticator, "bob", "x").check(AuthenticationError)
    assert authenticate(authenticator, "guest", "guest") == "guest"
    assert authenticate(authenticator, "guest", "nope").check(AuthenticationError)
    assert authenticate(authenticator, None, None).value.message == "login required"


def test_guest_off_and_anonymous_on():
    authenticator = UsersAuthenticator(InlineReactor(), {}, guest=False, anonymous=True)
    assert authenticate(authenticator, "guest", "guest").check(AuthenticationError)
    assert authenticate(authenticator, None, None) == "anonymous"


def test_users_file_lines_carry_groups_and_tokens():
    password = hash_password("wonder", iterations=1000)
    token = hash_token("t0ken")
    users = parse_users(f"alice:{password}:ops,monitor\nalice:{token}\nbob:{token}\n", "users")
    assert users["alice"].groups == {"ops", "monitor"}
    assert (len(users["alice"].passwords), len(users["alice"].tokens)) == (1, 1)
    authenticator = UsersAuthenticator(InlineReactor(), users)
    assert authenticator.groups("alice") == {"ops", "monitor"}
    assert authenticator.groups("nobody") == frozenset()
    # A token is a passcode; bob has only one.
    assert authenticate(authenticator, "alice", "t0ken") == "alice"
    assert authenticate(authenticator, "bob", "t0ken") == "bob"
    assert authenticate(authenticator, "bob", "wonder").check(AuthenticationError)
