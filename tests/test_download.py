"""The PhysioNet downloader against a real HTTP server with basic auth and Range support, serving a simulated release.

The server (``http.server.ThreadingHTTPServer`` on 127.0.0.1) can cut a file's body short once, serve a file wrong a
given number of times, hide a file (404) or ignore ``Range``; it records every request it answers.
"""

from __future__ import annotations

import argparse
import base64
import csv
import gzip
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from ingest.credentials import Credentials, CredentialsError, find_credentials
from ingest.download import (
    DownloadError,
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


@dataclass
class MirrorState:
    """What the test server serves and how it misbehaves; ``requests`` holds (path, Range header) per answer."""

    root: Path
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    cut_once: set[str] = field(default_factory=set)
    serve_wrong: dict[str, int] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)
    ignore_range: bool = False

    def requested(self, relative: str) -> list[str | None]:
        """The Range headers of the requests for ``relative``, in order."""
        return [header for path, header in self.requests if path == relative]


class MirrorHandler(BaseHTTPRequestHandler):
    """Serves ``/files/<project>/<version>/<path>`` to requests with the known basic-auth credentials."""

    server: MirrorServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        state = self.server.state
        if self.headers.get("Authorization") != f"Basic {TOKEN}":
            self.send_error(401)
            return
        relative = unquote(self.path).removeprefix("/files/")
        state.requests.append((relative, self.headers.get("Range")))
        path = state.root / relative
        if relative in state.hidden or not path.is_file():
            self.send_error(404)
            return
        self.send_file(relative, path.read_bytes())

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
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if relative in state.cut_once:
            state.cut_once.discard(relative)
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read ``state.requests`` instead."""


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: MirrorState) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.state = state


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated release of 4 patients with 32-pixel images: the server's ``physionet.org/files`` folder."""
    out = tmp_path_factory.mktemp("source")
    simulate_dataset(out, patients=4, seed=1, image_size=32, workers=1)
    return out / FILES


@pytest.fixture(scope="module")
def server(source: Path) -> Iterator[MirrorServer]:
    httpd = MirrorServer(MirrorState(source))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def mirror(server: MirrorServer) -> MirrorState:
    """The server's state, reset for each test."""
    server.state = MirrorState(server.state.root)
    return server.state


@pytest.fixture
def base_url(server: MirrorServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/files/"


def client(base_url: str, password: str = PASSWORD) -> PhysioNetClient:
    return PhysioNetClient(base_url, Credentials(USER, password, "the test"))


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


@pytest.mark.parametrize("machine", ["127.0.0.1", "physionet.org"])
def test_cli_with_credentials_from_a_netrc_file(
    tmp_path, mirror, base_url, source, monkeypatch, capsys, caplog, machine
):
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text(f"machine {machine}\n  login {USER}\n  password {PASSWORD}\n")
    monkeypatch.setenv("NETRC", str(netrc_file))
    monkeypatch.delenv("PHYSIONET_USERNAME", raising=False)
    monkeypatch.delenv("PHYSIONET_PASSWORD", raising=False)
    mirror.serve_wrong[f"{CXR}/{first_dicom(source)}"] = 2
    data_root = tmp_path / "data"
    args = parse_cli("--subjects", "2", "--connections", "2", "--hosp-tables", "patients", "admissions")
    assert args.handler(args, settings_for(data_root, base_url)) == 1
    out, err = capsys.readouterr()
    assert "mimiciv/3.1: 2 correct (0 already present, 2 fetched" in out
    assert f"{CXR}: " in out and ", 1 wrong, 0 missing" in out
    assert "SHA-256 differs" in caplog.text
    no_credentials_in(data_root, out, err, caplog.text)


def test_cli_with_credentials_from_the_environment(tmp_path, mirror, base_url, source, monkeypatch, capsys, caplog):
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


def test_cli_with_a_wrong_password_exits_2_and_writes_nothing(tmp_path, mirror, base_url, monkeypatch, capsys):
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
