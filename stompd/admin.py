"""
C{stompd-admin}: manage the users file and check a configuration.

    stompd-admin [--config FILE | --users-file FILE] user add NAME [--groups G1,G2]
    stompd-admin ... user remove NAME
    stompd-admin ... user list
    stompd-admin ... token NAME
    stompd-admin check-config FILE

C{python -m stompd.admin} is the same. The users file is C{--users-file},
else the C{[auth] users-file} of C{--config} (default
C{/etc/stompd/stompd.toml}). A new password is asked twice on a terminal,
or read as one line from a pipe; an empty one is refused. Files are
rewritten whole; an existing one keeps its owner and mode, a new one is
readable by its owner only.
"""

import argparse
import getpass
import os
import sys
import tempfile

from stompd.auth import hash_password, hash_token, new_token, parse_line, parse_users
from stompd.config import load_config
from stompd.errors import ConfigError

DEFAULT_CONFIG = "/etc/stompd/stompd.toml"


class AdminError(Exception):
    """
    What stompd-admin prints, one line, before exiting 1.
    """


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise AdminError(f"{path}: cannot read: {e.strerror}") from None
    try:
        parse_users(text, path)
    except ConfigError as e:
        raise AdminError(str(e)) from None
    return text.splitlines()


def _write_lines(path: str, lines: list[str]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        # An existing file keeps its owner and mode (the broker's group may
        # read it); a new one is its owner's alone.
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    handle, temporary = tempfile.mkstemp(prefix=".users-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in lines))
        if old is None:
            os.chmod(temporary, 0o600)
        else:
            os.chmod(temporary, old.st_mode & 0o777)
            if os.geteuid() == 0:
                os.chown(temporary, old.st_uid, old.st_gid)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _name_of(line: str) -> str | None:
    parsed = parse_line(line)
    return parsed[0] if parsed else None


def _check_name(name: str) -> None:
    if not name or ":" in name or any(char.isspace() for char in name) or name.startswith("#"):
        raise AdminError(f"invalid user name {name!r}: no ':', spaces or leading '#'")


def _ask_password(name: str, stdin) -> str:
    if stdin.isatty():
        first = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != first:
            raise AdminError("the passwords differ")
    else:
        first = stdin.readline().rstrip("\r\n")
    if not first:
        raise AdminError("an empty password is refused")
    return first


def user_add(path: str, name: str, groups: str, stdin) -> str:
    _check_name(name)
    names = [group.strip() for group in groups.split(",") if group.strip()]
    for group in names:
        if ":" in group or any(char.isspace() for char in group):
            raise AdminError(f"invalid group {group!r}")
    lines = _read_lines(path)
    password = _ask_password(name, stdin)
    # A user added again gets the new password and groups; tokens stay.
    kept = [line for line in lines if _name_of(line) != name or "token-sha256$" in line]
    entry = f"{name}:{hash_password(password)}"
    if names:
        entry += ":" + ",".join(names)
    _write_lines(path, kept + [entry])
    return f"{name} added to {path}"


def user_remove(path: str, name: str) -> str:
    lines = _read_lines(path)
    kept = [line for line in lines if _name_of(line) != name]
    if len(kept) == len(lines):
        raise AdminError(f"{path}: no user {name!r}")
    _write_lines(path, kept)
    return f"{name} removed from {path}"


def user_list(path: str) -> str:
    users = parse_users("\n".join(_read_lines(path)), path)
    rows = []
    for name, entry in users.items():
        groups = ",".join(sorted(entry.groups)) or "-"
        rows.append(f"{name}\tgroups={groups}\tpassword={'yes' if entry.passwords else 'no'}\ttokens={len(entry.tokens)}")
    return "\n".join(rows)


def token(path: str, name: str) -> str:
    _check_name(name)
    lines = _read_lines(path)
    made = new_token()
    _write_lines(path, lines + [f"{name}:{hash_token(made)}"])
    # Shown once: only its hash is kept.
    return made


def check_config(path: str) -> str:
    from twisted.internet.task import Clock

    from stompd.tap import make_advertisers, make_broker

    try:
        config = load_config(path)
        make_broker(config, Clock())
        make_advertisers(config, Clock())
    except ConfigError as e:
        message = str(e)
        raise AdminError(message if message.startswith(path) else f"{path}: {message}") from None
    return f"{path}: OK"


def _users_file(args) -> str:
    if args.users_file:
        return args.users_file
    config_path = args.config or DEFAULT_CONFIG
    try:
        config = load_config(config_path)
    except ConfigError as e:
        raise AdminError(f"{e} (or name the users file with --users-file)") from None
    if not config.auth.users_file:
        raise AdminError(f"{config_path}: [auth] users-file is not set; name the file with --users-file")
    return config.auth.users_file


def main(argv: list[str] | None = None, stdin=None) -> int:
    parser = argparse.ArgumentParser(prog="stompd-admin", description="Manage stompd's users file and configuration.")
    parser.add_argument("--users-file", help="the users file (default: [auth] users-file of --config)")
    parser.add_argument("--config", help=f"the broker's configuration (default {DEFAULT_CONFIG})")
    commands = parser.add_subparsers(dest="command", required=True)
    user = commands.add_parser("user", help="add, remove or list users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--groups", default="", help="comma-separated groups")
    user.add_parser("remove", help="remove a user and its tokens").add_argument("name")
    user.add_parser("list", help="list users, their groups and tokens")
    commands.add_parser("token", help="make a token for a user; prints it once").add_argument("name")
    commands.add_parser("check-config", help="check a configuration file").add_argument("file")
    args = parser.parse_args(argv)
    stdin = stdin or sys.stdin
    try:
        if args.command == "check-config":
            output = check_config(args.file)
        elif args.command == "token":
            output = token(_users_file(args), args.name)
        elif args.action == "add":
            output = user_add(_users_file(args), args.name, args.groups, stdin)
        elif args.action == "remove":
            output = user_remove(_users_file(args), args.name)
        else:
            output = user_list(_users_file(args))
    except AdminError as e:
        print(f"stompd-admin: {e}", file=sys.stderr)
        return 1
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
