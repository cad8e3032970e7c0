"""Gather finished runs into the layout of the paper's Table 4 (and Tables 6-9), beside its numbers.

    python -m experiments.report RUN_DIR... [--output=FILE.md]

Each RUN_DIR holds a ``metrics.json`` (layout: ``mtc_keras.evaluation``). A run goes to the
paper cell named by its ``run.config_name`` (or, failing that, its directory's name, which is
the flagfile's name for runs made with ``experiments/configs``); any other run of a known model
goes to that model's Table 4 row. Runs of other models (e.g. shortcut probes) become extra rows
under the MTC rows of Table 4. Every row of ours names its dataset config (split) and run dir.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence

from absl import app, flags

from experiments.paper_results import MODEL_NAMES, PAPER_ROWS, TABLES, PaperRow
from mtc_keras.evaluation import read_metrics
from mtc_keras.labels import TASKS

_OUTPUT = flags.DEFINE_string("output", None, "Also write the markdown report to this file.")

TABLE4_TASKS = tuple(task for tasks in TASKS.values() for task in tasks)  # iscx, then cicids2017
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
    """Tables 6-9: every cell's paper row, each followed by the runs of that cell."""
    rows = []
    for cell in (row for row in PAPER_ROWS.values() if row.table == table):
        rows.append(paper_row(cell.label, [cell]))
        rows += [run_row(run, cell.label) for run in runs if paper_key(run) == cell.key]
    return rows


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
    parts += list(extra_sections)
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("give at least one RUN_DIR (a folder holding metrics.json)")
    try:
        runs = load_runs(argv[1:])
    except (OSError, ValueError) as error:
        raise app.UsageError(str(error)) from error
    markdown = build_report(runs)
    print(markdown, end="")
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w", encoding="utf-8") as f:
            f.write(markdown)


if __name__ == "__main__":
    app.run(main)
