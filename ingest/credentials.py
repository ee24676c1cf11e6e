"""PhysioNet credentials: from the environment, a netrc file or a prompt, never from the command line.

The password lives only in a :class:`Credentials` object (whose ``repr`` leaves it out) and in the ``Authorization``
header of each request; no message, exception text or file of this project ever holds it.
"""

from __future__ import annotations

import base64
import getpass
import netrc
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

USERNAME_VARIABLE = "PHYSIONET_USERNAME"
PASSWORD_VARIABLE = "PHYSIONET_PASSWORD"
PHYSIONET_HOST = "physionet.org"
WHERE_TO_LOOK = f"check ~/.netrc or {USERNAME_VARIABLE}/{PASSWORD_VARIABLE}"


class CredentialsError(Exception):
    """No credentials were found, or PhysioNet refused them. The message never holds the password."""


@dataclass(frozen=True)
class Credentials:
    """A PhysioNet user name and password, and where they came from (for messages)."""

    username: str
    password: str = field(repr=False)
    source: str

    def authorization_header(self) -> str:
        """The value of an HTTP basic-auth ``Authorization`` header (RFC 7617, UTF-8)."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


def refused(credentials: Credentials, url: str) -> CredentialsError:
    """The error for a request that PhysioNet answered with 401 or 403."""
    return CredentialsError(
        f"PhysioNet refused the credentials for user {credentials.username} at {url}: {WHERE_TO_LOOK} "
        f"(these came from {credentials.source})"
    )


def netrc_path(environ: Mapping[str, str]) -> Path:
    """The netrc file to read: ``$NETRC`` when set, else ``~/.netrc``."""
    return Path(environ["NETRC"]) if environ.get("NETRC") else Path.home() / ".netrc"


def credentials_from_netrc(path: Path, hosts: Iterable[str]) -> Credentials | None:
    """The login and password of the first of ``hosts`` (then ``default``) in the netrc file, or None.

    Raises
    ------
    CredentialsError
        The file exists but cannot be read or parsed (the message names the file and line, never a token).
    """
    if not path.is_file():
        return None
    try:
        entries = netrc.netrc(str(path)).hosts
    except netrc.NetrcParseError as error:
        raise CredentialsError(f"{path}: cannot parse line {error.lineno}") from None
    except OSError as error:
        raise CredentialsError(f"{path}: {error.strerror}") from None
    for host in (*hosts, "default"):
        login, _, password = entries.get(host, ("", None, ""))
        if login and password:
            return Credentials(login, password, f"{path}, machine {host}")
    return None


def prompt_credentials(username: str | None) -> Credentials:
    """Ask on the terminal: the user name (unless given) and the password (not echoed)."""
    username = username or input("PhysioNet username: ").strip()
    password = getpass.getpass(f"PhysioNet password for {username}: ")
    return Credentials(username, password, "the prompt")


def find_credentials(
    base_url: str, environ: Mapping[str, str] | None = None, *, interactive: bool | None = None
) -> Credentials:
    """PhysioNet credentials for ``base_url``, from the first source that has them.

    1. ``PHYSIONET_USERNAME`` and ``PHYSIONET_PASSWORD`` (both set);
    2. the netrc file (``$NETRC`` or ``~/.netrc``): the entry for the base URL's host, then ``physionet.org``, then
       ``default``;
    3. a prompt, when ``interactive`` (default: standard input is a terminal).

    Raises
    ------
    CredentialsError
        No source has them.
    """
    environ = os.environ if environ is None else environ
    username, password = environ.get(USERNAME_VARIABLE), environ.get(PASSWORD_VARIABLE)
    if username and password:
        return Credentials(username, password, f"{USERNAME_VARIABLE}/{PASSWORD_VARIABLE}")
    hosts = [host for host in (urlsplit(base_url).hostname, PHYSIONET_HOST) if host]
    found = credentials_from_netrc(netrc_path(environ), hosts)
    if found is not None:
        return found
    if sys.stdin.isatty() if interactive is None else interactive:
        return prompt_credentials(username)
    raise CredentialsError(
        f"no PhysioNet credentials: add 'machine {PHYSIONET_HOST} login USER password PASSWORD' to ~/.netrc "
        f"(or the file $NETRC names), or set {USERNAME_VARIABLE} and {PASSWORD_VARIABLE}"
    )
