"""The PhysioNet downloader against a real HTTP server with basic auth and Range support, serving a simulated release.

The server (``http.server.ThreadingHTTPServer`` on 127.0.0.1) can cut a file's body short once, serve a file wrong a
given number of times, hide a file (404) or ignore ``Range``; it can also redirect, serve other content, stall, trickle,
omit Content-Length or answer raw bytes. It records every request it answers, and every request that arrives with
its Host and Authorization headers. Paths under ``/files/`` need the test credentials, paths under ``/open/`` do not
(a redirect target that would serve anyone).
"""

from __future__ import annotations

import argparse
import base64
import csv
import gzip
import hashlib
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from ingest.credentials import Credentials, CredentialsError, Origin, find_credentials
from ingest.download import (
    DownloadError,
    Limits,
    PhysioNetClient,
    SubjectSelection,
    download,
    parse_sha256sums,
    register,
    summary_lines,
)
from simulate.generate import simulate_dataset
from xrh.settings import Settings

USER = "reader"
PASSWORD = "Pw-7c1e-never-written"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")
FILES = Path("physionet.org/files")
CXR = "mimic-cxr/2.1.0"
RANGE = re.compile(r"bytes=(\d+)-")
TEST_SERVER = "PHYSIONET_TEST_SERVER"
PATIENTS = "mimiciv/3.1/hosp/patients.csv.gz"
DEFAULT_LIMITS = Limits()
# Misbehaviour tests retry without pauses, so that four failing requests take milliseconds.
QUICK = Limits(read_timeout=2.0, retry_pause=0.0, file_seconds=10.0)


@dataclass
class MirrorState:
    """What the test server serves and how it misbehaves; ``requests`` holds (path, Range header) per answer,
    ``arrivals`` (Host, path, Authorization) per request that arrived, answered or not."""

    root: Path
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    arrivals: list[tuple[str | None, str, str | None]] = field(default_factory=list)
    cut_once: set[str] = field(default_factory=set)
    serve_wrong: dict[str, int] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    ignore_range: bool = False
    redirect_once: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, bytes] = field(default_factory=dict)
    raw_answers: dict[str, bytes] = field(default_factory=dict)
    stall_seconds: dict[str, float] = field(default_factory=dict)
    trickled: set[str] = field(default_factory=set)
    without_length: set[str] = field(default_factory=set)

    def requested(self, relative: str) -> list[str | None]:
        """The Range headers of the requests for ``relative``, in order."""
        return [header for path, header in self.requests if path == relative]


class MirrorHandler(BaseHTTPRequestHandler):
    """Serves ``/files/<project>/<version>/<path>`` to requests with the known basic-auth credentials."""

    server: MirrorServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        state = self.server.state
        state.arrivals.append((self.headers.get("Host"), self.path, self.headers.get("Authorization")))
        _, area, relative = unquote(self.path).split("/", 2)
        if area != "open" and self.headers.get("Authorization") != f"Basic {TOKEN}":
            self.send_error(401)
            return
        state.requests.append((relative, self.headers.get("Range")))
        time.sleep(state.stall_seconds.get(relative, 0.0))
        if relative in state.raw_answers:
            self.wfile.write(state.raw_answers[relative])
        elif relative in state.redirect_once:
            self.send_response(302)
            self.send_header("Location", state.redirect_once.pop(relative))
            self.end_headers()
        elif relative in state.replaced:
            self.send_file(relative, state.replaced[relative])
        elif relative in state.hidden or not (state.root / relative).is_file():
            self.send_error(404)
        else:
            self.send_file(relative, (state.root / relative).read_bytes())

    def send_file(self, relative: str, data: bytes) -> None:
        """The file (or its tail, for a Range request) with the misbehaviour configured for it."""
        state = self.server.state
        if state.serve_wrong.get(relative, 0) > 0:
            state.serve_wrong[relative] -= 1
            data = bytes(255 - byte for byte in data)
        match = RANGE.fullmatch(self.headers.get("Range") or "")
        start = int(match[1]) if match and not state.ignore_range else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if relative not in state.without_length:
            self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if relative in state.cut_once:
            state.cut_once.discard(relative)
            body = body[: len(body) // 2]
        if relative in state.trickled:
            self.trickle(body)
        else:
            self.wfile.write(body)

    def trickle(self, body: bytes) -> None:
        """64 bytes every 50 ms: never silent for long, so only an overall deadline stops the download."""
        for start in range(0, len(body), 64):
            self.wfile.write(body[start : start + 64])
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read ``state.requests`` instead."""


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: MirrorState) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.state = state

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-body is what the stall and deadline tests do: not worth a traceback on stderr."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated release of 4 patients with 32-pixel images: the server's ``physionet.org/files`` folder."""
    out = tmp_path_factory.mktemp("source")
    simulate_dataset(out, patients=4, seed=1, image_size=32, workers=1)
    return out / FILES


@contextmanager
def serving(root: Path) -> Iterator[MirrorServer]:
    """A test server on a free port of 127.0.0.1, serving ``root`` from a thread."""
    httpd = MirrorServer(MirrorState(root))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(source: Path) -> Iterator[MirrorServer]:
    with serving(source) as httpd:
        yield httpd


@pytest.fixture(scope="module")
def other_server(source: Path) -> Iterator[MirrorServer]:
    """A second server, on another loopback port: another origin."""
    with serving(source) as httpd:
        yield httpd


@pytest.fixture
def mirror(server: MirrorServer) -> MirrorState:
    """The server's state, reset for each test."""
    server.state = MirrorState(server.state.root)
    return server.state


@pytest.fixture
def base_url(server: MirrorServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/files/"


@pytest.fixture
def named_test_server(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback test server named explicitly, as plain HTTP to it requires."""
    monkeypatch.setenv(TEST_SERVER, base_url.removesuffix("/files/"))


def client(base_url: str, password: str = PASSWORD, limits: Limits = DEFAULT_LIMITS) -> PhysioNetClient:
    return PhysioNetClient(base_url, Credentials(USER, password, "the test", Origin.of(base_url)), limits)


def relative_files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def assert_same_tree(left: Path, right: Path) -> None:
    assert relative_files(left) == relative_files(right)
    for relative in relative_files(left):
        assert (left / relative).read_bytes() == (right / relative).read_bytes(), relative


def records(source: Path) -> list[dict[str, str]]:
    with gzip.open(source / CXR / "cxr-record-list.csv.gz", "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def first_dicom(source: Path) -> str:
    return records(source)[0]["path"]


def copy_mirror(source: Path, data_root: Path) -> Path:
    """An existing ``wget -r`` mirror: the source tree copied under the data root."""
    files = data_root / FILES
    shutil.copytree(source, files)
    return files


def test_full_download_verifies_every_file_and_mirrors_the_source(tmp_path, mirror, base_url, source):
    files = tmp_path / "data" / FILES
    reports = download(files, client(base_url), connections=3)
    assert all(report.complete for report in reports)
    assert sum(len(report.with_status("fetched")) for report in reports) == len(relative_files(source)) - 3
    assert_same_tree(source, files)
    assert {path for path, _ in mirror.requests} == relative_files(source)
    assert summary_lines(reports)[0].startswith("mimiciv/3.1: 5 correct (0 already present, 5 fetched, ")


def test_an_existing_mirror_is_reused_without_fetching_files_again(tmp_path, mirror, base_url, source):
    files = copy_mirror(source, tmp_path / "data")
    reports = download(files, client(base_url))
    assert all(report.complete and not report.with_status("fetched") for report in reports)
    assert sorted(path for path, _ in mirror.requests) == [
        f"{p}/SHA256SUMS.txt" for p in sorted(("mimiciv/3.1", CXR, "mimic-cxr-jpg/2.1.0"))
    ]


def test_a_wrong_password_is_a_clear_error_and_writes_nothing(tmp_path, mirror, base_url):
    data_root = tmp_path / "data"
    with pytest.raises(CredentialsError) as raised:
        download(data_root / FILES, client(base_url, password="not-the-password"))
    message = str(raised.value)
    assert message.startswith(
        f"PhysioNet refused the credentials for user {USER} at {base_url}mimiciv/3.1/SHA256SUMS.txt: "
        "check ~/.netrc or PHYSIONET_USERNAME/PHYSIONET_PASSWORD"
    )
    assert "not-the-password" not in message
    assert not data_root.exists()


def test_a_body_cut_short_is_resumed_with_a_range_request(tmp_path, mirror, base_url, source):
    relative = first_dicom(source)
    mirror.cut_once.add(f"{CXR}/{relative}")
    files = tmp_path / FILES
    reports = download(files, client(base_url), projects=["mimic-cxr"], selection=SubjectSelection(first=1))
    assert reports[0].complete
    size = (source / CXR / relative).stat().st_size
    assert mirror.requested(f"{CXR}/{relative}") == [None, f"bytes={size // 2}-"]
    assert (files / CXR / relative).read_bytes() == (source / CXR / relative).read_bytes()


@pytest.mark.parametrize("ignore_range", [False, True], ids=["206", "server-answers-200"])
def test_a_leftover_part_file_is_resumed(tmp_path, mirror, base_url, source, ignore_range):
    mirror.ignore_range = ignore_range
    relative = first_dicom(source)
    files = tmp_path / FILES
    part = files / CXR / (relative + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes((source / CXR / relative).read_bytes()[:1000])
    reports = download(files, client(base_url), projects=["mimic-cxr"], selection=SubjectSelection(first=1))
    assert reports[0].complete
    assert mirror.requested(f"{CXR}/{relative}") == ["bytes=1000-"]
    assert (files / CXR / relative).read_bytes() == (source / CXR / relative).read_bytes()
    assert not part.exists()


def test_a_part_file_too_long_to_resume_is_fetched_from_the_start(tmp_path, mirror, base_url, source):
    relative = first_dicom(source)
    data = (source / CXR / relative).read_bytes()
    files = tmp_path / FILES
    part = files / CXR / (relative + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data + b"stale tail")
    reports = download(files, client(base_url), projects=["mimic-cxr"], selection=SubjectSelection(first=1))
    assert reports[0].complete
    assert mirror.requested(f"{CXR}/{relative}") == [f"bytes={len(data) + 10}-", None]
    assert (files / CXR / relative).read_bytes() == data


def test_a_corrupted_file_on_disk_is_fetched_again(tmp_path, mirror, base_url, source):
    files = copy_mirror(source, tmp_path / "data")
    relative = first_dicom(source)
    (files / CXR / relative).write_bytes(b"not what SHA256SUMS.txt says")
    reports = download(files, client(base_url), projects=["mimic-cxr"])
    assert reports[0].complete
    assert [o.relative for o in reports[0].with_status("fetched")] == [relative]
    assert_same_tree(source, files)


def test_a_file_served_wrong_once_is_fetched_again(tmp_path, mirror, base_url, source):
    relative = first_dicom(source)
    mirror.serve_wrong[f"{CXR}/{relative}"] = 1
    files = tmp_path / FILES
    reports = download(files, client(base_url), projects=["mimic-cxr"], selection=SubjectSelection(first=1))
    assert reports[0].complete
    assert mirror.requested(f"{CXR}/{relative}") == [None, None]
    assert (files / CXR / relative).read_bytes() == (source / CXR / relative).read_bytes()


def test_wrong_and_missing_files_are_reported_and_not_placed(tmp_path, mirror, base_url, source):
    wrong, missing = (row["path"] for row in records(source)[:2])
    mirror.serve_wrong[f"{CXR}/{wrong}"] = 2
    mirror.hidden.add(f"{CXR}/{missing}")
    files = tmp_path / FILES
    reports = download(files, client(base_url), projects=["mimic-cxr"], selection=SubjectSelection(first=1))
    report = reports[0]
    assert not report.complete
    assert [o.relative for o in report.with_status("wrong")] == [wrong]
    assert [o.relative for o in report.with_status("missing")] == [missing]
    assert not (files / CXR / wrong).exists() and not (files / CXR / missing).exists()
    assert not list(files.rglob("*.part"))
    lines = summary_lines(reports)
    assert re.match(rf"{CXR}: \d+ correct .*, 1 wrong, 1 missing$", lines[0])
    assert f"  wrong: {wrong} (SHA-256 differs after 2 downloads)" in lines
    assert f"  missing: {missing} (HTTP 404)" in lines


def subject_of(relative: str) -> int:
    return int(relative.split("/")[2].removeprefix("p"))


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (SubjectSelection(first=2), lambda subjects: subjects[:2]),
        (SubjectSelection(pfolders=frozenset({"p17"})), lambda subjects: [s for s in subjects if str(s)[:2] == "17"]),
        (SubjectSelection(subject_ids=frozenset({14731886, 1})), lambda subjects: [14731886]),
    ],
    ids=["first-2", "p17", "subject-ids"],
)
def test_a_subset_fetches_only_its_subjects_dicom_files_and_reports(
    tmp_path, mirror, base_url, source, selection, expected
):
    subjects = sorted({int(row["subject_id"]) for row in records(source)})
    chosen = set(expected(subjects))
    assert chosen and chosen != set(subjects)
    files = tmp_path / FILES
    reports = download(files, client(base_url), projects=["mimic-cxr"], selection=selection)
    assert reports[0].complete
    on_disk = relative_files(files / CXR)
    study_files = {relative for relative in on_disk if relative.startswith("files/")}
    expected_files = {r for r in relative_files(source / CXR) if r.startswith("files/") and subject_of(r) in chosen}
    assert study_files == expected_files
    assert any(r.endswith(".dcm") for r in study_files) and any(r.endswith(".txt") for r in study_files)


def test_no_dicom_fetches_the_csv_files_only(tmp_path, mirror, base_url):
    files = tmp_path / FILES
    reports = download(files, client(base_url), dicom=False)
    assert all(report.complete for report in reports)
    assert not (files / CXR / "files").exists()
    assert all(r.endswith((".csv.gz", "SHA256SUMS.txt")) for r in relative_files(files))


def parse_cli(*options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="xrh")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["download", *options])


def settings_for(data_root: Path, base_url: str) -> Settings:
    return Settings(data_root=data_root, physionet_base_url=base_url, workers=2)


def no_credentials_in(data_root: Path, *texts: str) -> None:
    for path in data_root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data and TOKEN.encode() not in data, path
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text


def netrc_for(machine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A netrc file with the test credentials for ``machine``, and no credentials in the environment."""
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text(f"machine {machine}\n  login {USER}\n  password {PASSWORD}\n")
    monkeypatch.setenv("NETRC", str(netrc_file))
    monkeypatch.delenv("PHYSIONET_USERNAME", raising=False)
    monkeypatch.delenv("PHYSIONET_PASSWORD", raising=False)


def test_cli_with_credentials_from_a_netrc_file(
    tmp_path, mirror, base_url, named_test_server, source, monkeypatch, capsys, caplog
):
    netrc_for("127.0.0.1", tmp_path, monkeypatch)
    mirror.serve_wrong[f"{CXR}/{first_dicom(source)}"] = 2
    data_root = tmp_path / "data"
    args = parse_cli("--subjects", "2", "--connections", "2", "--hosp-tables", "patients", "admissions")
    assert args.handler(args, settings_for(data_root, base_url)) == 1
    out, err = capsys.readouterr()
    assert "mimiciv/3.1: 2 correct (0 already present, 2 fetched" in out
    assert f"{CXR}: " in out and ", 1 wrong, 0 missing" in out
    assert "SHA-256 differs" in caplog.text
    no_credentials_in(data_root, out, err, caplog.text)


def test_netrc_credentials_go_only_to_their_machine(tmp_path, mirror, base_url, named_test_server, monkeypatch, capsys):
    """Before the fix, a netrc entry for physionet.org was sent to whatever host the base URL named."""
    netrc_for("physionet.org", tmp_path, monkeypatch)
    args = parse_cli()
    assert args.handler(args, settings_for(tmp_path / "data", base_url)) == 2
    assert capsys.readouterr().err.startswith("error: no PhysioNet credentials for 127.0.0.1: add 'machine 127.0.0.1")
    assert not mirror.arrivals and not (tmp_path / "data").exists()


def test_cli_with_credentials_from_the_environment(
    tmp_path, mirror, base_url, named_test_server, source, monkeypatch, capsys, caplog
):
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    monkeypatch.setenv("PHYSIONET_USERNAME", USER)
    monkeypatch.setenv("PHYSIONET_PASSWORD", PASSWORD)
    data_root = tmp_path / "data"
    args = parse_cli("--projects", "mimic-cxr", "mimic-cxr-jpg", "--pfolders", "p14", "p15")
    assert args.handler(args, settings_for(data_root, base_url)) == 0
    out, err = capsys.readouterr()
    assert "mimiciv" not in out and "0 wrong, 0 missing" in out
    study_files = [r for r in relative_files(data_root / FILES / CXR) if r.startswith("files/")]
    assert {r.split("/")[1] for r in study_files} == {"p14", "p15"}
    no_credentials_in(data_root, out, err, caplog.text)


def test_cli_with_a_wrong_password_exits_2_and_writes_nothing(
    tmp_path, mirror, base_url, named_test_server, monkeypatch, capsys
):
    monkeypatch.setenv("PHYSIONET_USERNAME", USER)
    monkeypatch.setenv("PHYSIONET_PASSWORD", "wrong-password")
    data_root = tmp_path / "data"
    data_root.mkdir()
    args = parse_cli()
    assert args.handler(args, settings_for(data_root, base_url)) == 2
    out, err = capsys.readouterr()
    assert "PhysioNet refused the credentials for user reader" in err and "wrong-password" not in out + err
    assert not any(data_root.iterdir())


def test_credential_sources(tmp_path):
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine example.org login other password x\ndefault login anyone password fallback\n")
    env = {"NETRC": str(netrc_file)}
    found = find_credentials("https://physionet.org/files/", env)
    assert (found.username, found.password) == ("anyone", "fallback")
    assert "fallback" not in repr(found)
    both = {**env, "PHYSIONET_USERNAME": "u", "PHYSIONET_PASSWORD": "p"}
    assert find_credentials("https://physionet.org/files/", both).username == "u"
    with pytest.raises(CredentialsError, match="no PhysioNet credentials"):
        find_credentials("https://physionet.org/files/", {"NETRC": str(tmp_path / "absent")}, interactive=False)


def test_sha256sums_lines_take_one_or_two_spaces_and_refuse_unsafe_paths():
    digest = "ab" * 32
    parsed = parse_sha256sums([f"{digest} a/b.dcm\n", f"{digest.upper()}  c.txt\n", "\n"], "SUMS")
    assert parsed == {"a/b.dcm": digest, "c.txt": digest}
    with pytest.raises(DownloadError, match="SUMS line 1"):
        parse_sha256sums(["not a checksum line"], "SUMS")
    with pytest.raises(DownloadError, match="refusing"):
        parse_sha256sums([f"{digest} ../escape"], "SUMS")


def test_subject_selection_takes_one_kind_of_subset():
    with pytest.raises(ValueError, match="one of"):
        SubjectSelection(first=2, pfolders=frozenset({"p10"}))
    with pytest.raises(ValueError, match="p10 .. p19"):
        SubjectSelection(pfolders=frozenset({"p20"}))
    with pytest.raises(SystemExit):
        parse_cli("--subjects", "2", "--pfolders", "p10")


@pytest.mark.parametrize(
    ("test_server", "expected"),
    [
        (None, "refusing to send PhysioNet credentials to 'http://127.0.0.1:"),
        ("http://127.0.0.1:1", "refusing to send PhysioNet credentials to 'http://127.0.0.1:"),
        ("http://10.0.0.1:8080", "PHYSIONET_TEST_SERVER='http://10.0.0.1:8080': expected a loopback test server"),
        ("https://127.0.0.1:8080", "PHYSIONET_TEST_SERVER='https://127.0.0.1:8080': expected a loopback test server"),
    ],
    ids=["unnamed", "another-port-named", "not-loopback", "not-http"],
)
def test_plain_http_goes_only_to_a_loopback_test_server_named_explicitly(
    tmp_path, mirror, base_url, monkeypatch, capsys, test_server, expected
):
    monkeypatch.setenv("PHYSIONET_USERNAME", USER)
    monkeypatch.setenv("PHYSIONET_PASSWORD", PASSWORD)
    if test_server is None:
        monkeypatch.delenv(TEST_SERVER, raising=False)
    else:
        monkeypatch.setenv(TEST_SERVER, test_server)
    args = parse_cli()
    assert args.handler(args, settings_for(tmp_path / "data", base_url)) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {expected}") and err.count("\n") == 1
    assert not mirror.arrivals and not (tmp_path / "data").exists()
    no_credentials_in(tmp_path, out, err)


def test_credentials_without_a_machine_go_only_to_physionet(tmp_path):
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine mirror.example.org login m password pm\ndefault login anyone password fallback\n")
    environ = {"NETRC": str(netrc_file), "PHYSIONET_USERNAME": "u", "PHYSIONET_PASSWORD": "p"}
    at_physionet = find_credentials("https://physionet.org/files/", environ)
    assert (at_physionet.username, at_physionet.origin) == ("u", Origin("https", "physionet.org", 443))
    at_mirror = find_credentials("https://MIRROR.example.org/files/", environ)
    assert (at_mirror.username, at_mirror.password, at_mirror.origin.host) == ("m", "pm", "mirror.example.org")
    with pytest.raises(CredentialsError, match="no PhysioNet credentials for elsewhere.org: .* go only to physionet"):
        find_credentials("https://elsewhere.org/files/", environ, interactive=False)
    with pytest.raises(CredentialsError, match="refusing to send PhysioNet credentials to 'http://physionet.org/"):
        find_credentials("http://physionet.org/files/", environ)
    with pytest.raises(CredentialsError, match="physionet_base_url holds a user name or password") as raised:
        find_credentials("https://u:secret@physionet.org/files/", environ)
    assert "secret" not in str(raised.value)


def test_credentials_are_bound_to_one_origin(base_url, other_server):
    credentials = Credentials(USER, PASSWORD, "the test", Origin.of(base_url))
    with pytest.raises(CredentialsError, match="are for http://127.0.0.1:"):
        PhysioNetClient(f"http://127.0.0.1:{other_server.server_address[1]}/files/", credentials)
    with pytest.raises(CredentialsError, match="over https only"):
        Credentials(USER, PASSWORD, "the test", Origin("http", "example.org", 80))


@pytest.mark.parametrize("target", ["other-port", "localhost", "same-origin"])
def test_a_redirect_carries_the_credentials_only_to_their_own_origin(
    tmp_path, mirror, base_url, server, other_server, target
):
    """urllib copies every header to wherever a redirect points; the downloader adds Authorization per hop."""
    port, other_port = server.server_address[1], other_server.server_address[1]
    other_server.state = MirrorState(other_server.state.root)
    location, arrivals = {
        "other-port": (f"http://127.0.0.1:{other_port}/open/{PATIENTS}", other_server.state.arrivals),
        "localhost": (f"http://localhost:{port}/open/{PATIENTS}", mirror.arrivals),
        "same-origin": (f"http://127.0.0.1:{port}/files/{PATIENTS}", mirror.arrivals),
    }[target]
    mirror.redirect_once[PATIENTS] = location
    reports = download(tmp_path / FILES, client(base_url), projects=["mimiciv"], hosp_tables=["patients"])
    assert reports[0].complete
    expected = f"Basic {TOKEN}" if target == "same-origin" else None
    host = location.split("/")[2]
    assert [authorization for at, _, authorization in arrivals if at == host][-1] == expected


def test_a_401_where_a_redirect_led_is_not_blamed_on_the_credentials(tmp_path, mirror, base_url, server):
    location = f"http://localhost:{server.server_address[1]}/files/{PATIENTS}"
    mirror.raw_answers[PATIENTS] = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n\r\n".encode()
    files = tmp_path / FILES
    reports = download(files, client(base_url, limits=QUICK), projects=["mimiciv"], hosp_tables=["patients"])
    [missing] = reports[0].with_status("missing")
    assert missing.reason == f"HTTP 401 from {location}, where a redirect led (after 4 requests)"
    assert [authorization for host, _, authorization in mirror.arrivals if host.startswith("localhost")] == [None] * 4


@pytest.mark.parametrize(
    "name",
    [".", "./", "hosp", "hosp/patients.csv.gz.part", "a\x00b", "a//b", "a/./b", "/etc/x", "a\\b", "a\x1bb"],
    ids=[
        "dot",
        "dot-slash",
        "folder-of-others",
        "part-suffix",
        "nul",
        "empty-part",
        "dot-part",
        "absolute",
        "backslash",
        "escape",
    ],
)
def test_server_supplied_names_must_be_plain_relative_paths(tmp_path, mirror, base_url, source, name):
    """Before the fix '.' wrote beside the project folder, 'hosp' blocked hosp/..., and a NUL byte crashed."""
    listing = "mimiciv/3.1/SHA256SUMS.txt"
    mirror.replaced[listing] = (source / listing).read_bytes() + f"{'ab' * 32} {name}\n".encode()
    files = copy_mirror(source, tmp_path / "data")
    reports = download(files, client(base_url), projects=["mimiciv"])
    [problem] = reports[0].problems
    assert problem.startswith("nothing fetched, as SHA256SUMS.txt is unusable: mimiciv/3.1/SHA256SUMS.txt")
    assert "refusing" in problem and not reports[0].outcomes
    assert_same_tree(source, files)
    assert [path.name for path in tmp_path.iterdir()] == ["data"]


def replace_listed(mirror: MirrorState, source: Path, relative: str, data: bytes) -> None:
    """Serve ``data`` as the project file ``relative`` of MIMIC-CXR, with a SHA256SUMS.txt that agrees."""
    listing = source / CXR / "SHA256SUMS.txt"
    digest = hashlib.sha256(data).hexdigest()
    lines = [
        f"{digest} {relative}" if line.endswith(f" {relative}") else line for line in listing.read_text().split("\n")
    ]
    mirror.replaced[f"{CXR}/SHA256SUMS.txt"] = "\n".join(lines).encode()
    mirror.replaced[f"{CXR}/{relative}"] = data


HEADER = b"subject_id,study_id,dicom_id,path\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (gzip.compress(HEADER + b"1\x00,2,3,files/a.dcm\n"), " row 1: expected a numeric subject_id"),
        (gzip.compress(HEADER + b"ten,2,3,files/a.dcm\n"), " row 1: expected a numeric subject_id"),
        (gzip.compress(HEADER + b"10,2,3,../../x.dcm\n"), " row 1: expected a numeric subject_id"),
        (gzip.compress(HEADER + b"10,2,3\n"), " row 1: expected a numeric subject_id"),
        (gzip.compress(HEADER + b"10,2,3,files/\xff.dcm\n"), ": not a readable gzip CSV file ("),
        (HEADER, ": not a readable gzip CSV file ("),
    ],
    ids=["nul", "not-a-number", "climbing-path", "no-path", "not-utf8", "not-gzip"],
)
def test_a_record_list_that_does_not_fit_is_a_problem_line(tmp_path, mirror, base_url, source, data, expected):
    replace_listed(mirror, source, "cxr-record-list.csv.gz", data)
    reports = download(tmp_path / FILES, client(base_url), projects=["mimic-cxr"])
    [problem] = reports[0].problems
    assert problem.startswith(f"DICOM files and reports not chosen: cxr-record-list.csv.gz{expected}")
    assert reports[0].is_correct("cxr-record-list.csv.gz")
    assert not (tmp_path / FILES / CXR / "files").exists()


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "no-content-length"])
def test_a_file_over_its_size_cap_is_reported_wrong_and_not_kept(tmp_path, mirror, base_url, source, announced):
    relative = first_dicom(source)
    if not announced:
        mirror.without_length.add(f"{CXR}/{relative}")
    files = tmp_path / FILES
    limits = Limits(study_file_bytes=1000)
    reports = download(
        files, client(base_url, limits=limits), projects=["mimic-cxr"], selection=SubjectSelection(first=1)
    )
    wrong = {outcome.relative: outcome.reason for outcome in reports[0].with_status("wrong")}
    assert wrong[relative] == "the server offers more than 1000 B, this kind of file's size cap"
    assert mirror.requested(f"{CXR}/{relative}") == [None]
    assert not (files / CXR / relative).exists() and not list(files.rglob("*.part"))
    assert reports[0].is_correct("cxr-record-list.csv.gz")  # other files are not held back


def test_a_listing_over_its_size_cap_is_a_problem_line(tmp_path, mirror, base_url):
    reports = download(tmp_path / FILES, client(base_url, limits=Limits(checksums_bytes=100)), projects=["mimiciv"])
    assert reports[0].problems == [
        "nothing fetched, as SHA256SUMS.txt is unusable: the server offers more than 100 B, this kind of file's size "
        "cap (check physionet_base_url, then re-run)"
    ]
    assert not list((tmp_path / FILES).rglob("*.*"))


@pytest.mark.parametrize("slowness", ["stalls", "trickles"])
def test_a_slow_server_meets_the_deadline_per_file_and_a_rerun_resumes(tmp_path, mirror, base_url, source, slowness):
    relative = first_dicom(source)
    served = f"{CXR}/{relative}"
    if slowness == "stalls":
        mirror.stall_seconds[served] = 1.0
    else:
        mirror.trickled.add(served)
    files = tmp_path / FILES
    limits = Limits(read_timeout=0.2, retry_pause=0.0, file_seconds=0.5)
    started = time.monotonic()
    reports = download(
        files, client(base_url, limits=limits), projects=["mimic-cxr"], selection=SubjectSelection(first=1)
    )
    assert time.monotonic() - started < 2.0
    [missing] = reports[0].with_status("missing")
    assert (missing.relative, missing.reason) == (
        relative,
        "not complete within the deadline of 0.5 s per file; anything that arrived is kept as .part and a re-run "
        "resumes it",
    )
    part = files / CXR / (relative + ".part")
    kept = part.stat().st_size if part.exists() else 0
    assert (kept > 0) == (slowness == "trickles")
    mirror.stall_seconds.clear()
    mirror.trickled.clear()
    mirror.requests.clear()
    reports = download(files, client(base_url), projects=["mimic-cxr"], selection=SubjectSelection(first=1))
    assert reports[0].complete
    assert mirror.requested(served) == [f"bytes={kept}-" if kept else None]
    assert (files / CXR / relative).read_bytes() == (source / CXR / relative).read_bytes()


HEADERS_BEYOND_COUNT = b"".join(b"X-%d: y\r\n" % number for number in range(101))


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (b"", "missing", "Remote end closed connection without response (after 4 requests)"),
        (b"NOT HTTP\r\n\r\n", "missing", "(after 4 requests)"),
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", "missing", "HTTP Error 500: Oops (after 4 requests)"),
        (b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 9-1/x\r\n\r\nx", "missing", "unusable Content-Range"),
        (b"HTTP/1.1 200 OK\r\n" + HEADERS_BEYOND_COUNT + b"\r\n", "missing", "got more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "missing", "(after 4 requests)"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "missing", "closed before the end of the file"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nabc", "wrong", "SHA-256 differs after 2 downloads"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\nabc", "wrong", "this kind of file's size cap"),
        (b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\n\r\n", "missing", "unusable answer from the server"),
        (b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\n\r\n", "missing", "is not allowed"),
        (b"HTTP/1.1 302 Found\r\nLocation: /files/" + PATIENTS.encode() + b"\r\n\r\n", "missing", "infinite loop"),
    ],
    ids=[
        "closed",
        "not-http",
        "error-500",
        "bad-content-range",
        "101-headers",
        "bad-chunk",
        "short-body",
        "bad-content-length",
        "huge-content-length",
        "malformed-redirect",
        "redirect-to-a-file",
        "redirect-loop",
    ],
)
def test_any_server_answer_ends_as_one_line_of_the_report(tmp_path, mirror, base_url, answer, status, reason):
    mirror.raw_answers[PATIENTS] = answer
    files = tmp_path / FILES
    reports = download(files, client(base_url, limits=QUICK), projects=["mimiciv"], hosp_tables=["patients"])
    [outcome] = reports[0].outcomes
    assert outcome.status == status and reason in outcome.reason and "\n" not in outcome.reason
    assert not (files / PATIENTS).exists()
