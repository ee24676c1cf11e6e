"""``xrh download``: fetch MIMIC-IV hosp, MIMIC-CXR and MIMIC-CXR-JPG from PhysioNet, resumable and verified.

Files land in the ``wget -r -N -c -np`` mirror layout, ``<data root>/physionet.org/files/<project>/<version>/<path>``,
so an existing mirror is reused as it is. Each project's ``SHA256SUMS.txt`` is fetched first and decides what exists;
a file already on disk with the listed digest is not fetched again. Downloads go to ``<file>.part``, resume with an
HTTP ``Range`` request, and are renamed into place only when complete and verified; a file with the wrong digest is
fetched once more, then reported wrong. MIMIC-CXR's per-study files (DICOM images and reports) can be limited to a
subset of subjects chosen from ``cxr-record-list.csv.gz``.

HTTP is the standard library's ``urllib``. The basic-auth header goes only to the origin the credentials are bound to
(see :mod:`ingest.credentials`: HTTPS, or a loopback test server named in ``PHYSIONET_TEST_SERVER``); it is added to
each request, redirected ones included, by :class:`_AuthorizationFor`, because urllib itself copies every header of a
request to wherever a redirect points. A server is not trusted beyond that: every name it supplies (in
``SHA256SUMS.txt`` and the MIMIC-CXR lists) must be a plain relative path inside its project folder, each file has a
size cap and an overall deadline (:class:`Limits`), and whatever it answers ends as one line in the report, never a
traceback. A file past its deadline keeps its ``.part`` for the next run to resume.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import quote

from ingest.credentials import Credentials, CredentialsError, find_credentials, refused
from xrh.files import sha256_file
from xrh.progress import track
from xrh.settings import Settings

log = logging.getLogger(__name__)

PROJECTS = {"mimiciv": "mimiciv/3.1", "mimic-cxr": "mimic-cxr/2.1.0", "mimic-cxr-jpg": "mimic-cxr-jpg/2.1.0"}
PROJECT_NAMES = tuple(PROJECTS)
DEFAULT_HOSP_TABLES = ("patients", "admissions", "transfers", "services", "provider")
CXR_RECORD_LIST = "cxr-record-list.csv.gz"
CXR_STUDY_LIST = "cxr-study-list.csv.gz"
CXR_LISTS = (CXR_RECORD_LIST, CXR_STUDY_LIST, "cxr-provider-list.csv.gz")
JPG_CSVS = tuple(f"mimic-cxr-2.0.0-{name}.csv.gz" for name in ("metadata", "split", "chexpert", "negbio"))
CHECKSUMS = "SHA256SUMS.txt"

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60.0
TRANSFER_TRIES = 4
RETRY_PAUSE_SECONDS = 1.0
# A whole file may take an hour; a slower one is resumed by the next run. MIMIC-IV's largest hosp table is a few GB.
FILE_DEADLINE_SECONDS = 3600.0
CHECKSUMS_MAX_BYTES = 1 << 30  # MIMIC-CXR's SHA256SUMS.txt is 77 MB
STUDY_FILE_MAX_BYTES = 256 << 20  # a MIMIC-CXR DICOM image is about 15 MB, a report a few KB
TABLE_MAX_BYTES = 16 << 30  # CSV tables; SHA256SUMS.txt lists no sizes, so caps go by the kind of file
STUDY_FILES = "files/"
PART_SUFFIX = ".part"
DOWNLOAD_TRIES = 2
LISTED_PER_KIND = 20
USER_AGENT = "xrh-download/0.1 (urllib)"
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")

CHECKSUM_LINE = re.compile(r"(?P<digest>[0-9a-fA-F]{64})[ \t]+\*?(?P<path>\S.*)")
CONTENT_RANGE = re.compile(r"bytes (?P<start>\d+)-\d+/(?P<total>\d+|\*)")
# Control characters (NUL included) and backslashes have no place in a PhysioNet path and break or confuse file APIs.
UNSAFE_CHARACTER = re.compile(r"[\x00-\x1f\x7f\\]")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")
REASON_CHARACTERS = 200
PFOLDER = re.compile(r"p1\d")

Status = Literal["present", "fetched", "wrong", "missing"]


class DownloadError(Exception):
    """A file or a project could not be fetched; the message names the URL or file, never a credential."""


class TransferError(DownloadError):
    """A transfer still failed or came short after ``TRANSFER_TRIES`` requests."""


class NotOnServer(DownloadError):
    """The server answered 404 or 410."""


class TooLarge(DownloadError):
    """The server announced or sent more bytes than the file's size cap."""


class DeadlinePassed(DownloadError):
    """A file was not complete within its deadline; its ``.part`` keeps what arrived."""


@dataclass(frozen=True)
class Limits:
    """How long and how much one file may take before the downloader gives up on it (and reports it).

    Attributes
    ----------
    read_timeout
        Seconds a connection may stay silent: connecting, waiting for the answer, between two reads of the body.
    retry_pause
        The pause before the third request for a file; it grows by as much before each further request.
    file_seconds
        The overall deadline of one file, every request, retry and pause included. The last read may pass it by at
        most ``read_timeout``.
    checksums_bytes, study_file_bytes, table_bytes
        Size caps of ``SHA256SUMS.txt``, of a MIMIC-CXR per-study file (``files/...``: a DICOM image or a report) and
        of any other file (the CSV tables).
    """

    read_timeout: float = TIMEOUT_SECONDS
    retry_pause: float = RETRY_PAUSE_SECONDS
    file_seconds: float = FILE_DEADLINE_SECONDS
    checksums_bytes: int = CHECKSUMS_MAX_BYTES
    study_file_bytes: int = STUDY_FILE_MAX_BYTES
    table_bytes: int = TABLE_MAX_BYTES

    def budget(self, relative: str) -> FileBudget:
        """What fetching the project file ``relative`` may take, its deadline starting now."""
        if relative == CHECKSUMS:
            cap = self.checksums_bytes
        elif relative.startswith(STUDY_FILES):
            cap = self.study_file_bytes
        else:
            cap = self.table_bytes
        return FileBudget(self, cap, time.monotonic() + self.file_seconds)


@dataclass(frozen=True)
class FileBudget:
    """What fetching one file may still take: ``max_bytes`` in all, until ``until`` on the monotonic clock."""

    limits: Limits
    max_bytes: int
    until: float

    def seconds_left(self) -> float:
        """The seconds left before the deadline.

        Raises
        ------
        DeadlinePassed
            None are left.
        """
        left = self.until - time.monotonic()
        if left <= 0:
            raise DeadlinePassed(
                f"not complete within the deadline of {self.limits.file_seconds:g} s per file; anything that arrived "
                f"is kept as {PART_SUFFIX} and a re-run resumes it"
            )
        return left

    def check_size(self, size: int) -> None:
        """Raise :class:`TooLarge` when the file would hold ``size`` bytes, more than its cap."""
        if size > self.max_bytes:
            raise TooLarge(f"the server offers more than {human_bytes(self.max_bytes)}, this kind of file's size cap")


class _AuthorizationFor(urllib.request.BaseHandler):
    """Adds the basic-auth header to each request on the credentials' own origin, and to no other request.

    urllib runs this for every request it opens, a redirected one included; the header is an "unredirected" one,
    which urllib does not copy to the request a redirect makes, so each hop is judged afresh.
    """

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        """``request``, with the ``Authorization`` header when its URL is on the credentials' origin."""
        if self._credentials.belong_to(request.full_url):
            request.add_unredirected_header("Authorization", self._credentials.authorization_header())
        return request

    https_request = http_request


class PhysioNetClient:
    """GET requests for files under one PhysioNet base URL, authenticated on the credentials' origin only.

    Raises
    ------
    CredentialsError
        The credentials are bound to another origin than ``base_url``'s.
    """

    def __init__(self, base_url: str, credentials: Credentials, limits: Limits = Limits()) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        if not credentials.belong_to(self.base_url):
            raise CredentialsError(
                f"credentials from {credentials.source} are for {credentials.origin}, not {base_url}"
            )
        self.limits = limits
        self._credentials = credentials
        handlers: list[urllib.request.BaseHandler] = [_AuthorizationFor(credentials)]
        if credentials.origin.scheme == "http":  # a loopback test server: never through a proxy, in the clear
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def url(self, project: str, relative: str) -> str:
        """``<base>/<project>/<version>/<relative path>``."""
        return self.base_url + quote(f"{project}/{relative}")

    def get(self, url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
        """Open ``url``, asking for the bytes from ``offset`` on when it is not 0; ``timeout`` bounds each wait.

        Raises
        ------
        CredentialsError
            401 or 403 from the credentials' origin.
        NotOnServer
            404 or 410.
        TransferError
            An unusable answer, such as a redirect to a malformed URL, or a 401 or 403 from another origin.
        urllib.error.HTTPError, OSError, http.client.HTTPException
            Any other error status, or a network failure.
        """
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            return self._opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            error.close()
            if error.code in (401, 403) and self._credentials.belong_to(error.url):
                raise refused(self._credentials, url) from None
            if error.code in (401, 403):
                raise TransferError(f"HTTP {error.code} from {error.url}, where a redirect led") from None
            if error.code in (404, 410):
                raise NotOnServer(f"HTTP {error.code}") from None
            raise
        except ValueError as error:  # urllib's answer to a malformed redirect, such as a bad IPv6 address
            raise TransferError(f"unusable answer from the server: {describe(error)}") from None


@dataclass(frozen=True)
class SubjectSelection:
    """Which MIMIC-CXR subjects get their DICOM files and reports fetched: all, or exactly one kind of subset.

    Attributes
    ----------
    first
        The first N subjects in subject-id order of ``cxr-record-list.csv.gz``.
    subject_ids
        These subjects.
    pfolders
        The subjects under these top folders (``p10`` .. ``p19``: the first two digits of the subject id).
    """

    first: int | None = None
    subject_ids: frozenset[int] = frozenset()
    pfolders: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        chosen = [self.first is not None, bool(self.subject_ids), bool(self.pfolders)]
        if sum(chosen) > 1:
            raise ValueError("choose subjects by one of first N, subject ids or p-folders, not several")
        if self.first is not None and self.first < 1:
            raise ValueError(f"the number of subjects must be at least 1, got {self.first}")
        wrong = sorted(name for name in self.pfolders if not PFOLDER.fullmatch(name))
        if wrong:
            raise ValueError(f"p-folders are p10 .. p19, got {wrong}")

    def choose(self, subjects: Iterable[int]) -> set[int]:
        """The chosen subset of ``subjects``."""
        ordered = sorted(set(subjects))
        if self.first is not None:
            return set(ordered[: self.first])
        if self.subject_ids:
            return self.subject_ids & set(ordered)
        if self.pfolders:
            return {subject for subject in ordered if f"p{str(subject)[:2]}" in self.pfolders}
        return set(ordered)


ALL_SUBJECTS = SubjectSelection()


@dataclass(frozen=True)
class FileOutcome:
    """What became of one listed file: already present, fetched, wrong after every try, or missing on the server."""

    relative: str
    status: Status
    size: int = 0
    reason: str = ""


@dataclass
class ProjectReport:
    """The outcome of one project: per-file results, wanted files not in SHA256SUMS.txt, and project-level problems."""

    project: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def with_status(self, *statuses: Status) -> list[FileOutcome]:
        """The outcomes with one of ``statuses``."""
        return [outcome for outcome in self.outcomes if outcome.status in statuses]

    def is_correct(self, relative: str) -> bool:
        """Whether ``relative`` is now on disk with its listed digest."""
        return any(outcome.relative == relative for outcome in self.with_status("present", "fetched"))

    @property
    def complete(self) -> bool:
        """Every wanted file is on disk and correct, and nothing else went wrong."""
        return not (self.problems or self.unlisted or self.with_status("wrong", "missing"))


def describe(error: BaseException) -> str:
    """An error as one short line: its text may quote the server (a status line, a reason, a URL), so control
    characters become spaces and it stops after ``REASON_CHARACTERS``."""
    text = " ".join(CONTROL_CHARACTERS.sub(" ", str(error)).split()) or type(error).__name__
    return text if len(text) <= REASON_CHARACTERS else text[: REASON_CHARACTERS - 3] + "..."


def unsafe_path_reason(relative: str) -> str:
    """Why ``relative`` (a name the server supplied) cannot be a file inside a project folder; "" when it can.

    A plain relative path has no control characters or backslashes, is not absolute, has no empty, ``.`` or ``..``
    parts, and does not end in ``.part``, the suffix of this downloader's partial files.
    """
    if UNSAFE_CHARACTER.search(relative):
        return "it holds a control character or a backslash"
    if relative.startswith("/"):
        return "it is absolute"
    if any(part in ("", ".", "..") for part in relative.split("/")):
        return "it has an empty, '.' or '..' part"
    if relative.endswith(PART_SUFFIX):
        return f"it ends in {PART_SUFFIX}, the suffix of partial downloads"
    return ""


def _folders_listed_as_files(relatives: Iterable[str]) -> list[str]:
    """The names that are also a folder of another name (``files`` beside ``files/p10/...``): one would block the
    other on disk."""
    names = set(relatives)
    folders = {folder for name in names for folder in map(str, PurePosixPath(name).parents)}
    return sorted(names & folders)


def parse_sha256sums(lines: Iterable[str], source: str) -> dict[str, str]:
    """``{relative path: lowercase hex digest}`` from ``SHA256SUMS.txt`` lines (``<64 hex> <path>``, one or two spaces;
    a leading ``./`` is dropped).

    Raises
    ------
    DownloadError
        A line that does not fit, a path that is not a plain relative path (see :func:`unsafe_path_reason`), or a
        path that is also a folder of another.
    """
    digests: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        match = CHECKSUM_LINE.fullmatch(line)
        if match is None:
            raise DownloadError(f"{source} line {number}: expected '<64 hex digits> <path>', got {line[:100]!r}")
        relative = match["path"].removeprefix("./")
        reason = unsafe_path_reason(relative)
        if reason:
            raise DownloadError(f"{source} line {number}: refusing the path {relative[:100]!r}: {reason}")
        digests[relative] = match["digest"].lower()
    both = _folders_listed_as_files(digests)
    if both:
        raise DownloadError(f"{source}: refusing {both[0]!r}, listed both as a file and as a folder of other files")
    return digests


def part_path(target: Path) -> Path:
    """``<file>.part``: where ``target`` is downloaded before it is verified and renamed into place."""
    return target.with_name(target.name + PART_SUFFIX)


def _body_placement(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """Where the response body starts in the file, and the file's full size (None when the server does not say).

    A 206 answer continues at its Content-Range start; a 200 answer (a server that ignored ``Range``) restarts at 0.
    """
    if response.status == 206:
        match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match is None or int(match["start"]) > offset:
            raise TransferError(f"unusable Content-Range {response.headers.get('Content-Range')!r}")
        return int(match["start"]), None if match["total"] == "*" else int(match["total"])
    length = response.headers.get("Content-Length", "")
    return 0, int(length) if length.isdigit() else None


def _receive(client: PhysioNetClient, url: str, part: Path, budget: FileBudget) -> bool:
    """One request that continues ``part``; True when the file is complete (or its size is unknown).

    The body is read with one system call per chunk, so a server that trickles bytes meets the deadline too.
    """
    offset = part.stat().st_size if part.exists() else 0
    with client.get(url, offset, min(client.limits.read_timeout, budget.seconds_left())) as response:
        start, total = _body_placement(response, offset)
        if total is not None:
            budget.check_size(total)
        part.parent.mkdir(parents=True, exist_ok=True)
        with part.open("r+b" if start else "wb") as sink:
            sink.seek(start)
            sink.truncate()
            while chunk := response.read1(CHUNK_BYTES):
                budget.check_size(sink.tell() + len(chunk))
                sink.write(chunk)
                budget.seconds_left()
    return total is None or part.stat().st_size == total


def transfer(client: PhysioNetClient, url: str, part: Path, budget: FileBudget) -> None:
    """Fill ``part`` with the whole body of ``url``, resuming with ``Range`` from what it already holds.

    A failed or short response is continued by the next request, up to ``TRANSFER_TRIES`` requests. Nothing is
    created on disk before the server has answered with a success status.

    Raises
    ------
    CredentialsError, NotOnServer
        From :meth:`PhysioNetClient.get`, at once.
    TooLarge
        At once; ``part`` is removed, as it cannot become the file.
    DeadlinePassed
        ``part`` keeps what arrived, for the next run to resume.
    TransferError
        Every try failed or came short; ``part`` keeps what arrived, for the next run to resume.
    """
    failure = ""
    for attempt in range(TRANSFER_TRIES):
        time.sleep(min(client.limits.retry_pause * max(attempt - 1, 0), budget.seconds_left()))
        try:
            if _receive(client, url, part, budget):
                return
            failure = "the connection closed before the end of the file"
        except urllib.error.HTTPError as error:
            if error.code == 416:  # the .part is not a prefix of the file (it is as long or longer): start over
                part.unlink(missing_ok=True)
            failure = describe(error)
        except TooLarge:
            part.unlink(missing_ok=True)
            raise
        except (OSError, http.client.HTTPException, TransferError) as error:
            failure = describe(error)
    raise TransferError(f"{failure} (after {TRANSFER_TRIES} requests)")


def sync_file(client: PhysioNetClient, url: str, target: Path, digest: str, relative: str) -> FileOutcome:
    """Make ``target`` a correct copy of ``url``: keep it when its digest matches, else download and verify it.

    A download with the wrong digest is fetched once more from the start, within the same deadline; a file never
    verified is not renamed into place. Raises :class:`CredentialsError` when the server refuses the credentials.
    """
    if target.is_file() and sha256_file(target) == digest:
        return FileOutcome(relative, "present")
    part = part_path(target)
    budget = client.limits.budget(relative)
    for attempt in range(1, DOWNLOAD_TRIES + 1):
        try:
            transfer(client, url, part, budget)
        except TooLarge as error:
            return FileOutcome(relative, "wrong", reason=str(error))
        except DownloadError as error:
            return FileOutcome(relative, "missing", reason=str(error))
        if sha256_file(part) == digest:
            size = part.stat().st_size
            os.replace(part, target)
            return FileOutcome(relative, "fetched", size)
        part.unlink()
        log.warning("%s: SHA-256 differs from SHA256SUMS.txt (download %d of %d)", relative, attempt, DOWNLOAD_TRIES)
    return FileOutcome(relative, "wrong", reason=f"SHA-256 differs after {DOWNLOAD_TRIES} downloads")


def fetch_checksums(client: PhysioNetClient, project_root: Path, project: str) -> dict[str, str]:
    """Fetch ``<project>/SHA256SUMS.txt`` afresh and parse it; only a listing that parses replaces the mirror's.

    This is a project's first request; when it fails (401 included) nothing has been written.

    Raises
    ------
    DownloadError
        The transfer failed, or the listing is not UTF-8 text of checksum lines with plain relative paths.
    """
    source = f"{project}/{CHECKSUMS}"
    target = project_root / CHECKSUMS
    part = part_path(target)
    part.unlink(missing_ok=True)
    transfer(client, client.url(project, CHECKSUMS), part, client.limits.budget(CHECKSUMS))
    try:
        with part.open(encoding="utf-8") as lines:
            digests = parse_sha256sums(lines, source)
    except UnicodeDecodeError:
        part.unlink()
        raise DownloadError(f"{source}: not UTF-8 text") from None
    except DownloadError:
        part.unlink()
        raise
    os.replace(part, target)
    return digests


def iter_csv_gz(path: Path) -> Iterator[dict[str, str]]:
    """The rows of a gzip CSV with a header row, one at a time."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _subject_paths(listing: Path) -> Iterator[tuple[int, str]]:
    """``(subject_id, path)`` per row of a MIMIC-CXR list (a server-supplied file, so checked row by row).

    Raises
    ------
    DownloadError
        The file is not a gzip CSV in UTF-8, or a row lacks a numeric subject id or a plain relative path.
    """
    try:
        for number, row in enumerate(iter_csv_gz(listing), 1):
            subject, path = row.get("subject_id") or "", row.get("path") or ""
            if not subject.isdecimal() or unsafe_path_reason(path):
                raise DownloadError(
                    f"{listing.name} row {number}: expected a numeric subject_id and a plain relative path, "
                    f"got {subject[:20]!r} and {path[:100]!r}"
                )
            yield int(subject), path
    except (OSError, EOFError, csv.Error, UnicodeDecodeError) as error:
        raise DownloadError(f"{listing.name}: not a readable gzip CSV file ({describe(error)})") from None


def cxr_study_files(project_root: Path, selection: SubjectSelection) -> list[str]:
    """The DICOM files (record list) and reports (study list) of the chosen MIMIC-CXR subjects.

    Raises
    ------
    DownloadError
        A list that cannot be read, or a row in it that does not fit (see :func:`_subject_paths`).
    """
    record_list, study_list = project_root / CXR_RECORD_LIST, project_root / CXR_STUDY_LIST
    chosen = selection.choose(subject for subject, _ in _subject_paths(record_list))
    unknown = selection.subject_ids - chosen
    if unknown:
        log.warning("subject ids not in %s: %s", CXR_RECORD_LIST, " ".join(map(str, sorted(unknown))))
    return [
        path for listing in (record_list, study_list) for subject, path in _subject_paths(listing) if subject in chosen
    ]


@dataclass
class _ProjectDownload:
    """The files of one project being brought up to date in the mirror."""

    client: PhysioNetClient
    project: str
    root: Path
    digests: dict[str, str]
    connections: int
    report: ProjectReport

    def sync(self, relatives: Iterable[str]) -> None:
        """Fetch or keep every listed file of ``relatives`` in parallel; note the unlisted ones."""
        wanted = sorted(set(relatives))
        self.report.unlisted.extend(relative for relative in wanted if relative not in self.digests)
        listed = [relative for relative in wanted if relative in self.digests]
        pool = ThreadPoolExecutor(max_workers=self.connections, thread_name_prefix="download")
        try:
            futures = [
                pool.submit(
                    sync_file,
                    self.client,
                    self.client.url(self.project, relative),
                    self.root / relative,
                    self.digests[relative],
                    relative,
                )
                for relative in listed
            ]
            for future in track(as_completed(futures), len(futures), f"downloading {self.project}", unit="files"):
                self.report.outcomes.append(future.result())
        finally:
            pool.shutdown(cancel_futures=True)


def _chosen_study_files(root: Path, report: ProjectReport, selection: SubjectSelection) -> list[str]:
    """:func:`cxr_study_files`, once the record and study lists are on disk and correct.

    Raises
    ------
    DownloadError
        A list is not correct on disk, or cannot be read.
    """
    unusable = [listing for listing in (CXR_RECORD_LIST, CXR_STUDY_LIST) if not report.is_correct(listing)]
    if unusable:
        raise DownloadError(f"{', '.join(unusable)} not correct")
    return cxr_study_files(root, selection)


def _download_project(
    client: PhysioNetClient,
    files_root: Path,
    name: str,
    *,
    hosp_tables: Sequence[str],
    selection: SubjectSelection,
    dicom: bool,
    connections: int,
) -> ProjectReport:
    """SHA256SUMS.txt, then the project's files: hosp tables, the JPG CSVs, or the CXR lists and per-study files."""
    project = PROJECTS[name]
    report = ProjectReport(project)
    root = files_root / project
    try:
        digests = fetch_checksums(client, root, project)
    except DownloadError as error:
        report.problems.append(
            f"nothing fetched, as {CHECKSUMS} is unusable: {error} (check physionet_base_url, then re-run)"
        )
        return report
    download = _ProjectDownload(client, project, root, digests, connections, report)
    if name == "mimiciv":
        download.sync(f"hosp/{table}.csv.gz" for table in hosp_tables)
    elif name == "mimic-cxr-jpg":
        download.sync(JPG_CSVS)
    else:
        download.sync(CXR_LISTS)
        if not dicom:
            return report
        try:
            study_files = _chosen_study_files(root, report, selection)
        except DownloadError as error:
            report.problems.append(f"DICOM files and reports not chosen: {error}")
        else:
            download.sync(study_files)
    return report


def download(
    files_root: Path,
    client: PhysioNetClient,
    *,
    projects: Sequence[str] = PROJECT_NAMES,
    hosp_tables: Sequence[str] = DEFAULT_HOSP_TABLES,
    selection: SubjectSelection = ALL_SUBJECTS,
    dicom: bool = True,
    connections: int = 4,
) -> list[ProjectReport]:
    """Bring the chosen projects' files under ``files_root`` (``<data root>/physionet.org/files``) up to date.

    Parameters
    ----------
    projects
        Keys of ``PROJECTS``, fetched in this order.
    hosp_tables
        MIMIC-IV hosp tables (``hosp/<name>.csv.gz``).
    selection
        The MIMIC-CXR subjects whose DICOM files and reports are fetched.
    dicom
        False: only the CSV files (no DICOM images, no reports).
    connections
        Parallel downloads.

    Raises
    ------
    CredentialsError
        The server refused the credentials (on the first request, before anything is written).
    """
    return [
        _download_project(
            client,
            files_root,
            name,
            hosp_tables=hosp_tables,
            selection=selection,
            dicom=dicom,
            connections=connections,
        )
        for name in projects
    ]


def human_bytes(count: int) -> str:
    """``512 B``, ``1.5 MiB``-style sizes (binary units up to TiB)."""
    exponent = min(max(count.bit_length() - 1, 0) // 10, len(BYTE_UNITS) - 1)
    return f"{count} B" if exponent == 0 else f"{count / 1024**exponent:.1f} {BYTE_UNITS[exponent]}"


def _listed(kind: str, items: Sequence[str]) -> list[str]:
    """``  <kind>: <item>`` lines, at most ``LISTED_PER_KIND`` of them and a count of the rest."""
    lines = [f"  {kind}: {item}" for item in items[:LISTED_PER_KIND]]
    if len(items) > LISTED_PER_KIND:
        lines.append(f"  ... and {len(items) - LISTED_PER_KIND} more {kind}")
    return lines


def summary_lines(reports: Sequence[ProjectReport]) -> list[str]:
    """Per project: correct (already present / fetched, bytes), wrong and missing counts, then what went wrong."""
    lines = []
    for report in reports:
        present, fetched = report.with_status("present"), report.with_status("fetched")
        wrong, missing = report.with_status("wrong"), report.with_status("missing")
        lines.append(
            f"{report.project}: {len(present) + len(fetched)} correct ({len(present)} already present, "
            f"{len(fetched)} fetched, {human_bytes(sum(o.size for o in fetched))}), "
            f"{len(wrong)} wrong, {len(missing)} missing"
        )
        lines += _listed("wrong", [f"{o.relative} ({o.reason})" for o in wrong])
        lines += _listed("missing", [f"{o.relative} ({o.reason})" for o in missing])
        lines += _listed("not in SHA256SUMS.txt", report.unlisted)
        lines += _listed("problem", report.problems)
    fetched_bytes = sum(o.size for report in reports for o in report.with_status("fetched"))
    lines.append(f"fetched {human_bytes(fetched_bytes)} in all")
    return lines


def _selection(args: argparse.Namespace) -> SubjectSelection:
    """The subject subset the options name (all subjects when none does)."""
    return SubjectSelection(
        first=args.subjects,
        subject_ids=frozenset(args.subject_ids or ()),
        pfolders=frozenset(args.pfolders or ()),
    )


def download_release(
    settings: Settings,
    *,
    projects: Sequence[str] = PROJECT_NAMES,
    hosp_tables: Sequence[str] = DEFAULT_HOSP_TABLES,
    selection: SubjectSelection = ALL_SUBJECTS,
    dicom: bool = True,
    connections: int = 0,
    interactive: bool | None = None,
) -> list[ProjectReport]:
    """:func:`download` into the settings' data root from their base URL, with credentials found by
    :func:`find_credentials` (a prompt only when ``interactive``); ``connections`` 0 means the workers setting.

    Raises
    ------
    CredentialsError
        The base URL may not receive credentials, none are found for it, or the server refuses them.
    """
    credentials = find_credentials(settings.physionet_base_url, interactive=interactive)
    return download(
        settings.physionet_files,
        PhysioNetClient(settings.physionet_base_url, credentials),
        projects=projects,
        hosp_tables=hosp_tables,
        selection=selection,
        dicom=dicom,
        connections=connections or settings.worker_count,
    )


def download_command(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch MIMIC-IV hosp, MIMIC-CXR and MIMIC-CXR-JPG files from PhysioNet into the data root's wget mirror layout.

    Credentials come from PHYSIONET_USERNAME / PHYSIONET_PASSWORD (sent to physionet.org only), the netrc entry of
    the base URL's host ($NETRC or ~/.netrc) or a prompt, and travel over https only (plain http only to a loopback
    test server named in PHYSIONET_TEST_SERVER). Every file is checked against its project's SHA256SUMS.txt; files
    already correct are kept, partial downloads resume. Exit status 0 when every wanted file is correct.
    """
    try:
        reports = download_release(
            settings,
            projects=args.projects,
            hosp_tables=args.hosp_tables,
            selection=_selection(args),
            dicom=not args.no_dicom,
            connections=args.connections,
        )
    except CredentialsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in summary_lines(reports):
        print(line)
    return 0 if all(report.complete for report in reports) else 1


def _positive_int(value: str) -> int:
    """An argparse type: an integer of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return number


def _pfolder(value: str) -> str:
    """An argparse type: ``p10`` .. ``p19``."""
    if not PFOLDER.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected p10 .. p19, got {value!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``xrh download``."""
    parser = subparsers.add_parser(
        "download", help="fetch MIMIC files from PhysioNet (resumable, verified)", description=download_command.__doc__
    )
    parser.add_argument(
        "--projects",
        nargs="+",
        choices=PROJECT_NAMES,
        default=list(PROJECT_NAMES),
        help="projects to fetch: mimiciv (v3.1 hosp), mimic-cxr (v2.1.0), mimic-cxr-jpg (v2.1.0 CSVs) (default: all)",
    )
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument(
        "--subjects",
        type=_positive_int,
        metavar="N",
        help="only the first N MIMIC-CXR subjects in subject-id order get their DICOM files and reports",
    )
    subset.add_argument(
        "--subject-ids",
        nargs="+",
        type=int,
        metavar="ID",
        help="only these MIMIC-CXR subjects get their DICOM files and reports",
    )
    subset.add_argument(
        "--pfolders",
        nargs="+",
        type=_pfolder,
        metavar="PXX",
        help="only the MIMIC-CXR subjects under these folders (p10 .. p19) get their DICOM files and reports",
    )
    parser.add_argument(
        "--no-dicom",
        action="store_true",
        help="fetch the CSV files only: no MIMIC-CXR DICOM images (and no per-study reports)",
    )
    parser.add_argument(
        "--hosp-tables",
        nargs="+",
        default=list(DEFAULT_HOSP_TABLES),
        metavar="TABLE",
        help=f"MIMIC-IV hosp tables to fetch (hosp/<TABLE>.csv.gz; default: {' '.join(DEFAULT_HOSP_TABLES)})",
    )
    parser.add_argument(
        "--connections",
        type=_positive_int,
        metavar="K",
        help="parallel downloads (default: the workers setting)",
    )
    parser.set_defaults(handler=download_command)
