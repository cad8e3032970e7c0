"""CICIDS2017 CSVs -> clean, balanced, quantile-normalised rows (paper §3.2.1-§3.2.3, Table 2).

The only place the 49-feature list lives. Used by the TFDS builder (tfds_builders/cicids2017),
which holds no parsing of its own. No TensorFlow or Keras here: the exported model carries the
fitted quantiles as a Keras layer built from `load_quantile_transform`.

The flow (`prepare`):
  CSV sources (zipped or extracted, both layouts) --read_rows--> clean rows (49 raw features)
  `paper`: balance -> split 64/16/20        `clean`: split 64/16/20 -> balance train only
  -> QuantileTransformer fitted on train -> every split in [0, 1].

Choices where the issue was silent:
- Negative values (e.g. -1 in Init_Win_bytes_*, the "no window seen" sentinel) are kept, as the
  reference [25] keeps them; the quantile transform maps them to the bottom of the range. The build
  report counts them per feature.
- An unknown label is a counted, logged skip (`unknown_label`, with each label and its count in the
  report); a build that ends with no usable row at all is an error.
- A row of the wrong width is never read shifted: a field short leaves its label empty
  (`missing_label`), a field too many moves a number into the label (`unknown_label`, logged with
  it); only fields after the label are ignored (the header's columns are all where they belong).
- Exact duplicates are judged on the 49 kept features (float64, as parsed) plus the canonical raw
  label, across all files, keeping the first; this is what brings the counts near Table 2's
  "Imbalanced" column. Rows are compared by 64-bit hashes.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import logging
import os
import pathlib
import time
import zipfile
from typing import BinaryIO, Iterable, Mapping

import numpy as np
import pandas as pd

from mtc_keras import registry
from mtc_keras.labels import CICIDS_ATTACKS, canonical_cicids_label, cicids_attack

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- columns
KEPT = "kept"
NO_VARIANCE_REASON = "no variance"
CORRELATED_REASON = "correlated (> 0.98) with a kept feature"
DUPLICATE_COLUMN_REASON = "duplicate column"

# The 78 CICFlowMeter columns in MachineLearningCVE header order (names stripped), with the
# decision of the paper's reference [25] (shared/cicids2017-features.md). The second
# `Fwd Header Length` is named as pandas names it, which is how some copies of the CSVs spell it.
_COLUMN_TABLE = (
    ("Destination Port", KEPT),
    ("Flow Duration", CORRELATED_REASON),
    ("Total Fwd Packets", CORRELATED_REASON),
    ("Total Backward Packets", CORRELATED_REASON),
    ("Total Length of Fwd Packets", CORRELATED_REASON),
    ("Total Length of Bwd Packets", CORRELATED_REASON),
    ("Fwd Packet Length Max", CORRELATED_REASON),
    ("Fwd Packet Length Min", KEPT),
    ("Fwd Packet Length Mean", CORRELATED_REASON),
    ("Fwd Packet Length Std", KEPT),
    ("Bwd Packet Length Max", CORRELATED_REASON),
    ("Bwd Packet Length Min", KEPT),
    ("Bwd Packet Length Mean", CORRELATED_REASON),
    ("Bwd Packet Length Std", KEPT),
    ("Flow Bytes/s", KEPT),
    ("Flow Packets/s", KEPT),
    ("Flow IAT Mean", KEPT),
    ("Flow IAT Std", KEPT),
    ("Flow IAT Max", KEPT),
    ("Flow IAT Min", KEPT),
    ("Fwd IAT Total", KEPT),
    ("Fwd IAT Mean", KEPT),
    ("Fwd IAT Std", KEPT),
    ("Fwd IAT Max", KEPT),
    ("Fwd IAT Min", KEPT),
    ("Bwd IAT Total", KEPT),
    ("Bwd IAT Mean", KEPT),
    ("Bwd IAT Std", KEPT),
    ("Bwd IAT Max", KEPT),
    ("Bwd IAT Min", KEPT),
    ("Fwd PSH Flags", CORRELATED_REASON),
    ("Bwd PSH Flags", NO_VARIANCE_REASON),
    ("Fwd URG Flags", NO_VARIANCE_REASON),
    ("Bwd URG Flags", NO_VARIANCE_REASON),
    ("Fwd Header Length", KEPT),
    ("Bwd Header Length", KEPT),
    ("Fwd Packets/s", KEPT),
    ("Bwd Packets/s", KEPT),
    ("Min Packet Length", CORRELATED_REASON),
    ("Max Packet Length", KEPT),
    ("Packet Length Mean", KEPT),
    ("Packet Length Std", CORRELATED_REASON),
    ("Packet Length Variance", CORRELATED_REASON),
    ("FIN Flag Count", KEPT),
    ("SYN Flag Count", KEPT),
    ("RST Flag Count", CORRELATED_REASON),
    ("PSH Flag Count", KEPT),
    ("ACK Flag Count", KEPT),
    ("URG Flag Count", KEPT),
    ("CWE Flag Count", NO_VARIANCE_REASON),
    ("ECE Flag Count", KEPT),
    ("Down/Up Ratio", KEPT),
    ("Average Packet Size", KEPT),
    ("Avg Fwd Segment Size", KEPT),
    ("Avg Bwd Segment Size", KEPT),
    ("Fwd Header Length.1", DUPLICATE_COLUMN_REASON),
    ("Fwd Avg Bytes/Bulk", NO_VARIANCE_REASON),
    ("Fwd Avg Packets/Bulk", NO_VARIANCE_REASON),
    ("Fwd Avg Bulk Rate", NO_VARIANCE_REASON),
    ("Bwd Avg Bytes/Bulk", NO_VARIANCE_REASON),
    ("Bwd Avg Packets/Bulk", NO_VARIANCE_REASON),
    ("Bwd Avg Bulk Rate", NO_VARIANCE_REASON),
    ("Subflow Fwd Packets", CORRELATED_REASON),
    ("Subflow Fwd Bytes", KEPT),
    ("Subflow Bwd Packets", CORRELATED_REASON),
    ("Subflow Bwd Bytes", KEPT),
    ("Init_Win_bytes_forward", KEPT),
    ("Init_Win_bytes_backward", KEPT),
    ("act_data_pkt_fwd", KEPT),
    ("min_seg_size_forward", KEPT),
    ("Active Mean", KEPT),
    ("Active Std", KEPT),
    ("Active Max", KEPT),
    ("Active Min", KEPT),
    ("Idle Mean", CORRELATED_REASON),
    ("Idle Std", KEPT),
    ("Idle Max", CORRELATED_REASON),
    ("Idle Min", KEPT),
)
FLOW_COLUMNS = tuple(name for name, _ in _COLUMN_TABLE)
FEATURES = tuple(name for name, why in _COLUMN_TABLE if why == KEPT)
"""The 49 model features, in header order: the features axis of every example."""
DROPPED = {name: why for name, why in _COLUMN_TABLE if why != KEPT}
"""The 29 dropped columns -> why."""
NO_VARIANCE = tuple(name for name, why in DROPPED.items() if why == NO_VARIANCE_REASON)
assert (len(FLOW_COLUMNS), len(FEATURES), len(NO_VARIANCE)) == (78, 49, 10)

LABEL = "Label"
# Identify a flow or a moment, never a feature (TrafficLabelling / GeneratedLabelledFlows only).
FLOW_ID_COLUMNS = ("Flow ID", "Source IP", "Source Port", "Destination IP", "Protocol", "Timestamp")
LAYOUTS = {
    "MachineLearningCVE": FLOW_COLUMNS + (LABEL,),
    "TrafficLabelling": FLOW_ID_COLUMNS[:4] + FLOW_COLUMNS[:1] + FLOW_ID_COLUMNS[4:]
    + FLOW_COLUMNS[1:] + (LABEL,),
}
assert [len(c) for c in LAYOUTS.values()] == [79, 85]

# --------------------------------------------------------------------- Table 2, configs
TABLE2_IMBALANCED = {"Benign": 2_035_505, "DoS/DDoS": 320_269, "PortScan": 57_305,
                     "Brute force": 8_551, "Web attack": 2_118, "Botnet ARES": 1_943}
TABLE2_BALANCED = {"Benign": 1_330_000, "DoS/DDoS": 350_000, "PortScan": 75_500,
                   "Brute force": 66_000, "Web attack": 65_500, "Botnet ARES": 65_000}
FULL_CLEAN_ROWS = sum(TABLE2_IMBALANCED.values())  # 2,425,691 rows: the whole dataset, cleaned

CONFIGS = registry.DATASETS["cicids2017"].configs
SPLIT_FRACTIONS = registry.split_fractions("cicids2017")
SMOTE_K = 5  # imbalanced-learn's default k_neighbors
SMOTE_POOL = 50_000  # neighbours are searched among at most this many rows of a class
N_QUANTILES = 1000  # scikit-learn's default
SYNTHETIC_LABEL = "SMOTE"  # raw_label of a synthetic row
DROP_REASONS = ("empty_row", "missing_label", "unknown_label", "infiltration", "bad_number",
                "nan_or_inf", "duplicate")


# ----------------------------------------------------------------------------- header
def normalise_header(names: Iterable[str]) -> list[str]:
    """Strips the byte-order mark and spaces; the second `Fwd Header Length` -> `Fwd Header Length.1`."""
    out = []
    for name in names:
        name = name.replace("\ufeff", "").strip()
        if name == "Fwd Header Length" and name in out:
            name = "Fwd Header Length.1"
        out.append(name)
    return out


def layout_of(names: Iterable[str], source: str) -> str:
    """The layout whose header these (raw) column names are; ValueError naming file and columns."""
    names = normalise_header(names)
    for layout, columns in LAYOUTS.items():
        if tuple(names) == columns:
            return layout
    closest = min(LAYOUTS.values(), key=lambda cols: len(set(cols) ^ set(names)))
    raise ValueError(
        f"{source}: unknown CICIDS2017 header with {len(names)} columns {names}; expected the "
        f"MachineLearningCVE (79) or TrafficLabelling (85) header. Missing: "
        f"{[c for c in closest if c not in names]}; unexpected: {[c for c in names if c not in closest]}")


# ---------------------------------------------------------------------------- sources
@dataclasses.dataclass(frozen=True)
class CsvSource:
    """One day file: a CSV on disk, or a CSV inside a zip."""

    path: str
    member: str | None = None

    @property
    def name(self) -> str:
        """File name without folders: the prefix of the example keys (never a local path)."""
        return os.path.basename(self.member or self.path)

    def open(self) -> BinaryIO:
        if self.member is None:
            return open(self.path, "rb")
        with zipfile.ZipFile(self.path) as archive:  # the file stays open until the member closes
            return archive.open(self.member)

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member else self.path


def find_sources(root: str | os.PathLike) -> tuple[list[CsvSource], list[str]]:
    """Every CSV under `root`, at any depth, extracted or inside zips.

    A day file found twice (a zip next to its extracted folder, or both layouts of one day) is
    read once: the first by (name, extracted before zipped, path). Returns (sources, skipped).
    """
    found = []
    for folder, _, files in os.walk(root, followlinks=True):
        for file in files:
            path = os.path.join(folder, file)
            if file.lower().endswith(".csv"):
                found.append(CsvSource(path))
            elif file.lower().endswith(".zip"):
                with zipfile.ZipFile(path) as archive:
                    found += [CsvSource(path, m) for m in archive.namelist()
                              if m.lower().endswith(".csv") and not m.startswith("__MACOSX/")
                              and not os.path.basename(m).startswith("._")]
    found.sort(key=lambda s: (s.name.lower(), s.member is not None, str(s)))
    sources, skipped, seen = [], [], set()
    for source in found:
        if source.name.lower() in seen:
            log.warning("%s: skipped, a file of the same name is already read", source)
            skipped.append(f"{source.name} ({'zipped' if source.member else 'extracted'})")
        else:
            seen.add(source.name.lower())
            sources.append(source)
    return sources, skipped


# ---------------------------------------------------------------------------- rows
@dataclasses.dataclass
class Rows:
    """Rows of one dataset part, column-wise. Real rows keep where they came from (the key)."""

    features: np.ndarray  # float32 [n, 49]: raw CICFlowMeter values, or quantiles after `prepare`
    attack: np.ndarray  # int8 [n]: index into CICIDS_ATTACKS
    label: np.ndarray  # int16 [n]: index into label_names; -1 for a synthetic (SMOTE) row
    source: np.ndarray  # int16 [n]: index into source_names; -1 for a synthetic row
    line: np.ndarray  # int64 [n]: line in the CSV (header = line 1), or the synthetic row's number
    label_names: list[str]
    source_names: list[str]

    def __len__(self) -> int:
        return len(self.attack)

    def take(self, index: np.ndarray) -> Rows:
        return dataclasses.replace(self, features=self.features[index], attack=self.attack[index],
                                   label=self.label[index], source=self.source[index],
                                   line=self.line[index])

    def concat(self, other: Rows) -> Rows:
        assert (self.label_names, self.source_names) == (other.label_names, other.source_names)
        return dataclasses.replace(
            self, **{f: np.concatenate([getattr(self, f), getattr(other, f)])
                     for f in ("features", "attack", "label", "source", "line")})

    def raw_label(self, i: int) -> str:
        """The canonical raw label (labels.canonical_cicids_label) or "SMOTE"."""
        return SYNTHETIC_LABEL if self.label[i] < 0 else self.label_names[self.label[i]]

    def key(self, i: int) -> str:
        """Deterministic, unique example key: `<file name>:<line>` or `smote:<n>`."""
        if self.source[i] < 0:
            return f"smote:{self.line[i]}"
        return f"{self.source_names[self.source[i]]}:{self.line[i]}"

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.attack, minlength=len(CICIDS_ATTACKS))
        return {name: int(n) for name, n in zip(CICIDS_ATTACKS, counts)}


def _read_header(stream: BinaryIO, source: CsvSource) -> tuple[str, list[str]]:
    """(layout, normalised column names) of the header line at the start of `stream`."""
    header = stream.readline().decode("utf-8", errors="replace")
    names = next(csv.reader([header]), [])
    return layout_of(names, str(source)), normalise_header(names)


def _clean_chunk(chunk: pd.DataFrame, columns: list[str], first_line: int, source: CsvSource,
                 source_index: int, label_names: list[str], dropped: collections.Counter,
                 unknown: collections.Counter) -> tuple[np.ndarray, ...]:
    """The usable rows of one chunk: (features f32, attack, label, source, line, row hash).

    Unusable rows are counted in `dropped` by their first reason, unknown labels in `unknown`.
    """
    n = len(chunk)
    block = chunk[[columns.index(f) for f in FEATURES]]
    missing = block.isna().to_numpy()
    bad = np.zeros(n, bool)
    for col in block.columns:
        if block[col].dtype.kind not in "fiub":  # text among the numbers of this chunk
            numbers = pd.to_numeric(block[col], errors="coerce")
            bad |= (numbers.isna() & block[col].notna()).to_numpy()
            block[col] = numbers
    values = block.to_numpy(np.float64)
    codes, uniques = pd.factorize(chunk[columns.index(LABEL)])
    attack_of, code_of = _label_table(uniques, label_names)
    attack = np.where(codes >= 0, attack_of[codes], -3)  # -3: missing label
    for u in np.unique(codes[attack == -1]):
        count = int(np.count_nonzero(codes == u))
        log.warning("%s: %d rows with unknown label %r skipped", source, count, uniques[u])
        unknown[str(uniques[u])] += count

    reasons = (
        ("empty_row", (attack == -3) & missing.all(axis=1)),
        ("missing_label", attack == -3),
        ("unknown_label", attack == -1),
        ("infiltration", attack == -2),
        ("bad_number", bad),
        ("nan_or_inf", ~np.isfinite(values).all(axis=1)),
    )
    usable = np.ones(n, bool)
    for reason, mask in reasons:
        dropped[reason] += int(np.count_nonzero(mask & usable))
        usable &= ~mask
    values = values[usable] + 0.0  # -0.0 -> 0.0, so that both hash alike
    label = code_of[codes[usable]]
    frame = pd.DataFrame(values)
    frame["label"] = label
    return (values.astype(np.float32), attack[usable].astype(np.int8), label,
            np.full(len(label), source_index, np.int16),
            first_line + np.flatnonzero(usable).astype(np.int64),
            pd.util.hash_pandas_object(frame, index=False).to_numpy())


def _label_table(uniques, label_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """attack index (-1 unknown, -2 Infiltration) and label_names index of each distinct raw label."""
    attack = np.empty(len(uniques), np.int8)
    code = np.full(len(uniques), -1, np.int16)
    for i, raw in enumerate(uniques):
        try:
            index = cicids_attack(str(raw))
        except ValueError:
            attack[i] = -1
            continue
        attack[i] = -2 if index is None else index
        if index is None:
            continue
        canonical = canonical_cicids_label(str(raw))
        if canonical not in label_names:
            label_names.append(canonical)
        code[i] = label_names.index(canonical)
    return attack, code


def read_rows(sources: Iterable[CsvSource], chunk_rows: int = 100_000) -> tuple[Rows, dict]:
    """Reads, cleans and de-duplicates every source in chunks; returns the rows and the report.

    Memory holds the usable rows as float32 (49 x 4 bytes a row), never the CSV text.
    """
    sources = list(sources)
    label_names: list[str] = []
    dropped = collections.Counter({reason: 0 for reason in DROP_REASONS})
    unknown: collections.Counter = collections.Counter()
    parts, files = [], {}
    for index, source in enumerate(sources):
        with source.open() as stream:
            layout, columns = _read_header(stream, source)
            label_col = columns.index(LABEL)
            n_rows = 0
            try:
                for chunk in pd.read_csv(
                        stream, header=None, chunksize=chunk_rows, skip_blank_lines=False,
                        usecols=[columns.index(f) for f in FEATURES] + [label_col],
                        dtype={label_col: str}, encoding="utf-8", encoding_errors="replace"):
                    parts.append(_clean_chunk(chunk, columns, n_rows + 2, source, index,
                                              label_names, dropped, unknown))
                    n_rows += len(chunk)
            except pd.errors.EmptyDataError:
                pass  # a header and no row: read, zero rows
            except pd.errors.ParserError as error:
                raise ValueError(f"{source}: {error}") from None
        files[source.name] = {"layout": layout, "rows": n_rows}
        log.info("%s: %s layout, %d rows", source, layout, n_rows)

    empty = (np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.int8), np.zeros(0, np.int16),
             np.zeros(0, np.int16), np.zeros(0, np.int64), np.zeros(0, np.uint64))
    features, attack, label, source, line, hashes = (
        np.concatenate([p[i] for p in parts] or [empty[i]]) for i in range(6))
    del parts
    _, first = np.unique(hashes, return_index=True)
    keep = np.sort(first)
    dropped["duplicate"] = len(hashes) - len(keep)
    rows = Rows(features[keep], attack[keep], label[keep], source[keep], line[keep],
                label_names, [s.name for s in sources])
    negative = np.count_nonzero(rows.features < 0, axis=0)
    report = {
        "files": files,
        "rows_read": sum(f["rows"] for f in files.values()),
        "dropped": dict(dropped),
        "unknown_labels": dict(unknown),
        "negative_values_kept": {f: int(n) for f, n in zip(FEATURES, negative) if n},
        "rows_clean": len(rows),
        "class_counts_clean": rows.class_counts(),
    }
    return rows, report


# -------------------------------------------------------------------------- balancing
def balance_targets(counts: Mapping[str, int]) -> dict[str, int]:
    """Rows per class after balancing: Table 2's "Balanced" counts, scaled to the input.

    scale = min(1, rows / FULL_CLEAN_ROWS), so the whole dataset gets Table 2 exactly and a
    tenth of it a tenth. A class is never grown by more than Table 2 grows it on the whole
    dataset (Web attack x30.9, Benign never), and a present class keeps at least one row.
    """
    scale = min(1.0, sum(counts.values()) / FULL_CLEAN_ROWS)
    targets = {}
    for name, n in counts.items():
        if n:
            most = max(n, n * TABLE2_BALANCED[name] // TABLE2_IMBALANCED[name])
            targets[name] = min(max(1, round(scale * TABLE2_BALANCED[name])), most)
    return targets


def _smote(features: np.ndarray, n_new: int, seed: int) -> tuple[np.ndarray, dict]:
    """n_new synthetic rows of one class by imbalanced-learn's SMOTE; (rows, what was done)."""
    from imblearn.over_sampling import SMOTE

    if len(features) < 2:
        return features[:0], {"skipped": f"{len(features)} row: SMOTE needs two", "new_rows": 0}
    rng = np.random.default_rng(seed)
    # The neighbour search costs pool^2: a pool bounds it for the big classes (DoS/DDoS).
    pool = features if len(features) <= SMOTE_POOL else features[
        np.sort(rng.choice(len(features), SMOTE_POOL, replace=False))]
    k = min(SMOTE_K, len(pool) - 1)
    # imbalanced-learn refuses a y of one class: one placeholder row of class 1, never resampled.
    x = np.concatenate([pool, pool[:1]])
    y = np.zeros(len(x), np.int64)
    y[-1] = 1
    smote = SMOTE(sampling_strategy={0: len(pool) + n_new}, k_neighbors=k, random_state=seed)
    resampled, _ = smote.fit_resample(x, y)
    return resampled[len(x):].astype(np.float32), {"k_neighbors": k, "pool": len(pool),
                                                    "new_rows": n_new}


def balance(rows: Rows, seed: int = 0, first_synthetic: int = 0) -> tuple[Rows, dict]:
    """RandomUnderSampler then SMOTE, per class, to `balance_targets`; returns rows and report.

    Real rows keep their order; synthetic rows follow, numbered from `first_synthetic`.
    """
    from imblearn.under_sampling import RandomUnderSampler

    before = rows.class_counts()
    targets = balance_targets(before)
    shrink = {CICIDS_ATTACKS.index(c): t for c, t in targets.items() if t < before[c]}
    if shrink:
        # A placeholder class (-1, one row) lets imbalanced-learn accept a single-class y.
        sampler = RandomUnderSampler(sampling_strategy=shrink, random_state=seed)
        sampler.fit_resample(np.zeros((len(rows) + 1, 1), np.int8), np.append(rows.attack, -1))
        kept = np.sort(sampler.sample_indices_[sampler.sample_indices_ < len(rows)])
        rows = rows.take(kept)

    smote = {}
    for name, target in targets.items():
        c = CICIDS_ATTACKS.index(name)
        if target <= before[name]:
            continue
        new, smote[name] = _smote(rows.features[rows.attack == c], target - before[name],
                                  seed + c)
        if smote[name].get("skipped"):
            log.warning("%s: %s; kept as is", name, smote[name]["skipped"])
        n = len(new)
        rows = rows.concat(dataclasses.replace(
            rows, features=new, attack=np.full(n, c, np.int8), label=np.full(n, -1, np.int16),
            source=np.full(n, -1, np.int16),
            line=np.arange(first_synthetic, first_synthetic + n, dtype=np.int64)))
        first_synthetic += n
    report = {"scale": min(1.0, sum(before.values()) / FULL_CLEAN_ROWS), "targets": targets,
              "before": before, "after": rows.class_counts(), "smote": smote}
    return rows, report


# ----------------------------------------------------------------------------- splits
def split_indices(attack: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified 64/16/20 split: per class, a seeded shuffle cut by SPLIT_FRACTIONS.

    Row indices come back sorted. A class of one row goes to train, never crashes.
    """
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLIT_FRACTIONS}
    for c in np.unique(attack):
        members = rng.permutation(np.flatnonzero(attack == c))
        n_test = round(len(members) * SPLIT_FRACTIONS["test"])
        n_val = round(len(members) * SPLIT_FRACTIONS["validation"])
        parts["test"].append(members[:n_test])
        parts["validation"].append(members[n_test:n_test + n_val])
        parts["train"].append(members[n_test + n_val:])
    return {name: np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64)
            for name, p in parts.items()}


# -------------------------------------------------------------------------- quantiles
def fit_quantile_transform(features: np.ndarray, seed: int = 0):
    """scikit-learn's QuantileTransformer to [0, 1], fitted on every row given (the train split)."""
    from sklearn.preprocessing import QuantileTransformer

    transform = QuantileTransformer(n_quantiles=min(N_QUANTILES, len(features)),
                                    output_distribution="uniform", subsample=None,
                                    random_state=seed)
    return transform.fit(features)


def quantile_transformer(quantiles: np.ndarray, references: np.ndarray):
    """A fitted QuantileTransformer rebuilt from saved arrays (`load_quantile_transform`)."""
    from sklearn.preprocessing import QuantileTransformer

    transform = QuantileTransformer(n_quantiles=len(references), output_distribution="uniform")
    transform.quantiles_ = np.asarray(quantiles, np.float64)
    transform.references_ = np.asarray(references, np.float64)
    transform.n_quantiles_ = len(references)
    transform.n_features_in_ = transform.quantiles_.shape[1]
    return transform


METADATA_FILE = "metadata.json"  # TFDS MetadataDict's file in the dataset's folder


def load_quantile_transform(path, config: str = "clean",
                            version: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(quantiles [n_q, 49] float64, references [n_q] float64) saved by a cicids2017 build.

    `path` is a built TFDS builder (its `data_dir`), a TFDS data_dir (then
    `<path>/cicids2017/<config>/<version or newest>/`), a dataset folder holding metadata.json,
    or that metadata.json itself.
    """
    path = pathlib.Path(os.fspath(getattr(path, "data_dir", path)))
    if path.is_dir() and not (path / METADATA_FILE).exists():
        folder = path / "cicids2017" / config
        versions = sorted((v for v in folder.glob("*.*.*") if (v / METADATA_FILE).exists()),
                          key=lambda v: tuple(int(x) for x in v.name.split(".")))
        if version:
            versions = [v for v in versions if v.name == version]
        if not versions:
            raise FileNotFoundError(f"no built cicids2017/{config} with {METADATA_FILE} in {path}")
        path = versions[-1]
    if path.is_dir():
        path = path / METADATA_FILE
    saved = json.loads(path.read_text())["quantile_transform"]
    if tuple(saved["features"]) != FEATURES:
        raise ValueError(f"{path}: the quantiles are for other features: {saved['features']}")
    return np.asarray(saved["quantiles"], np.float64), np.asarray(saved["references"], np.float64)


# ---------------------------------------------------------------------------- prepare
@dataclasses.dataclass
class Prepared:
    """What a build writes: the splits (features in [0, 1]), the fitted quantiles, the report."""

    splits: dict[str, Rows]
    quantiles: np.ndarray
    references: np.ndarray
    report: dict

    def metadata(self) -> dict:
        """JSON-ready: `quantile_transform` (for load_quantile_transform) and `build_report`."""
        return {
            "quantile_transform": {"features": list(FEATURES),
                                   "output_distribution": "uniform",
                                   "quantiles": self.quantiles.tolist(),
                                   "references": self.references.tolist()},
            "build_report": self.report,
        }


def prepare_rows(sources: Iterable[CsvSource], config: str, seed: int = 0,
                 chunk_rows: int = 100_000) -> tuple[dict[str, Rows], dict]:
    """Reads, cleans, splits and balances as `config` says; features still raw. (splits, report)

    paper: balance all rows, then split 64/16/20 (SMOTE rows may land in validation and test).
    clean: split 64/16/20 first, then balance the training split only.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {CONFIGS}")
    start = time.perf_counter()
    rows, report = read_rows(sources, chunk_rows)
    report["seconds"] = {"read": round(time.perf_counter() - start, 2)}
    if not len(rows):
        raise ValueError(f"no usable CICIDS2017 row in {list(report['files'])}: {report['dropped']}")

    start = time.perf_counter()
    if config == "paper":
        rows, report["balance"] = balance(rows, seed)
    splits = {name: rows.take(index) for name, index in split_indices(rows.attack, seed).items()}
    if config == "clean":
        splits["train"], report["balance"] = balance(splits["train"], seed)
    report["seconds"]["split_and_balance"] = round(time.perf_counter() - start, 2)
    report["config"] = config
    report["splits"] = {name: {**part.class_counts(),
                               "synthetic": int(np.count_nonzero(part.source < 0))}
                        for name, part in splits.items()}
    return splits, report


def prepare(sources: Iterable[CsvSource], config: str, seed: int = 0,
            chunk_rows: int = 100_000) -> Prepared:
    """`prepare_rows`, then the quantile transform fitted on the training split as written
    (balanced, in both configs) maps every split to [0, 1]."""
    splits, report = prepare_rows(sources, config, seed, chunk_rows)
    start = time.perf_counter()
    transform = fit_quantile_transform(splits["train"].features, seed)
    for part in splits.values():
        if len(part):
            part.features = transform.transform(part.features).astype(np.float32)
    report["seconds"]["quantile"] = round(time.perf_counter() - start, 2)
    return Prepared(splits, transform.quantiles_, transform.references_, report)
