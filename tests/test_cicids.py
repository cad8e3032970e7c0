"""mtc_keras.cicids: header quirks, cleaning counts, labels, balancing, splits, the TFDS build."""

import collections
import json
import pathlib
import zipfile

import numpy as np
import pandas as pd
import pytest

from mtc_keras.testing import MLCVE_HEADER, TRAFFIC_LABELLING_HEADER
from mtc_keras import cicids
from mtc_keras.labels import CICIDS_ATTACKS, canonical_cicids_label, cicids_attack

DUMMY_DATA = pathlib.Path(__file__).resolve().parents[1] / "tfds_builders" / "cicids2017" / "dummy_data"
WEB = CICIDS_ATTACKS.index("Web attack")


def real_header(layout: str = "MachineLearningCVE") -> str:
    """The header line of the official files: BOM, leading spaces, `Fwd Header Length` twice."""
    return "\ufeff" + (MLCVE_HEADER if layout == "MachineLearningCVE" else TRAFFIC_LABELLING_HEADER)


class CsvWriter:
    """Builds MachineLearningCVE rows by column name; each row differs (Destination Port = row #)."""

    def __init__(self):
        self.lines = [real_header().encode("utf-8")]

    def row(self, label: bytes | str = b"BENIGN", **values) -> None:
        fields = {name: str(i % 7) for i, name in enumerate(cicids.FLOW_COLUMNS)}
        fields["Destination Port"] = str(len(self.lines))
        fields.update({name: str(value) for name, value in values.items()})
        label = label.encode("utf-8") if isinstance(label, str) else label
        self.lines.append(",".join(fields[n] for n in cicids.FLOW_COLUMNS).encode() + b"," + label)

    def raw(self, line: bytes) -> None:
        self.lines.append(line)

    def write(self, path: pathlib.Path) -> pathlib.Path:
        path.write_bytes(b"\r\n".join(self.lines) + b"\r\n")
        return path


def read(path: pathlib.Path):
    return cicids.read_rows([cicids.CsvSource(str(path))], chunk_rows=4)


# ------------------------------------------------------------------- the column table
def test_feature_table_keeps_49_in_header_order_and_never_flow_identifiers():
    assert len(cicids.FEATURES) == 49 and len(set(cicids.FEATURES)) == 49
    assert collections.Counter(cicids.DROPPED.values()) == {
        cicids.NO_VARIANCE_REASON: 10, cicids.CORRELATED_REASON: 18,
        cicids.DUPLICATE_COLUMN_REASON: 1}
    assert set(cicids.FEATURES).isdisjoint(cicids.DROPPED)
    positions = [cicids.FLOW_COLUMNS.index(f) for f in cicids.FEATURES]
    assert positions == sorted(positions)
    assert set(cicids.FLOW_ID_COLUMNS).isdisjoint(cicids.FEATURES)
    assert "Destination Port" in cicids.FEATURES  # the known shortcut, kept as the reference did


# ----------------------------------------------------------------------- real rows
def _real_frame(path: pathlib.Path) -> pd.DataFrame:
    with open(path, "rb") as f:
        names = cicids.normalise_header(f.readline().decode("utf-8", "replace").split(","))
        return pd.read_csv(f, header=None, names=names, encoding_errors="replace")


def test_real_headers_and_no_variance_columns(shared_cicids):
    for path in sorted(shared_cicids.glob("*.csv")):
        with open(path, "rb") as f:
            names = f.readline().decode("utf-8", "replace").split(",")
        assert cicids.layout_of(names, path.name) == "MachineLearningCVE"
        frame = _real_frame(path)
        for column in cicids.NO_VARIANCE:
            assert frame[column].nunique() == 1, (path.name, column)


def _as_traffic_labelling(source: pathlib.Path, target: pathlib.Path) -> None:
    """The same rows in the 85-column layout: the six flow-identifying columns added."""
    lines = source.read_bytes().split(b"\n")
    out = [real_header("TrafficLabelling").encode()]
    for i, line in enumerate(lines[1:]):
        if not line.strip():
            out.append(line)
            continue
        port, rest = line.split(b",", 1)
        src, dst = f"192.168.10.{i % 250}", f"205.174.165.{i % 80}"
        out.append(f"{dst}-{src}-{port.decode()}-{40000 + i}-6,{src},{40000 + i},{dst},".encode()
                   + port + b",6,6/7/2017 9:" + f"{i % 60:02d},".encode() + rest)
    target.write_bytes(b"\n".join(out))


def test_both_layouts_yield_the_same_49_columns(shared_cicids, tmp_path):
    source = shared_cicids / "mlcve79_thursday_webattacks_10180rows.csv"
    traffic = tmp_path / source.name
    _as_traffic_labelling(source, traffic)
    mlcve, mlcve_report = cicids.read_rows([cicids.CsvSource(str(source))])
    tl, tl_report = cicids.read_rows([cicids.CsvSource(str(traffic))])
    assert mlcve_report["files"][source.name]["layout"] == "MachineLearningCVE"
    assert tl_report["files"][source.name]["layout"] == "TrafficLabelling"
    assert mlcve_report["dropped"] == tl_report["dropped"]
    np.testing.assert_array_equal(mlcve.features, tl.features)
    np.testing.assert_array_equal(mlcve.line, tl.line)
    assert [mlcve.raw_label(i) for i in range(len(mlcve))] == [tl.raw_label(i) for i in range(len(tl))]
    # The 49 columns are the named ones, in FEATURES order (pandas as the independent reader).
    frame = _real_frame(source).iloc[mlcve.line - 2]
    np.testing.assert_array_equal(mlcve.features, frame[list(cicids.FEATURES)].to_numpy(np.float32))


@pytest.mark.slow
def test_real_rows_build_tfds(shared_cicids, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tfds_builders.cicids2017 import Builder

    # Independent count of the clean rows: pandas, the rules, labels.py.
    frame = pd.concat([_real_frame(p) for p in sorted(shared_cicids.glob("*.csv"))])
    frame["attack"] = frame["Label"].map(cicids_attack)
    frame["raw"] = frame["Label"].map(canonical_cicids_label)
    frame = frame.dropna(subset=["attack"])
    frame = frame[np.isfinite(frame[list(cicids.FEATURES)].to_numpy(float)).all(axis=1)]
    frame = frame.drop_duplicates(subset=list(cicids.FEATURES) + ["raw"])
    expected = {name: int((frame["attack"] == i).sum()) for i, name in enumerate(CICIDS_ATTACKS)}

    builder = Builder(config="paper", data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(shared_cicids)))
    report = builder.info.metadata["build_report"]
    assert report["class_counts_clean"] == expected
    targets = cicids.balance_targets(expected)
    assert report["balance"]["after"] == {name: targets.get(name, 0) for name in CICIDS_ATTACKS}

    counts = collections.Counter()
    for split in ("train", "validation", "test"):
        examples = tfds.as_numpy(builder.as_dataset(split=split, batch_size=100_000))
        batch = next(iter(examples))
        assert np.isfinite(batch["features"]).all()
        assert batch["features"].min() >= 0 and batch["features"].max() <= 1
        split_counts = collections.Counter(batch["attack"].tolist())
        assert {CICIDS_ATTACKS[c]: n for c, n in split_counts.items()} == {
            k: v for k, v in report["splits"][split].items() if v and k != "synthetic"}
        counts.update(split_counts)
    assert {CICIDS_ATTACKS[c]: n for c, n in counts.items()} == targets
    assert set(report["files"]) == {p.name for p in shared_cicids.glob("*.csv")}


# ------------------------------------------------------------------- quirks, counted
MOJIBAKE_DASHES = {
    "U+FFFD": "\ufffd".encode(),
    "utf-8 read as latin-1": "ï¿½".encode(),
    "twice mis-decoded": "Ã¯Â¿Â½".encode(),
    "en dash": "\u2013".encode(),
    "cp1252 byte": b"\x96",
    "cp1252 mojibake of en dash": "â€“".encode(),
}


def test_quirks_are_handled_and_counted(tmp_path):
    csv = CsvWriter()
    csv.row("BENIGN", **{"Flow Duration": 5, "Init_Win_bytes_backward": -1})  # kept: sentinel
    csv.row("BENIGN", **{"Packet Length Variance": "NaN", "Idle Mean": "Infinity"})  # kept
    # The first row again, written differently, or differing only in a dropped column: duplicates.
    first = csv.lines[1].split(b",")
    csv.raw(b",".join([first[0] + b".0"] + first[1:]))
    csv.raw(b",".join([first[0], b"99"] + first[2:]))
    csv.row("BENIGN", **{"Flow Bytes/s": "Infinity"})
    csv.row("BENIGN", **{"Flow Packets/s": "NaN"})
    csv.row("BENIGN", **{"Flow Bytes/s": "-Infinity"})
    csv.row("BENIGN", **{"Flow IAT Mean": ""})
    csv.row("BENIGN", **{"Fwd IAT Min": "abc"})
    csv.raw(b"," * 78)
    csv.raw(b"")
    csv.row(b"")
    csv.row("Infiltration")
    csv.row("Martian attack")
    csv.row("  DDoS ")
    for dash in MOJIBAKE_DASHES.values():
        csv.row(b"Web Attack " + dash + b" XSS")
    path = csv.write(tmp_path / "quirks.csv")

    rows, report = read(path)
    assert report["dropped"] == {"empty_row": 2, "missing_label": 1, "unknown_label": 1,
                                 "infiltration": 1, "bad_number": 1, "nan_or_inf": 4,
                                 "duplicate": 2}
    assert report["unknown_labels"] == {"Martian attack": 1}
    assert report["rows_read"] == len(csv.lines) - 1 == sum(report["dropped"].values()) + len(rows)
    assert report["negative_values_kept"] == {"Init_Win_bytes_backward": 1}
    assert report["class_counts_clean"]["Web attack"] == len(MOJIBAKE_DASHES)
    assert [rows.raw_label(i) for i in range(len(rows))] == (
        ["BENIGN", "BENIGN", "DDoS"] + ["Web Attack - XSS"] * len(MOJIBAKE_DASHES))
    assert rows.line.tolist() == [2, 3, 16] + list(range(17, 17 + len(MOJIBAKE_DASHES)))
    assert rows.features.dtype == np.float32 and np.isfinite(rows.features).all()
    assert rows.features[0, cicids.FEATURES.index("Init_Win_bytes_backward")] == -1


def test_unknown_header_names_the_file_and_columns(tmp_path):
    header = real_header().replace("Flow Duration", "Flow Length")
    path = tmp_path / "odd.csv"
    path.write_text(header + "\n" + ",".join(["1"] * 79) + "\n")
    with pytest.raises(ValueError, match=r"odd\.csv.*Flow Length") as error:
        read(path)
    assert "Missing: ['Flow Duration']" in str(error.value)

    path.write_text("a,b,Label\n1,2,BENIGN\n")
    with pytest.raises(ValueError, match=r"odd\.csv: unknown CICIDS2017 header with 3 columns"):
        read(path)


def test_a_header_without_usable_rows_is_a_clear_error(tmp_path):
    csv = CsvWriter()
    csv.row("Infiltration")
    path = csv.write(tmp_path / "only_infiltration.csv")
    with pytest.raises(ValueError, match=r"no usable CICIDS2017 row in \['only_infiltration.csv'\]"):
        cicids.prepare([cicids.CsvSource(str(path))], "clean")


def test_a_row_of_the_wrong_width_is_never_read_shifted(tmp_path):
    csv = CsvWriter()
    csv.row("DDoS")
    fields = csv.lines[1].split(b",")
    csv.raw(b",".join(fields[:5] + [b"3"] + fields[5:]))  # a field too many: label is a number
    csv.raw(b",".join(fields[:5] + fields[6:]))  # a field short: no label
    csv.raw(csv.lines[1].replace(b"1,", b"2,", 1) + b",extra")  # after the label: ignored
    rows, report = read(csv.write(tmp_path / "wide.csv"))
    assert report["unknown_labels"] == {fields[-2].decode(): 1}
    assert report["dropped"]["missing_label"] == 1
    assert rows.line.tolist() == [2, 5] and rows.attack.tolist() == [cicids_attack("DDoS")] * 2


def test_zipped_and_extracted_copies_are_read_once(tmp_path):
    csv = CsvWriter()
    for label in ("BENIGN", "DDoS", "Bot"):
        csv.row(label)
    (tmp_path / "MachineLearningCVE").mkdir()
    extracted = csv.write(tmp_path / "MachineLearningCVE" / "Friday.pcap_ISCX.csv")
    (tmp_path / "downloads" / "deep").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "downloads" / "deep" / "MachineLearningCSV.zip", "w") as z:
        z.write(extracted, "MachineLearningCVE/Friday.pcap_ISCX.csv")
        z.write(extracted, "MachineLearningCVE/Other.pcap_ISCX.csv")
    sources, skipped = cicids.find_sources(tmp_path)
    assert [(s.name, s.member is None) for s in sources] == [
        ("Friday.pcap_ISCX.csv", True), ("Other.pcap_ISCX.csv", False)]
    assert skipped == ["Friday.pcap_ISCX.csv (zipped)"]
    rows, report = cicids.read_rows(sources)
    assert report["dropped"]["duplicate"] == 3  # the same flows under another name
    assert [rows.key(i) for i in range(len(rows))] == [f"Friday.pcap_ISCX.csv:{n}" for n in (2, 3, 4)]


# --------------------------------------------------------------------------- balancing
def test_balance_targets_follow_table_2():
    full = dict(cicids.TABLE2_IMBALANCED)
    assert cicids.balance_targets(full) == cicids.TABLE2_BALANCED
    tenth = {k: v // 10 for k, v in full.items()}
    for name, target in cicids.balance_targets(tenth).items():
        assert abs(target - cicids.TABLE2_BALANCED[name] / 10) <= 0.001 * cicids.TABLE2_BALANCED[name]
    # Never grown more than Table 2 grows the class; a present class keeps a row.
    few = cicids.balance_targets({"Benign": 100_000, "Web attack": 2, "Botnet ARES": 0})
    assert set(few) == {"Benign", "Web attack"}
    assert abs(few["Benign"] - 100_002 / cicids.FULL_CLEAN_ROWS * 1_330_000) <= 1
    assert few["Web attack"] == 2 * 65_500 // 2_118


def _rows(counts: dict[int, int], seed: int = 0) -> cicids.Rows:
    rng = np.random.default_rng(seed)
    attack = np.concatenate([np.full(n, c, np.int8) for c, n in counts.items()])
    n = len(attack)
    features = rng.lognormal(3, 2, (n, 49)).astype(np.float32) * (1 + attack[:, None])
    return cicids.Rows(features, attack, np.zeros(n, np.int16), np.zeros(n, np.int16),
                       np.arange(2, n + 2), ["x"], ["f.csv"])


def test_smote_on_tiny_classes_never_crashes():
    # Benign sets the scale; the attack classes are far below their targets.
    rows = _rows({0: 40_000, WEB: 1, 5: 2, 3: 3, 2: 7})
    balanced, report = cicids.balance(rows, seed=1)
    targets = report["targets"]
    assert report["smote"]["Web attack"]["skipped"].startswith("1 row")
    assert report["smote"]["Botnet ARES"]["k_neighbors"] == 1
    assert report["smote"]["Brute force"]["k_neighbors"] == 2
    assert report["smote"]["PortScan"]["k_neighbors"] == 5
    after = balanced.class_counts()
    assert after["Web attack"] == 1 and targets["Web attack"] > 1
    for name in ("Benign", "PortScan", "Brute force", "Botnet ARES"):
        assert after[name] == targets[name] > 0
    synthetic = balanced.source < 0
    assert synthetic.sum() == sum(s["new_rows"] for s in report["smote"].values())
    assert len({balanced.key(i) for i in range(len(balanced))}) == len(balanced)
    # SMOTE rows lie between real rows of their own class.
    for c in np.unique(balanced.attack[synthetic]):
        real = rows.features[rows.attack == c]
        made = balanced.features[synthetic & (balanced.attack == c)]
        assert (made >= real.min(axis=0) * (1 - 1e-6)).all()
        assert (made <= real.max(axis=0) * (1 + 1e-6)).all()


def test_split_is_stratified_disjoint_and_complete():
    attack = np.repeat(np.arange(4), [1000, 100, 7, 1]).astype(np.int8)
    parts = cicids.split_indices(attack, seed=3)
    together = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(together), np.arange(len(attack)))
    for name, fraction in cicids.SPLIT_FRACTIONS.items():
        assert np.count_nonzero(attack[parts[name]] == 0) == round(1000 * fraction)
    assert attack[parts["train"]].tolist().count(3) == 1


# ------------------------------------------------------------------ configs, quantiles
@pytest.mark.parametrize("config", cicids.CONFIGS)
def test_quantiles_are_fitted_on_the_training_split_only(config):
    sources, _ = cicids.find_sources(DUMMY_DATA)
    raw, _ = cicids.prepare_rows(sources, config, seed=7)
    prepared = cicids.prepare(sources, config, seed=7)
    fitted = cicids.fit_quantile_transform(raw["train"].features, seed=7)
    np.testing.assert_array_equal(prepared.quantiles, fitted.quantiles_)
    everything = np.concatenate([part.features for part in raw.values()])
    assert not np.array_equal(cicids.fit_quantile_transform(everything).quantiles_, fitted.quantiles_)
    for name, part in prepared.splits.items():
        np.testing.assert_array_equal(part.features, fitted.transform(raw[name].features))
        assert part.features.min() >= 0 and part.features.max() <= 1


def test_clean_config_keeps_synthetic_rows_out_of_validation_and_test(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tfds_builders.cicids2017 import Builder

    builder = Builder(config="clean", data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY_DATA)))
    quantiles, references = cicids.load_quantile_transform(tmp_path, "clean")
    transform = cicids.quantile_transformer(quantiles, references)
    rows, _ = cicids.read_rows(cicids.find_sources(DUMMY_DATA)[0])
    real = {r.tobytes() for r in transform.transform(rows.features).astype(np.float32)}

    report = builder.info.metadata["build_report"]
    assert report["splits"]["train"]["synthetic"] > 0
    for split in ("validation", "test"):
        batch = next(iter(tfds.as_numpy(builder.as_dataset(split=split, batch_size=10_000))))
        assert cicids.SYNTHETIC_LABEL.encode() not in set(batch["raw_label"].tolist())
        assert all(f.tobytes() in real for f in batch["features"]), split
        assert report["splits"][split]["synthetic"] == 0
    train = next(iter(tfds.as_numpy(builder.as_dataset(split="train", batch_size=10_000))))
    made = [f.tobytes() not in real for f in train["features"]]
    assert sum(made) == report["splits"]["train"]["synthetic"]
    folder = tmp_path / "cicids2017" / "clean" / "1.0.0"
    assert json.loads((folder / "metadata.json").read_text())["quantile_transform"]["features"] == list(
        cicids.FEATURES)
    for path in (builder, folder, folder / "metadata.json"):
        for saved, loaded in zip((quantiles, references), cicids.load_quantile_transform(path)):
            np.testing.assert_array_equal(saved, loaded)
    assert quantiles.shape == (len(references), 49) and references[0] == 0 and references[-1] == 1
    with pytest.raises(FileNotFoundError, match="cicids2017/paper"):
        cicids.load_quantile_transform(tmp_path, "paper")
