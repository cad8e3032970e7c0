"""Gather finished runs into the layout of the paper's Table 4 (and Tables 6-9), beside its numbers.

    python -m experiments.report RUN_DIR... [--output=FILE.md] [--data_dir=TFDS_DIR,...]

Each RUN_DIR holds a ``metrics.json`` (layout: ``mtc_keras.evaluation``). A run goes to the
paper cell named by its ``run.config_name`` (or, failing that, its directory's name, which is
the flagfile's name for runs made with ``experiments/configs``); any other run of a known model
goes to that model's Table 4 row. Runs of other models (e.g. shortcut probes) become extra rows
under the MTC rows of Table 4 (and under the rows of every ISCX sweep table shown). Every row
of ours names its dataset config (split) and run dir.

A "Leakage" section gives, for every config of a packet dataset (ISCX VPN-nonVPN, USTC-TFC2016:
``mtc_keras.registry.PACKET_DATASETS``) built in a TFDS data_dir (those of
--data_dir, else the ``data_dir`` the runs recorded), the share of test packets whose flow has
packets in train and the share of test vectors found byte-for-byte in train: from the build
report in the dataset's metadata, or computed from the built splits (``mtc_keras.leakage``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence

from absl import app, flags

from experiments.paper_results import MODEL_NAMES, PAPER_ROWS, TABLES, PaperRow
from mtc_keras import registry
from mtc_keras.evaluation import read_metrics
from mtc_keras.labels import TASKS

TABLE4_DATASETS = tuple(key for key, d in registry.DATASETS.items() if d.in_paper)  # Table 4
TABLE4_TASKS = tuple(task for dataset in TABLE4_DATASETS for task in TASKS[dataset])
# Datasets the paper does not evaluate on: a table of their own, our runs only (no published
# row is quoted that this project has not checked against its source).
OTHER_DATASET_TABLES = {key: f"{d.title} (not in the MTC paper): F1 (%) and recall (%) of our runs"
                        for key, d in registry.DATASETS.items() if not d.in_paper}
NO_VALUE = "–"


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished run: its directory and its metrics.json."""

    path: str
    metrics: dict

    @property
    def info(self) -> dict:
        return self.metrics["run"]

    @property
    def name(self) -> str:
        return self.info.get("config_name") or os.path.basename(os.path.normpath(self.path))

    def scores(self) -> dict[str, tuple[float | None, float | None]]:
        """task -> (macro F1 %, macro recall %) of every task in the run."""
        percent = lambda value: None if value is None else 100 * value  # noqa: E731
        return {task: (percent(result["macro_f1"]), percent(result["macro_recall"]))
                for task, result in self.metrics.items() if task != "run"}


@dataclasses.dataclass(frozen=True)
class Row:
    """One table row: the paper's numbers (source "paper") or a run's (source "ours")."""

    label: str
    source: str
    scores: Mapping[str, tuple[float | None, float | None]]  # task -> (F1 %, recall %)
    split: str = NO_VALUE
    run_dir: str = NO_VALUE


def load_runs(paths: Iterable[str]) -> list[Run]:
    """Read every run's metrics.json; a clear error for a missing file or an unknown dataset."""
    runs = []
    for path in paths:
        metrics = read_metrics(path)
        if metrics["run"]["dataset"] not in TASKS:
            raise ValueError(f"{path}: unknown dataset {metrics['run']['dataset']!r}; "
                             f"expected one of {sorted(TASKS)}")
        runs.append(Run(path=path, metrics=metrics))
    return runs


def paper_key(run: Run) -> str | None:
    """The PAPER_ROWS key a run reproduces, or None for a model the paper does not have."""
    info = run.info
    cell = PAPER_ROWS.get(run.name)
    if cell and cell.dataset == info["dataset"] and cell.model == info["model"]:
        return run.name
    for key, row in PAPER_ROWS.items():
        if row.table == "table4" and row.dataset == info["dataset"] and row.model == info["model"]:
            return key
    return None


def run_row(run: Run, label: str) -> Row:
    return Row(label=label, source="ours", scores=run.scores(),
               split=str(run.info["dataset_config"]), run_dir=run.path)


def paper_row(label: str, cells: Sequence[PaperRow]) -> Row:
    scores = {task: score for cell in cells for task, score in cell.scores.items()}
    # The paper split per packet at random, which our `paper` dataset config reproduces.
    return Row(label=label, source="paper", scores=scores, split="paper")


def table4_rows(runs: Sequence[Run], extra_rows: Sequence[Row] = ()) -> list[Row]:
    """Table 4: per model, the paper's row then ours; ``extra_rows`` and runs of unknown
    models (e.g. probes) go under the MTC rows."""
    runs = [run for run in runs if run.info["dataset"] in TABLE4_DATASETS]
    extra = list(extra_rows) + [run_row(run, run.info["model"]) for run in runs
                                if paper_key(run) is None]
    rows = []
    for model, label in MODEL_NAMES.items():
        cells = [row for row in PAPER_ROWS.values() if row.table == "table4" and row.model == model]
        rows.append(paper_row(label, cells))
        keys = {cell.key for cell in cells}
        rows += [run_row(run, label) for run in runs if paper_key(run) in keys]
        if model == "mtc":
            rows += extra
    return rows


def sweep_rows(table: str, runs: Sequence[Run]) -> list[Row]:
    """Tables 6-9: every cell's paper row, each followed by the runs of that cell; then the
    runs of unknown models (probes) on the table's dataset, as a floor to read the sweep by."""
    rows = []
    cells = [row for row in PAPER_ROWS.values() if row.table == table]
    for cell in cells:
        rows.append(paper_row(cell.label, [cell]))
        rows += [run_row(run, cell.label) for run in runs if paper_key(run) == cell.key]
    datasets = {cell.dataset for cell in cells}
    rows += [run_row(run, run.info["model"]) for run in runs
             if paper_key(run) is None and run.info["dataset"] in datasets]
    return rows


def dataset_rows(dataset: str, runs: Sequence[Run]) -> list[Row]:
    """A dataset outside the paper: its runs, the models in MODEL_NAMES order, then the others
    (probes), each labelled by its model and saying its split."""
    order = {model: i for i, model in enumerate(MODEL_NAMES)}
    mine = sorted((run for run in runs if run.info["dataset"] == dataset),
                  key=lambda run: (order.get(run.info["model"], len(order)), run.info["model"],
                                   str(run.info["dataset_config"]), run.path))
    return [run_row(run, MODEL_NAMES.get(run.info["model"], run.info["model"])) for run in mine]


def _number(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.2f}"


def render_table(title: str, tasks: Sequence[str], rows: Sequence[Row]) -> str:
    header = ["row", "source", "split", *(f"{task} {m}" for task in tasks for m in ("F1", "Rc")), "run"]
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |",
             "|---|---|---|" + "---:|" * (2 * len(tasks)) + "---|"]
    for row in rows:
        values = []
        for task in tasks:
            f1, recall = row.scores.get(task, (None, None))
            values += [_number(f1), _number(recall)]
        label = f"**{row.label}**" if row.source == "paper" else row.label
        lines.append("| " + " | ".join([label, row.source, row.split, *values, row.run_dir]) + " |")
    return "\n".join(lines)


def build_report(runs: Sequence[Run], *, extra_rows: Sequence[Row] = (),
                 extra_sections: Sequence[str] = ()) -> str:
    """The whole markdown report. Extension point: ``extra_rows`` go under Table 4's MTC rows,
    ``extra_sections`` (markdown, e.g. leakage figures) are appended after the tables."""
    parts = ["# Results beside the paper",
             "F1 and Rc: macro averages over classes (%) on each run's test split. "
             "`paper` rows are the paper's published numbers; "
             "`split` names the dataset config that produced each of our rows."]
    parts.append(render_table(TABLES["table4"], TABLE4_TASKS, table4_rows(runs, extra_rows)))
    for table in ("table6", "table7", "table8", "table9"):
        cells = [row for row in PAPER_ROWS.values() if row.table == table]
        if any(paper_key(run) in {cell.key for cell in cells} for run in runs):
            tasks = tuple(dict.fromkeys(task for cell in cells for task in cell.scores))
            parts.append(render_table(TABLES[table], tasks, sweep_rows(table, runs)))
    for dataset, title in OTHER_DATASET_TABLES.items():
        rows = dataset_rows(dataset, runs)
        if rows:
            parts.append(render_table(title, tuple(TASKS[dataset]), rows))
    parts += list(extra_sections)
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- leakage
LEAKAGE_FIGURES = {  # figure (mtc_keras.leakage) -> column title
    "test_packets_with_flow_in_train": "test packets whose flow is in train (%)",
    "test_vectors_in_train": "test vectors found byte-for-byte in train (%)",
}


@dataclasses.dataclass(frozen=True)
class Leakage:
    """The leakage figures (shares in [0, 1]) of one built config of a packet dataset."""

    data_dir: str
    config: str
    test_packets: int
    figures: Mapping[str, float | None]
    source: str  # "build report" or "computed"
    dataset: str = "iscx"


def packet_leakage(data_dir: str, dataset: str = "iscx") -> list[Leakage]:
    """Leakage of every config of a packet dataset built in ``data_dir``: from the build report
    stored in the dataset's metadata where it has the figures, else computed from the splits."""
    from mtc_keras.leakage import leakage_from_tfds

    found = []
    for config in registry.DATASETS[dataset].configs:
        try:
            builder = registry.load(dataset, config, data_dir)
        except registry.NotBuiltError:
            continue
        figures = (builder.info.metadata or {}).get("build_report", {}).get("leakage", {})
        source = "build report"
        if not set(LEAKAGE_FIGURES) <= set(figures):
            figures, source = leakage_from_tfds(data_dir, config, dataset=dataset), "computed"
        found.append(Leakage(data_dir=data_dir, config=config, figures=figures, source=source,
                             test_packets=builder.info.splits["test"].num_examples, dataset=dataset))
    return found


def iscx_leakage(data_dir: str) -> list[Leakage]:
    """``packet_leakage`` of ISCX VPN-nonVPN."""
    return packet_leakage(data_dir, "iscx")


def leakage_data_dirs(runs: Sequence[Run]) -> list[str]:
    """The data_dirs that runs of packet datasets recorded (e.g. the probes' run info) and that exist."""
    dirs = [run.info.get("data_dir") for run in runs if run.info["dataset"] in registry.PACKET_DATASETS]
    return list(dict.fromkeys(d for d in dirs if isinstance(d, str) and os.path.isdir(d)))


def leakage_section(leakages: Sequence[Leakage]) -> str:
    """Markdown: per packet dataset, one row per built config, with both leakage figures in %."""
    sections = []
    for dataset in dict.fromkeys(leak.dataset for leak in leakages):
        lines = [f"## Leakage ({registry.DATASETS[dataset].title})", "",
                 "How much of each test split the train split already holds. `paper` splits per packet, "
                 "so the other packets of a test packet's flow are mostly in train; `flow_split` puts "
                 "whole flows in one split and each distinct vector in one split, so both figures are "
                 "0 there.", "",
                 "| split | " + " | ".join(LEAKAGE_FIGURES.values()) + " | test packets | source | data_dir |",
                 "|---|" + "---:|" * (len(LEAKAGE_FIGURES) + 1) + "---|---|"]
        for leak in (leak for leak in leakages if leak.dataset == dataset):
            values = [_number(None if leak.figures[key] is None else 100 * leak.figures[key])
                      for key in LEAKAGE_FIGURES]
            lines.append(f"| {leak.config} | " + " | ".join(values)
                         + f" | {leak.test_packets} | {leak.source} | {leak.data_dir} |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def main(argv: Sequence[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("give at least one RUN_DIR (a folder holding metrics.json)")
    try:
        runs = load_runs(argv[1:])
    except (OSError, ValueError) as error:
        raise app.UsageError(str(error)) from error
    leakages, given = [], flags.FLAGS.data_dir
    for data_dir in given or leakage_data_dirs(runs):
        try:
            found = [leak for dataset in registry.PACKET_DATASETS
                     for leak in packet_leakage(data_dir, dataset)]
        except ValueError as error:  # e.g. a data_dir built by another version of the builder
            raise app.UsageError(str(error)) from error
        if not found and given:
            names = ", ".join(registry.DATASETS[d].tfds_name for d in registry.PACKET_DATASETS)
            raise app.UsageError(f"--data_dir={data_dir} holds no built config of {names}")
        leakages += found
    markdown = build_report(runs, extra_sections=[leakage_section(leakages)] if leakages else [])
    print(markdown, end="")
    if flags.FLAGS.output:
        with open(flags.FLAGS.output, "w", encoding="utf-8") as f:
            f.write(markdown)


def define_flags() -> None:
    """The command's flags, defined when it runs, not at import: the experiment scripts define a
    --data_dir of their own, and the tests import them beside this module."""
    flags.DEFINE_string("output", None, "Also write the markdown report to this file.")
    flags.DEFINE_list("data_dir", None, "TFDS data_dirs whose built packet-dataset configs get "
                      "leakage figures (default: the data_dir recorded in the runs, where it exists).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
