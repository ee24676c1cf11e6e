"""PhysioNet credentials: from the environment, a netrc file or a prompt, never from the command line, and bound to
the one origin (scheme, host, port) they belong to.

The password lives only in a :class:`Credentials` object (whose ``repr`` leaves it out) and in the ``Authorization``
header of requests to that origin; no message, exception text or file of this project ever holds it.

Where credentials may go:

- over HTTPS only. The one exception is a loopback test server named explicitly in ``PHYSIONET_TEST_SERVER``
  (``http://127.0.0.1:<port>`` or ``http://[::1]:<port>``, the base URL's exact origin): it may be served over plain
  HTTP. It is an environment variable rather than a setting so that no configuration file can allow plain HTTP for
  a whole installation, and it names one port, so even another local server gets nothing;
- ``PHYSIONET_USERNAME``/``PHYSIONET_PASSWORD`` and netrc's ``default`` entry name no machine: they go only to
  ``physionet.org`` (or the named test server);
- a netrc ``machine`` entry goes only to that host; an answer to the prompt, to the host the prompt names.
"""

from __future__ import annotations

import base64
import getpass
import ipaddress
import netrc
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

USERNAME_VARIABLE = "PHYSIONET_USERNAME"
PASSWORD_VARIABLE = "PHYSIONET_PASSWORD"
TEST_SERVER_VARIABLE = "PHYSIONET_TEST_SERVER"
PHYSIONET_HOST = "physionet.org"
PHYSIONET_BASE_URL = f"https://{PHYSIONET_HOST}/files/"
WHERE_TO_LOOK = f"check ~/.netrc or {USERNAME_VARIABLE}/{PASSWORD_VARIABLE}"
DEFAULT_PORTS = {"http": 80, "https": 443}


class CredentialsError(Exception):
    """No credentials were found, they may not go where asked, or PhysioNet refused them. Never holds the password."""


class Origin(NamedTuple):
    """Where a URL's requests go: scheme, lowercase host name (IPv6 without brackets) and port."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an ``http`` or ``https`` URL.

        Raises
        ------
        ValueError
            Another scheme, no host, or a port that is not a number from 0 to 65535.
        """
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        return cls(parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])

    @property
    def is_loopback(self) -> bool:
        """The host is a loopback IP address (a name such as ``localhost`` is not trusted to resolve to one)."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class Credentials:
    """A PhysioNet user name and password, where they came from (for messages) and the only origin they go to.

    Raises
    ------
    CredentialsError
        ``origin`` is plain HTTP to a host other than a loopback address.
    """

    username: str
    password: str = field(repr=False)
    source: str
    origin: Origin

    def __post_init__(self) -> None:
        if self.origin.scheme != "https" and not self.origin.is_loopback:
            raise CredentialsError(f"credentials go over https only, not to {self.origin}")

    def belong_to(self, url: str) -> bool:
        """Whether ``url`` is on the credentials' own origin (False for anything that is not an http(s) URL)."""
        try:
            return Origin.of(url) == self.origin
        except ValueError:
            return False

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


def named_test_server(environ: Mapping[str, str]) -> Origin | None:
    """The loopback test server that ``PHYSIONET_TEST_SERVER`` names, or None when it is unset or empty.

    Raises
    ------
    CredentialsError
        The variable holds anything but an ``http://`` URL of a loopback IP address.
    """
    value = environ.get(TEST_SERVER_VARIABLE, "")
    if not value:
        return None
    try:
        origin = Origin.of(value)
    except ValueError:
        origin = None
    if origin is None or origin.scheme != "http" or not origin.is_loopback:
        raise CredentialsError(
            f"{TEST_SERVER_VARIABLE}={value!r}: expected a loopback test server such as http://127.0.0.1:8080 "
            f"(plain http, a loopback IP address); unset it to download from PhysioNet"
        )
    return origin


def destination(base_url: str, environ: Mapping[str, str]) -> Origin:
    """The origin of ``base_url``, once it is one that may receive credentials: any HTTPS origin, or the loopback
    test server named in ``PHYSIONET_TEST_SERVER``.

    Raises
    ------
    CredentialsError
        Plain HTTP to anything else, not an http(s) URL, or a URL with a user name or password in it (which the
        message does not repeat); the message says how to fix the setting.
    """
    if "@" in base_url:  # a user name or password in the URL; a PhysioNet URL has no other use for "@"
        raise CredentialsError(
            "the setting physionet_base_url holds a user name or password ('@'): remove them from it, and put them "
            "in ~/.netrc instead"
        )
    try:
        origin = Origin.of(base_url)
    except ValueError:
        origin = None
    if origin is not None and (origin.scheme == "https" or origin == named_test_server(environ)):
        return origin
    raise CredentialsError(
        f"refusing to send PhysioNet credentials to {base_url!r}: expected an https:// base URL such as "
        f"{PHYSIONET_BASE_URL} (setting physionet_base_url, XRH_PHYSIONET_BASE_URL); plain http goes only to a "
        f"loopback test server named in {TEST_SERVER_VARIABLE}"
    )


def netrc_path(environ: Mapping[str, str]) -> Path:
    """The netrc file to read: ``$NETRC`` when set, else ``~/.netrc``."""
    return Path(environ["NETRC"]) if environ.get("NETRC") else Path.home() / ".netrc"


def credentials_from_netrc(path: Path, origin: Origin, *, use_default: bool) -> Credentials | None:
    """The login and password of the netrc entry for ``origin``'s host (then ``default`` when ``use_default``), or
    None. Machine names match regardless of case, as host names do.

    Raises
    ------
    CredentialsError
        The file exists but cannot be read or parsed (the message names the file and line, never a token).
    """
    if not path.is_file():
        return None
    try:
        entries = {machine.lower(): entry for machine, entry in netrc.netrc(str(path)).hosts.items()}
    except netrc.NetrcParseError as error:
        raise CredentialsError(f"{path}: cannot parse line {error.lineno}") from None
    except OSError as error:
        raise CredentialsError(f"{path}: {error.strerror}") from None
    for machine in (origin.host, "default") if use_default else (origin.host,):
        login, _, password = entries.get(machine, ("", None, ""))
        if login and password:
            return Credentials(login, password, f"{path}, machine {machine}", origin)
    return None


def prompt_credentials(username: str | None, origin: Origin) -> Credentials:
    """Ask on the terminal, naming the host: the user name (unless given) and the password (not echoed)."""
    username = username or input(f"PhysioNet username for {origin.host}: ").strip()
    password = getpass.getpass(f"PhysioNet password for {username} at {origin.host}: ")
    return Credentials(username, password, "the prompt", origin)


def find_credentials(
    base_url: str, environ: Mapping[str, str] | None = None, *, interactive: bool | None = None
) -> Credentials:
    """PhysioNet credentials for ``base_url``'s origin, from the first source that has them for it.

    1. ``PHYSIONET_USERNAME`` and ``PHYSIONET_PASSWORD`` (both set), when the host is ``physionet.org`` or the named
       test server;
    2. the netrc file (``$NETRC`` or ``~/.netrc``): the entry for the base URL's host, then ``default`` under the
       same condition as 1;
    3. a prompt, when ``interactive`` (default: standard input is a terminal).

    Raises
    ------
    CredentialsError
        ``base_url`` may not receive credentials (see :func:`destination`), or no source has them for it.
    """
    environ = os.environ if environ is None else environ
    origin = destination(base_url, environ)
    physionet = origin.host == PHYSIONET_HOST or origin == named_test_server(environ)
    username, password = environ.get(USERNAME_VARIABLE), environ.get(PASSWORD_VARIABLE)
    if username and password and physionet:
        return Credentials(username, password, f"{USERNAME_VARIABLE}/{PASSWORD_VARIABLE}", origin)
    found = credentials_from_netrc(netrc_path(environ), origin, use_default=physionet)
    if found is not None:
        return found
    if sys.stdin.isatty() if interactive is None else interactive:
        return prompt_credentials(username, origin)
    others = (
        f", or set {USERNAME_VARIABLE} and {PASSWORD_VARIABLE}"
        if physionet
        else f"; {USERNAME_VARIABLE}/{PASSWORD_VARIABLE} and netrc's default entry go only to {PHYSIONET_HOST}"
    )
    raise CredentialsError(
        f"no PhysioNet credentials for {origin.host}: add 'machine {origin.host} login USER password PASSWORD' to "
        f"~/.netrc (or the file $NETRC names){others}"
    )
