"""How long the CICIDS2017 TFDS build takes, and in how much memory: `python -m benchmarks.cicids_build`.

Writes a synthetic CSV of realistic shape (the real MachineLearningCVE header with its byte-order
mark, leading spaces and duplicated column; the real raw-label mix; prototype-clustered flows;
duplicates, Infinity/NaN, -1 sentinels, empty rows, Infiltration, the mis-encoded dash), then runs
the real TFDS build of each config in a child process (so each peak RSS is its own). The baseline,
timed in the same child, is a plain chunked pandas read of the same file.

By default a tenth of the dataset is built and the time is scaled to the full 2,830,743 rows
(linear: every stage is, except SMOTE, whose neighbour search is capped by SMOTE_POOL).
`--rows 2830743` builds the full size. Last line: `full_build_minutes=<estimate>` (the slower config).

`--dummy-data DIR` writes the builder's dummy_data instead (both layouts, zipped and extracted).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

from mtc_keras import cicids
from mtc_keras.testing import MLCVE_HEADER, TRAFFIC_LABELLING_HEADER  # the official header lines

FULL_ROWS = 2_830_743  # rows of the eight MachineLearningCVE day files

# Raw labels of the whole MachineLearningCVE dataset and their row counts (the public totals).
RAW_LABEL_COUNTS = {
    "BENIGN": 2_273_097, "DoS Hulk": 231_073, "PortScan": 158_930, "DDoS": 128_027,
    "DoS GoldenEye": 10_293, "FTP-Patator": 7_938, "SSH-Patator": 5_897, "DoS slowloris": 5_796,
    "DoS Slowhttptest": 5_499, "Bot": 1_966, "Web Attack \ufffd Brute Force": 1_507,
    "Web Attack \ufffd XSS": 652, "Infiltration": 36, "Web Attack \ufffd Sql Injection": 21,
    "Heartbleed": 11,
}

assert cicids.layout_of(MLCVE_HEADER.split(","), "MLCVE_HEADER") == "MachineLearningCVE"
assert cicids.layout_of(TRAFFIC_LABELLING_HEADER.split(","), "TL") == "TrafficLabelling"

_FLOAT_WORDS = ("Mean", "Std", "Variance", "/s", "Ratio", "Average", "Avg", "Rate")
_IS_FLOAT = np.array([any(w in c for w in _FLOAT_WORDS) for c in cicids.FLOW_COLUMNS])
_IS_FLAG = np.array(["Flag" in c for c in cicids.FLOW_COLUMNS])
_COL = {c: i for i, c in enumerate(cicids.FLOW_COLUMNS)}


def synthetic_rows(labels: dict[str, int], seed: int = 0, prototypes: int = 48) -> tuple[np.ndarray, list[str]]:
    """(values [n, 78], raw labels): flows clustered around a few prototypes per label, shuffled."""
    rng = np.random.default_rng(seed)
    blocks, names = [], []
    for label, n in labels.items():
        # Prototypes: log-normal magnitudes, many features zero, flags 0/1, constant bulk columns.
        proto = np.exp(rng.normal(rng.uniform(0, 12, 78), 2.0, (prototypes, 78)))
        proto *= rng.random((prototypes, 78)) < 0.7
        proto[:, _IS_FLAG] = rng.random((prototypes, _IS_FLAG.sum())) < 0.3
        proto[:, _COL["Destination Port"]] = rng.choice([80, 443, 21, 22, 53, 8080, 139, 445],
                                                        prototypes)
        rows = proto[rng.integers(0, prototypes, n)]
        noisy = ~_IS_FLAG & (rng.random((n, 78)) < 0.5)
        noisy[:, _COL["Destination Port"]] = False
        rows[noisy] *= np.exp(rng.normal(0, 0.3, noisy.sum()))
        blocks.append(rows)
        names += [label] * n
    values = np.concatenate(blocks)
    order = rng.permutation(len(values))
    values, names = values[order], [names[i] for i in order]
    for name in cicids.NO_VARIANCE:
        values[:, _COL[name]] = 0
    values[:, _COL["Fwd Header Length.1"]] = values[:, _COL["Fwd Header Length"]]
    values[:, ~_IS_FLOAT] = np.round(values[:, ~_IS_FLOAT])
    sentinel = rng.random(len(values)) < 0.3
    values[sentinel, _COL["Init_Win_bytes_backward"]] = -1
    # ~0.1% Infinity / NaN in the rate columns, as in the real files.
    bad = np.flatnonzero(rng.random(len(values)) < 0.001)
    values[bad[::2], _COL["Flow Bytes/s"]] = np.inf
    values[bad[::2], _COL["Flow Packets/s"]] = np.inf
    values[bad[1::2], _COL["Flow Bytes/s"]] = np.nan
    # ~10% exact duplicates of earlier rows.
    dup = np.flatnonzero(rng.random(len(values)) < 0.1)
    dup = dup[dup > 0]
    source = rng.integers(0, dup)
    values[dup] = values[source]
    for d, s in zip(dup, source):
        names[d] = names[s]
    return values, names


_ROW_FORMAT = ",".join("%.10g" if is_float else "%d" for is_float in _IS_FLOAT)


def _format(values: np.ndarray, names: list[str], layout: str, first_row: int) -> str:
    """CSV lines as CICFlowMeter writes them: integers bare, floats to 10 digits, Infinity, NaN."""
    lines = []
    for i, (row, label) in enumerate(zip(values.tolist(), names)):
        line = (_ROW_FORMAT % tuple(row)).replace("inf", "Infinity").replace("nan", "NaN")
        if layout == "TrafficLabelling":
            n = first_row + i
            port, rest = line.split(",", 1)
            src, dst = f"192.168.10.{n % 250 + 1}", f"172.16.0.{n % 7 + 1}"
            line = (f"{dst}-{src}-{port}-{n % 60000 + 1024}-6,{src},{n % 60000 + 1024},{dst},"
                    f"{port},6,6/7/2017 {9 + n % 8}:{n % 60:02d},{rest}")
        lines.append(line + "," + label)
    return "\n".join(lines) + "\n"


def write_synthetic_csv(stream, labels: dict[str, int], seed: int = 0,
                        layout: str = "MachineLearningCVE", empty_rows: int = 0,
                        chunk_rows: int = 200_000, encoding: str = "utf-8") -> int:
    """Writes a CSV with the real header (BOM, spaces, duplicated column) to a binary stream.

    `labels`: raw label -> rows. Memory stays bounded by `chunk_rows`. Returns rows written.
    """
    header = MLCVE_HEADER if layout == "MachineLearningCVE" else TRAFFIC_LABELLING_HEADER
    stream.write(("\ufeff" + header + "\n").encode("utf-8"))
    total, written = sum(labels.values()), 0
    for part, start in enumerate(range(0, total, chunk_rows)):
        share = min(chunk_rows, total - start) / total
        counts = {k: int(round(v * share)) for k, v in labels.items()}
        if start + chunk_rows >= total:  # the last chunk takes what rounding left
            counts = {k: v - round(v * start / total) for k, v in labels.items()}
        values, names = synthetic_rows(counts, seed + part)
        stream.write(_format(values, names, layout, written).encode(encoding, errors="replace"))
        written += len(names)
    stream.write(("," * (len(header.split(",")) - 1) + "\n").encode() * empty_rows)
    return written + empty_rows


def scaled_labels(rows: int) -> dict[str, int]:
    """The real raw-label mix for `rows` rows; every label keeps at least one row."""
    return {k: max(1, round(v * rows / FULL_ROWS)) for k, v in RAW_LABEL_COUNTS.items()}


def write_dummy_data(folder: pathlib.Path) -> None:
    """The builder's dummy_data: a MachineLearningCVE CSV and a zipped TrafficLabelling one (cp1252)."""
    folder.mkdir(parents=True, exist_ok=True)
    friday = {"BENIGN": 150, "DDoS": 40, "PortScan": 30, "Bot": 5}
    thursday = {"BENIGN": 110, "FTP-Patator": 12, "SSH-Patator": 8, "Web Attack \u2013 Brute Force": 5,
                "Web Attack \u2013 XSS": 3, "Infiltration": 1}
    (folder / "MachineLearningCVE").mkdir(exist_ok=True)
    with open(folder / "MachineLearningCVE" / "Friday-WorkingHours-Afternoon.pcap_ISCX.csv", "wb") as f:
        write_synthetic_csv(f, friday, seed=1)
    buffer = io.BytesIO()
    write_synthetic_csv(buffer, thursday, seed=2, layout="TrafficLabelling", empty_rows=3,
                        encoding="cp1252")
    with zipfile.ZipFile(folder / "GeneratedLabelledFlows.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("TrafficLabelling/Thursday-WorkingHours-Morning-WebAttacks.pcap_ISCX.csv",
                   buffer.getvalue())


def _child(manual: str, config: str, data_dir: str) -> None:
    """Times a plain chunked pandas read (baseline) and the real TFDS build; prints one JSON line."""
    import imblearn.over_sampling  # noqa: F401  (imported before timing: a fixed cost, not per row)
    import pandas as pd
    import sklearn.preprocessing  # noqa: F401
    import tensorflow_datasets as tfds

    from tfds_builders.cicids2017 import Builder

    start = time.perf_counter()
    for source in cicids.find_sources(manual)[0]:
        with source.open() as stream:
            for _ in pd.read_csv(stream, chunksize=100_000, encoding_errors="replace"):
                pass
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    builder = Builder(config=config, data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    build = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = builder.info.metadata["build_report"]
    print(json.dumps({"baseline_s": baseline, "build_s": build, "stages_s": report["seconds"],
                      "examples": builder.info.splits.total_num_examples,
                      "rows_clean": report["rows_clean"],
                      "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                      "load_average": os.getloadavg()[0]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS // 10)
    parser.add_argument("--configs", default=",".join(cicids.CONFIGS))
    parser.add_argument("--dummy-data", type=pathlib.Path)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dummy_data:
        return write_dummy_data(args.dummy_data)
    if args.child:
        return _child(*args.child)

    with tempfile.TemporaryDirectory() as tmp:
        manual = pathlib.Path(tmp, "manual")
        manual.mkdir()
        start = time.perf_counter()
        with open(manual / "synthetic.pcap_ISCX.csv", "wb") as f:
            rows = write_synthetic_csv(f, scaled_labels(args.rows), empty_rows=args.rows // 10_000)
        size = (manual / "synthetic.pcap_ISCX.csv").stat().st_size
        print(f"wrote {rows} rows, {size / 2**20:.0f} MiB in {time.perf_counter() - start:.0f} s")
        minutes = []
        for config in args.configs.split(","):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.cicids_build", "--child", str(manual), config,
                 os.path.join(tmp, "data_" + config)],
                check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            full = result["build_s"] * FULL_ROWS / rows / 60
            minutes.append(full)
            print(f"{config}: {rows / result['build_s']:,.0f} rows/s, build {result['build_s']:.1f} s "
                  f"(stages {result['stages_s']}, {result['examples']} examples written), "
                  f"baseline pandas read {result['baseline_s']:.1f} s, "
                  f"build/baseline={result['build_s'] / result['baseline_s']:.1f}, "
                  f"peak RSS {result['peak_rss_mb']:.0f} MiB, CPU {result['cpu_s']:.0f} s (whole child), "
                  f"load average {result['load_average']:.1f}, full size ~{full:.1f} min")
    print(f"full_build_minutes={max(minutes):.1f}")


if __name__ == "__main__":
    main()
