"""
The built-in authenticator: a users file of salted password hashes, groups
and tokens, the default guest/guest user, and an anonymous switch.

A users file has C{NAME:CREDENTIAL[:GROUP,GROUP...]} lines; blank lines and
lines starting with C{#} are ignored. A credential is a password hash
(C{pbkdf2-sha256$...}) or a token hash (C{token-sha256$...}); a user may
have several lines (a password and tokens), and is in every group any of
them lists. Manage it with::

    stompd-admin user add alice --groups ops,monitor
    stompd-admin token alice

Passwords are hashed with PBKDF2-SHA256 and a random salt: a stolen file
does not give them away. Tokens are random and long, so a salted SHA-256
is enough, and checking one is fast.
"""

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field

from twisted.internet.defer import DeferredSemaphore, fail, succeed
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from stompd.errors import AuthenticationError, ConfigError
from stompd.interfaces import IAuthenticator, IReloadable

_SCHEME = "pbkdf2-sha256"
_TOKEN_SCHEME = "token-sha256"
_ITERATIONS = 200_000
GUEST = "guest"
# One empty set for every user without groups (each frozenset() is new).
_NO_GROUPS: frozenset = frozenset()
# Password checks run at once in the thread pool, and may wait for one: a
# flood of logins neither takes every thread nor queues without end.
MAX_HASHING = 4
MAX_WAITING_LOGINS = 100


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


def new_token() -> str:
    """
    A random token for C{stompd-admin token}: shown once, kept as a hash.
    """
    return secrets.token_urlsafe(32)


def hash_token(token: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.sha256(salt + token.encode("utf-8")).digest()
    return "$".join([_TOKEN_SCHEME, base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def check_token(token: str, hashed: str) -> bool:
    _, salt, digest = hashed.split("$")
    computed = hashlib.sha256(base64.b64decode(salt) + token.encode("utf-8")).digest()
    return hmac.compare_digest(computed, base64.b64decode(digest))


@dataclass
class UserEntry:
    """
    What a users file says of one user.
    """

    passwords: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    groups: frozenset = frozenset()


def parse_line(line: str) -> tuple[str, str, frozenset] | None:
    """
    C{(name, credential, groups)} of a users-file line, C{None} for a blank
    or comment line.

    @raise ValueError: for a malformed line.
    """
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    name, _, rest = line.partition(":")
    credential, _, groups = rest.partition(":")
    parts = credential.split("$")
    password = len(parts) == 4 and parts[0] == _SCHEME and parts[1].isdigit()
    token = len(parts) == 3 and parts[0] == _TOKEN_SCHEME
    if not name or not (password or token):
        raise ValueError(f"expected 'name:{_SCHEME}$...[:groups]' as made by 'stompd-admin user add NAME'")
    return name, credential, frozenset(group for group in groups.split(",") if group)


def parse_users(text: str, path: str) -> dict[str, UserEntry]:
    """
    Read a users file.

    @raise ConfigError: naming the file and line of a malformed entry.
    """
    users: dict[str, UserEntry] = {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            parsed = parse_line(line)
        except ValueError as e:
            raise ConfigError(f"{path}, line {number}: {e}") from None
        if parsed is None:
            continue
        name, credential, groups = parsed
        entry = users.setdefault(name, UserEntry())
        (entry.tokens if credential.startswith(_TOKEN_SCHEME) else entry.passwords).append(credential)
        entry.groups = entry.groups | groups
    return users


def load_users(path: str) -> dict[str, UserEntry]:
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


@implementer(IAuthenticator, IReloadable)
class UsersAuthenticator:
    """
    Checks logins against the entries of a users file.

    Password hashing runs in the reactor's thread pool, at most
    L{MAX_HASHING} at once, so that a burst of CONNECTs does not stall
    everyone else; a password that was verified once is remembered as a fast
    keyed digest, because Spring's relay opens a session per browser tab
    with the same credentials. Tokens are checked at once.
    """

    def __init__(self, reactor, users: dict[str, UserEntry], guest: bool = True, anonymous: bool = False) -> None:
        self._reactor = reactor
        self._users = users
        self._guest = guest and GUEST not in users
        self._anonymous = anonymous
        self._key = os.urandom(32)
        self._verified: dict[str, bytes] = {}
        self._hashing = DeferredSemaphore(MAX_HASHING)

    def reload(self, config) -> None:
        users = load_users(config.auth.users_file) if config.auth.users_file else {}
        self._users = users
        self._guest = config.auth.guest and GUEST not in users
        self._anonymous = config.auth.anonymous
        # A removed user or changed password must not log in from memory.
        self._verified.clear()

    def _fingerprint(self, login: str, passcode: str) -> bytes:
        return hmac.new(self._key, f"{login}\0{passcode}".encode("utf-8"), hashlib.sha256).digest()

    def groups(self, user):
        entry = self._users.get(user)
        return entry.groups if entry is not None else _NO_GROUPS

    def authenticate(self, login, passcode, vhost):
        if login is None:
            if self._anonymous:
                return succeed("anonymous")
            return fail(AuthenticationError("login required", "This broker does not accept anonymous clients."))
        passcode = passcode or ""
        refused = AuthenticationError("bad credentials", f"Login {login!r} was refused: wrong user name or passcode.")
        if self._guest and login == GUEST:
            return succeed(login) if hmac.compare_digest(passcode, GUEST) else fail(refused)
        entry = self._users.get(login)
        if entry is None:
            return fail(refused)
        if any(check_token(passcode, hashed) for hashed in entry.tokens):
            return succeed(login)
        if not entry.passwords:
            return fail(refused)
        fingerprint = self._fingerprint(login, passcode)
        known = self._verified.get(login)
        if known is not None and hmac.compare_digest(known, fingerprint):
            return succeed(login)
        if len(self._hashing.waiting) >= MAX_WAITING_LOGINS:
            return fail(AuthenticationError("too many logins", "Too many logins are being checked; try again shortly."))

        def check() -> bool:
            pool = self._reactor.getThreadPool()
            return deferToThreadPool(self._reactor, pool, _any_password, passcode, entry.passwords)

        def checked(ok: bool) -> str:
            if not ok:
                raise refused
            self._verified[login] = fingerprint
            return login

        return self._hashing.run(check).addCallback(checked)


def _any_password(passcode: str, hashes: list[str]) -> bool:
    return any(check_password(passcode, hashed) for hashed in hashes)


def create_authenticator(config, reactor, settings) -> UsersAuthenticator:
    """
    The C{users} entry point of group C{stompd.auth}: the built-in
    authenticator, configured by the C{[auth]} section.
    """
    users = load_users(config.auth.users_file) if config.auth.users_file else {}
    return UsersAuthenticator(reactor, users, guest=config.auth.guest, anonymous=config.auth.anonymous)
