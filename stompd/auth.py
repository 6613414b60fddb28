"""
The built-in authenticator: a users file of salted password hashes, the
default guest/guest user, and an anonymous switch.

A users file has one C{name:hash} line per user; blank lines and lines
starting with C{#} are ignored. Make a line with::

    python -m stompd.auth alice

which asks for the password and prints the line. Hashes are PBKDF2-SHA256
with a random salt: a stolen file does not give the passwords away.
"""

import base64
import getpass
import hashlib
import hmac
import os
import sys

from twisted.internet.defer import fail, succeed
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from stompd.errors import AuthenticationError, ConfigError
from stompd.interfaces import IAuthenticator

_SCHEME = "pbkdf2-sha256"
_ITERATIONS = 200_000
GUEST = "guest"


def hash_password(password: str, iterations: int = _ITERATIONS, salt: bytes | None = None) -> str:
    """
    Hash C{password} for a users file.
    """
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "$".join(
        [_SCHEME, str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def check_password(password: str, hashed: str) -> bool:
    """
    Does C{password} match C{hashed}? Slow on purpose: call it off the
    reactor thread.
    """
    scheme, iterations, salt, digest = hashed.split("$")
    computed = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(computed, base64.b64decode(digest))


def parse_users(text: str, path: str) -> dict[str, str]:
    """
    Read a users file into C{{name: hash}}.

    @raise ConfigError: naming the file and line of a malformed entry.
    """
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, hashed = line.partition(":")
        parts = hashed.split("$")
        if not name or len(parts) != 4 or parts[0] != _SCHEME or not parts[1].isdigit():
            raise ConfigError(
                f"{path}, line {number}: expected 'name:{_SCHEME}$...' as made by 'python -m stompd.auth NAME'"
            )
        users[name] = hashed
    return users


def load_users(path: str) -> dict[str, str]:
    """
    Read the users file at C{path}.

    @raise ConfigError: if it cannot be read or is malformed.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read users file: {e.strerror}") from None
    return parse_users(text, path)


@implementer(IAuthenticator)
class UsersAuthenticator:
    """
    Checks logins against a dict of password hashes.

    Hashing runs in the reactor's thread pool so that a burst of CONNECTs
    does not stall everyone else; a password that was verified once is
    remembered as a fast keyed digest, because Spring's relay opens a session
    per browser tab with the same credentials.
    """

    def __init__(self, reactor, users: dict[str, str], guest: bool = True, anonymous: bool = False) -> None:
        self._reactor = reactor
        self._users = users
        self._guest = guest and GUEST not in users
        self._anonymous = anonymous
        self._key = os.urandom(32)
        self._verified: dict[str, bytes] = {}

    def _fingerprint(self, login: str, passcode: str) -> bytes:
        return hmac.new(self._key, f"{login}\0{passcode}".encode("utf-8"), hashlib.sha256).digest()

    def authenticate(self, login, passcode, vhost):
        if login is None:
            if self._anonymous:
                return succeed("anonymous")
            return fail(AuthenticationError("login required", "This broker does not accept anonymous clients."))
        passcode = passcode or ""
        refused = AuthenticationError("bad credentials", f"Login {login!r} was refused: wrong user name or passcode.")
        if self._guest and login == GUEST:
            return succeed(login) if hmac.compare_digest(passcode, GUEST) else fail(refused)
        hashed = self._users.get(login)
        if hashed is None:
            return fail(refused)
        fingerprint = self._fingerprint(login, passcode)
        known = self._verified.get(login)
        if known is not None and hmac.compare_digest(known, fingerprint):
            return succeed(login)

        def checked(ok: bool) -> str:
            if not ok:
                raise refused
            self._verified[login] = fingerprint
            return login

        checking = deferToThreadPool(self._reactor, self._reactor.getThreadPool(), check_password, passcode, hashed)
        return checking.addCallback(checked)


def create_authenticator(config, reactor, settings) -> UsersAuthenticator:
    """
    The C{users} entry point of group C{stompd.auth}: the built-in
    authenticator, configured by the C{[auth]} section.
    """
    users = load_users(config.auth.users_file) if config.auth.users_file else {}
    return UsersAuthenticator(reactor, users, guest=config.auth.guest, anonymous=config.auth.anonymous)


def main(argv: list[str]) -> int:
    """
    C{python -m stompd.auth NAME}: print a users-file line for NAME.
    """
    if len(argv) != 1:
        print("usage: python -m stompd.auth NAME  (asks for the password)", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {argv[0]}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    print(f"{argv[0]}:{hash_password(password)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
