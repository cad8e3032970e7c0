"""What the packet datasets (ISCX VPN-nonVPN, USTC-TFC2016) share: the manual folder scan, the
scan record, the seeded per-capture sample, the flow id, the cross-split de-duplication, the
build report's keys and text, and the examples as arrays.

A dataset module (``mtc_keras.iscx``, ``mtc_keras.ustc``) keeps only what differs: how a capture
is labelled from its file name and which archives hold captures (its ``Folder``), how packets
are balanced and split, and what a flow (conversation) is. The steps every build takes:

1. ``find_captures(manual_dir, folder)``: every capture under the folder at any depth, as a
   file or as a member of an archive (``ZIP``, ``SEVEN_ZIP``; a member is extracted to a
   temporary file while it is read: it costs disk, not memory). Unknown names, duplicates (the
   same capture twice), archives that cannot be read and files that are not captures are
   skipped and reported.
2. ``sample_capture``: one capture streamed through ``mtc_keras.packets``; every kept packet
   gets a seeded priority (``mtc_keras.splitting``), and the ``limit`` lowest priorities are
   kept, with the columns the dataset asks for: a uniform sample that does not depend on the
   order in which captures are read. ``Tally`` counts the scans for the report.
3. The dataset's balance and split; then ``drop_cross_split_duplicates``: a vector that
   occurs in two splits stays in the first of train, validation, test only.
4. ``build_report``: one set of keys for every packet dataset (a dataset adds its own after
   them), ``format_report`` as text.

Flow ids are ``"<capture name>|<flow>"`` (``flow_id``), example keys
``"<capture name>:<index of the packet among the capture's kept packets>"`` (``example_key``);
a capture name holds no local path.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable

import numpy as np

from mtc_keras import capture, leakage, packets, registry, splitting

SPLITS = registry.SPLITS
BATCH = 16384  # frames per batch while reading: about 25 MB of vectors


# ------------------------------------------------------------------------- archives
@dataclasses.dataclass(frozen=True)
class Archive:
    """A kind of archive that a manual folder may hold captures in."""

    suffixes: tuple[str, ...]
    members: Callable[[str], list[str]]  # archive path -> its files' member paths, sorted
    extract: Callable  # (source) -> context manager giving a local path to the member
    errors: Callable[[], tuple]  # what reading a broken archive raises


def _zip_members(path: str) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(m.filename for m in archive.infolist() if not m.is_dir())


@contextlib.contextmanager
def _zip_extract(source: Source):
    with zipfile.ZipFile(source.path) as archive, archive.open(source.member) as member, \
            tempfile.NamedTemporaryFile(suffix="_" + source.name) as tmp:
        shutil.copyfileobj(member, tmp, 1 << 22)
        tmp.flush()
        yield tmp.name


def _7z():
    import py7zr  # a dependency of the package; imported here so that other datasets need not load it

    return py7zr


def _7z_errors() -> tuple:
    errors = _7z().exceptions
    return (errors.ArchiveError, errors.Bad7zFile, errors.CrcError, errors.DecompressionError,
            errors.PasswordRequired, errors.UnsupportedCompressionMethodError, EOFError, OSError,
            ValueError)


def _7z_members(path: str) -> list[str]:
    with _7z().SevenZipFile(path, "r") as archive:
        return sorted(info.filename for info in archive.list() if not info.is_directory)


@contextlib.contextmanager
def _7z_extract(source: Source):
    with tempfile.TemporaryDirectory(prefix="capture_7z_") as tmp:
        with _7z().SevenZipFile(source.path, "r") as archive:
            archive.extract(path=tmp, targets=[source.member])
        path = os.path.join(tmp, *source.member.split("/"))
        if not os.path.isfile(path):
            raise EOFError(f"{source.shown}: the archive did not yield this member")
        yield path


def _zip_errors() -> tuple:
    return zipfile.BadZipFile, EOFError


ZIP = Archive((".zip",), _zip_members, _zip_extract, _zip_errors)
SEVEN_ZIP = Archive((".7z",), _7z_members, _7z_extract, _7z_errors)


# ------------------------------------------------------------------------- finding captures
@dataclasses.dataclass(frozen=True)
class Folder:
    """How one dataset's manual folder is read: the rules that differ between datasets."""

    capture_suffixes: tuple[str, ...]
    archive: Archive
    # (capture file name, archive file name or None) -> the dataset's labels, None if unknown
    labels: Callable[[str, str | None], object]
    # capture file name -> what makes two captures the same capture (duplicates are skipped)
    same_capture: Callable[[str], str]
    # A member's capture name is '<archive file name>/<member path>' (else its file name).
    name_members_by_archive: bool = False
    # Of two copies of a capture, read the plain file rather than the archive member.
    plain_files_first: bool = False


@dataclasses.dataclass(frozen=True)
class Source:
    """One capture: a file, or a member of an archive."""

    name: str  # file name, or '<archive>/<member>': example keys, the `capture` feature, flow ids
    shown: str  # where it is, relative to the manual folder (the report)
    path: str  # the file, or the archive holding it
    member: str | None = None
    labels: object = None  # the dataset's labels of the capture (None: an unknown name)

    @property
    def file_name(self) -> str:
        return self.shown.rsplit("/", 1)[-1]


def find_captures(manual_dir, folder: Folder) -> tuple[list[Source], dict]:
    """Known captures under ``manual_dir`` (any depth, archive members included), one per capture,
    and what was skipped: {"unknown_captures", "duplicate_captures", "unreadable_archives",
    "other_files"}, each a list of paths relative to the folder. The captures come in the order
    of ``folder.same_capture`` of their file names. FileNotFoundError when the folder does not
    exist."""
    found, skipped = [], collections.defaultdict(list)
    for path, shown in capture.manual_files(manual_dir):
        lower = path.name.lower()
        if lower.endswith(folder.archive.suffixes):
            try:
                members = folder.archive.members(str(path))
            except folder.archive.errors() as error:
                skipped["unreadable_archives"].append(f"{shown}: {error}")
                continue
            for member in members:
                base = member.rsplit("/", 1)[-1]
                if not base.lower().endswith(folder.capture_suffixes):
                    skipped["other_files"].append(f"{shown}/{member}")
                    continue
                name = f"{path.name}/{member}" if folder.name_members_by_archive else base
                found.append(Source(name, f"{shown}/{member}", str(path), member,
                                    folder.labels(base, path.name)))
        elif lower.endswith(folder.capture_suffixes):
            found.append(Source(path.name, shown, str(path), None, folder.labels(path.name, None)))
        else:
            skipped["other_files"].append(shown)

    def order(source: Source) -> tuple:
        first = (source.member is not None,) if folder.plain_files_first else ()
        return (folder.same_capture(source.file_name), *first, source.shown)

    sources, seen = [], {}
    for source in sorted(found, key=order):
        same = folder.same_capture(source.file_name)
        if source.labels is None:
            skipped["unknown_captures"].append(source.shown)
        elif same in seen:
            skipped["duplicate_captures"].append(f"{source.shown} (same capture as {seen[same]})")
        else:
            seen[same] = source.shown
            sources.append(source)
    return sources, dict(skipped)


@contextlib.contextmanager
def local_file(source: Source, archive: Archive):
    """A path to the capture; an archive member is extracted to a temporary file while it is
    read (one at a time), so a member of any size costs disk, not memory."""
    if source.member is None:
        yield source.path
    else:
        with archive.extract(source) as path:
            yield path


def read_batches(source: Source, archive: Archive) -> Iterable[packets.PacketBatch]:
    """The capture's PacketBatches (``BATCH`` frames each), streamed."""
    with local_file(source, archive) as path:
        yield from packets.iter_capture_batches(path, batch_size=BATCH)


# ------------------------------------------------------------------------- the scan
@dataclasses.dataclass(frozen=True)
class Scan:
    """One capture read: its packet counts, how many packets it kept and its sample (columns
    "index", "priority" and the dataset's own), or the error that made it unreadable."""

    position: int  # of the capture in the sources list
    counts: dict = dataclasses.field(default_factory=dict)
    kept: int = 0
    columns: dict | None = None
    error: str | None = None

    def summary(self) -> Scan:
        """The scan without its sample (what the build report needs)."""
        return dataclasses.replace(self, columns=None)


def sample_capture(source: Source, position: int, archive: Archive, limit: int, seed: int,
                   columns: Callable[[packets.PacketBatch, np.ndarray], dict]) -> Scan:
    """Stream one capture, keeping the ``limit`` kept packets of lowest priority: their index
    among the capture's kept packets, their priority and ``columns(batch, rows)`` (the
    dataset's columns of the batch's packets at ``rows``). An unreadable capture comes back
    with ``error``, naming the capture."""
    counts = collections.Counter()
    sample, kept, path = None, 0, source.path
    try:
        with local_file(source, archive) as path:
            # At least one (maybe empty) batch per capture: the sample always gets its columns.
            for batch in packets.iter_capture_batches(path, batch_size=BATCH):
                counts.update(batch.counts)
                index = np.arange(kept, kept + len(batch), dtype=np.int64)
                kept += len(batch)
                priority = splitting.packet_priorities(seed, source.name, index)
                held = sample["priority"] if sample else np.zeros(0, np.uint64)
                old, new = splitting.lowest(held, priority, limit)
                fresh = {"index": index[new], "priority": priority[new], **columns(batch, new)}
                sample = fresh if sample is None else {k: np.concatenate([sample[k][old], v])
                                                       for k, v in fresh.items()}
    except (packets.CaptureFormatError,) + archive.errors() as error:
        # The reader names the file it read (maybe a temporary copy): name the capture instead.
        message = str(error).replace(path, source.shown)
        if not message.startswith(source.shown):
            message = f"{source.shown}: {message}"
        return Scan(position, error=message)
    return Scan(position, dict(counts), kept, sample)


@dataclasses.dataclass
class Tally:
    """What the build report counts of the scans, capture by capture."""

    sources: list[Source]
    used: list[int] = dataclasses.field(default_factory=list)  # positions read
    unreadable: list[str] = dataclasses.field(default_factory=list)
    incomplete: list[str] = dataclasses.field(default_factory=list)
    counts: dict[int, dict] = dataclasses.field(default_factory=dict)  # position -> packet counts
    kept: dict[int, int] = dataclasses.field(default_factory=dict)  # position -> kept packets

    def add(self, scan: Scan) -> bool:
        """Count one capture's scan; False if it was unreadable."""
        if scan.error is not None:
            self.unreadable.append(scan.error)
            return False
        self.used.append(scan.position)
        self.counts[scan.position] = scan.counts
        self.kept[scan.position] = scan.kept
        if scan.counts.get("truncated") or scan.counts.get("corrupt"):
            self.incomplete.append(self.sources[scan.position].shown)
        return True

    @property
    def totals(self) -> collections.Counter:
        totals = collections.Counter()
        for position in self.used:
            totals.update(self.counts[position])
        return totals


# ------------------------------------------------------------------------- flows, splits, examples
def flow_id(capture_name: str, flow: str) -> str:
    """The flow id of a packet: its flow (or conversation) within its capture."""
    return f"{capture_name}|{flow}"


def flow_ids(capture_names, flows) -> np.ndarray:
    """``flow_id`` of every (capture name, flow) pair, as an object array."""
    return np.array([flow_id(c, f) for c, f in zip(np.asarray(capture_names, object).tolist(),
                                                   np.asarray(flows, object).tolist())], object)


def example_key(capture_name: str, index: int) -> str:
    """The example key of a packet: its index among its capture's kept packets."""
    return f"{capture_name}:{index}"


def drop_cross_split_duplicates(digests: np.ndarray, split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the packets to drop, packets dropped per split): a vector (by its digest) that
    occurs in an earlier split of train, validation, test is dropped from the later ones."""
    split = np.asarray(split, np.int64)
    drop = splitting.in_an_earlier_split(np.asarray(digests), split)
    return drop, np.bincount(split[drop], minlength=len(SPLITS)).astype(np.int64)


def as_arrays(examples: Iterable[tuple[str, dict]], tasks) -> tuple[np.ndarray, dict, np.ndarray]:
    """(packets uint8 [N, 1500], {task: int64 [N]}, flow_ids object [N]) of (key, example) pairs."""
    rows = [example for _, example in examples]
    vectors = (np.stack([np.asarray(e["packet"], np.uint8) for e in rows]) if rows
               else np.zeros((0, packets.VECTOR_LEN), np.uint8))
    task_labels = {task: np.array([e[task] for e in rows], np.int64) for task in tasks}
    return vectors, task_labels, np.array([e["flow_id"] for e in rows], object)


# ------------------------------------------------------------------------- the build report
def build_report(config: dict, tally: Tally, skipped: dict, tasks: dict, *, kept_packets: dict,
                 split_packets: dict, dropped: np.ndarray, figures: dict, **extra) -> dict:
    """The build report (logged, and stored in the dataset's metadata): the keys every packet
    dataset's report has, in this order, then the dataset's ``extra`` keys. ``tasks``: {task:
    class names}; a class is without captures when no capture found has its label, without
    packets when its captures kept none."""
    sources = tally.sources
    found, kept = collections.defaultdict(set), collections.defaultdict(set)
    for position, source in enumerate(sources):
        for task in tasks:
            value = getattr(source.labels, task)
            found[task].add(value)
            if tally.kept.get(position):
                kept[task].add(value)
    return {
        "config": config,
        "captures_found": sorted(s.shown for s in sources),
        "captures_used": sorted(sources[p].shown for p in tally.used),
        "captures_unknown": skipped.get("unknown_captures", []),
        "captures_duplicate": skipped.get("duplicate_captures", []),
        "captures_misplaced": skipped.get("misplaced_captures", []),
        "captures_unreadable": tally.unreadable,
        "captures_incomplete": tally.incomplete,
        "archives_unreadable": skipped.get("unreadable_archives", []),
        "other_files": skipped.get("other_files", []),
        "classes_without_captures": {task: [n for i, n in enumerate(names) if i not in found[task]]
                                     for task, names in tasks.items()},
        "classes_without_packets": {task: [n for i, n in enumerate(names)
                                           if i in found[task] and i not in kept[task]]
                                    for task, names in tasks.items()},
        "packet_counts": {k: int(v) for k, v in sorted(tally.totals.items())},
        "kept_packets": kept_packets,
        "split_packets": split_packets,
        "cross_split_duplicates_dropped": {name: int(dropped[i]) for i, (name, _) in enumerate(SPLITS)},
        "leakage": {k: figures[k] for k in leakage.FIGURES + leakage.COUNTS} if figures else {},
        **extra,
    }


_SKIPPED_LINES = (("captures_unknown", "skipped, unknown name"), ("captures_duplicate", "skipped, duplicate"),
                  ("captures_unreadable", "skipped, unreadable"), ("archives_unreadable", "skipped, bad archive"),
                  ("captures_incomplete", "truncated or corrupt, kept what was read"),
                  ("captures_misplaced", "in the other group's folder"))


def format_report(report: dict, table: Iterable[str] = (), extra: Iterable[str] = ()) -> str:
    """The build report as text (what the build logs): the captures, the classes without
    captures or packets, the packet counts, the dataset's ``table`` of classes and splits, the
    duplicates dropped, the leakage figures and the dataset's ``extra`` lines."""
    lines = [f"captures used: {len(report['captures_used'])} of {len(report['captures_found'])} found"]
    for key, what in _SKIPPED_LINES:
        lines.extend(f"  {what}: {item}" for item in report[key])
    if report["other_files"]:
        lines.append(f"  other files ignored: {len(report['other_files'])}")
    for key, what in (("classes_without_captures", "with no capture"),
                      ("classes_without_packets", "with captures but no kept packet")):
        for task, names in report[key].items():
            if names:
                lines.append(f"{task} classes {what}: {', '.join(names)}")
    lines.append("packets: " + ", ".join(f"{k}={v}" for k, v in report["packet_counts"].items()))
    lines.extend(table)
    if any(report["cross_split_duplicates_dropped"].values()):
        lines.append("vectors dropped as duplicates of an earlier split: "
                     + ", ".join(f"{k}={v}" for k, v in report["cross_split_duplicates_dropped"].items()))
    for key in leakage.FIGURES:
        value = report["leakage"].get(key)
        lines.append(f"{key}: " + ("n/a" if value is None else f"{value:.4f}"))
    lines.extend(extra)
    return "\n".join(lines)
