"""Test-split evaluation: per-task macro metrics, per-class tables, confusion matrices, plots.

Pure numpy + scikit-learn + matplotlib (Agg canvas, no pyplot): no TensorFlow, no Keras, so
reports can be made from saved predictions on any machine.

Labels equal to ``labels.MISSING`` (-1) are left out of a task's metrics and counted in
``missing``. Macro averages (the paper's "average F1 / recall", §4.2) are taken over the
classes that occur in the evaluated labels (support > 0); classes absent from them are still
listed in ``per_class`` (support 0) and in the confusion matrix, but do not pull the macro
averages towards zero.

``metrics.json`` layout (written by ``write_reports``; every writer of run metrics, e.g. the
shortcut probes, uses the same layout so that ``experiments.report`` can gather it)::

    {
      "run": {                          # from run_info; these three keys are required
        "model": "mtc",                 # mtc | transformer | cnn | mtc_2task | probe_* ...
        "dataset": "iscx",              # a key of mtc_keras.labels.TASKS
        "dataset_config": "paper",      # the split: paper | flow_split | clean
        "config_name": "iscx_mtc",      # optional: the flagfile's name (report.py matches it
                                        # to the paper's table cells; default: the run dir's name)
        "epochs": 100, ...              # anything else JSON-serialisable
      },
      "<task>": {                       # one entry per evaluated task, in TASKS order
        "macro_f1": 0.98,               # fractions in [0, 1]; null when support == 0
        "macro_recall": 0.98,
        "macro_precision": 0.98,
        "accuracy": 0.98,
        "support": 1234,                # labelled examples evaluated
        "missing": 5,                   # examples left out because their label is MISSING
        "class_names": ["AIM Chat", ...],
        "per_class": {"AIM Chat": {"precision": .., "recall": .., "f1": .., "support": ..}, ...},
        "confusion_matrix": [[...], ...], # rows: true class, columns: predicted class
        "per_flow": {                   # the same test rows judged per flow (mtc_keras.flows);
          "first_5": {"macro_f1": .., "macro_recall": .., "macro_precision": .., "accuracy": ..,
                      "support": flows, "missing": flows},   # from each flow's first 5 packets
          "all": {...}                  # from all its packets; null for datasets without flows
        },
        "shortcut_reliance": {          # only with a perturbed evaluation (mtc_keras.perturb)
          "ttl": {"macro_f1": .., "accuracy": .., "drop": macro_f1 - this macro_f1}, ...
        }
      }
    }

Every top-level key other than ``"run"`` is a task name of ``TASKS[run["dataset"]]``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from mtc_keras import flows, perturb
from mtc_keras.labels import MISSING, TASKS

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
REQUIRED_RUN_KEYS = ("model", "dataset", "dataset_config")
SUMMARY_KEYS = ("macro_f1", "macro_recall", "macro_precision", "accuracy")


def task_metrics(y_true, y_prob_or_pred, class_names: Sequence[str]) -> dict:
    """Metrics of one task. ``y_prob_or_pred`` is [n, n_classes] probabilities or [n] class ids.

    Rows whose label is MISSING are left out. Raises ValueError on mismatched lengths, a
    probability matrix of the wrong width, or a label / prediction outside the class range.
    """
    class_names = [str(name) for name in class_names]
    n_classes = len(class_names)
    y_true = np.asarray(y_true)
    scores = np.asarray(y_prob_or_pred)
    if y_true.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y_true.shape}")
    if scores.ndim == 2:
        if scores.shape[1] != n_classes:
            raise ValueError(f"probabilities have {scores.shape[1]} columns for {n_classes} classes")
        y_pred = scores.argmax(axis=1)
    elif scores.ndim == 1:
        y_pred = scores.astype(np.int64)
    else:
        raise ValueError(f"predictions must be [n] ids or [n, classes] probabilities, got {scores.shape}")
    if len(y_pred) != len(y_true):
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    y_true = y_true.astype(np.int64)
    bad = (y_true < MISSING) | (y_true >= n_classes)
    if bad.any():
        raise ValueError(f"label {y_true[bad][0]} outside [0, {n_classes}) and not MISSING ({MISSING})")
    if ((y_pred < 0) | (y_pred >= n_classes)).any():
        raise ValueError(f"prediction outside [0, {n_classes})")

    kept = y_true != MISSING
    y_true, y_pred = y_true[kept], y_pred[kept]
    class_ids = list(range(n_classes))
    if len(y_true):
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=class_ids, zero_division=0)
        confusion = confusion_matrix(y_true, y_pred, labels=class_ids).tolist()
    else:  # every label of this task is MISSING: nothing to score (sklearn rejects empty input)
        precision = recall = f1 = np.zeros(n_classes)
        support = np.zeros(n_classes, dtype=np.int64)
        confusion = [[0] * n_classes for _ in class_ids]
    present = support > 0

    def macro(values):
        return float(values[present].mean()) if present.any() else None

    return {
        "macro_f1": macro(f1),
        "macro_recall": macro(recall),
        "macro_precision": macro(precision),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else None,
        "support": int(len(y_true)),
        "missing": int((~kept).sum()),
        "class_names": class_names,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": confusion,
    }


def evaluate_predictions(labels: Mapping[str, np.ndarray], probabilities: Mapping[str, np.ndarray],
                         dataset: str) -> dict:
    """``task_metrics`` for every task of ``dataset`` that has probabilities, in TASKS order.

    A task the model does not predict (mtc_2task has no ``aux``) is simply absent. Raises
    ValueError for an unknown dataset, a task that is not one of its tasks, or missing labels.
    """
    if dataset not in TASKS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(TASKS)}")
    tasks = TASKS[dataset]
    unknown = set(probabilities) - set(tasks)
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not tasks of {dataset} ({list(tasks)})")
    unlabelled = set(probabilities) - set(labels)
    if unlabelled:
        raise ValueError(f"no labels for tasks {sorted(unlabelled)}")
    return {task: task_metrics(labels[task], probabilities[task], names)
            for task, names in tasks.items() if task in probabilities}


def summary(result: Mapping) -> dict:
    """The macro figures of a ``task_metrics`` result, with its support and missing counts."""
    return {key: result[key] for key in SUMMARY_KEYS + ("support", "missing")}


def flow_metrics(labels: Mapping[str, np.ndarray], probabilities: Mapping[str, np.ndarray],
                 flow_ids, dataset: str, *, order=None,
                 aggregate: str = flows.DEFAULT_AGGREGATE) -> dict:
    """Per task, the figures of the test rows judged per flow, by the rule ``mtc-classify``
    uses (``mtc_keras.flows.flow_verdicts``): {task: {"first_5": summary, "all": summary}}
    (``flows.FLOW_VERDICTS``), each flow's label the most common label of its rows.

    ``order``: each row's position in its capture, which decides a flow's first packets; without
    it the first-N verdicts are left out (None): the stored order of a TFDS split is not the
    capture order.
    """
    tasks = TASKS[dataset]
    out = {task: {} for task in probabilities}
    for first in flows.FLOW_VERDICTS:
        name = flows.verdict_name(first)
        if first and order is None:
            for task in out:
                out[task][name] = None
            continue
        verdicts = flows.flow_verdicts(flow_ids, probabilities, first=first, order=order,
                                       labels={t: labels[t] for t in probabilities},
                                       aggregate=aggregate)
        for task in out:
            out[task][name] = summary(task_metrics(verdicts.labels[task], verdicts.guess[task],
                                                   tasks[task]))
    return out


def evaluate(labels: Mapping[str, np.ndarray], probabilities: Mapping[str, np.ndarray],
             dataset: str, *, flow_ids=None, order=None) -> dict:
    """``evaluate_predictions`` with every task's ``per_flow`` figures (``flow_metrics``; None
    where the rows have no flows, as CICIDS2017's, whose rows are flow records already)."""
    metrics = evaluate_predictions(labels, probabilities, dataset)
    per_flow = (flow_metrics(labels, probabilities, flow_ids, dataset, order=order)
                if flow_ids is not None else {})
    for task, result in metrics.items():
        result["per_flow"] = per_flow.get(task)
    return metrics


def evaluate_changed_tests(metrics: dict, labels: Mapping[str, np.ndarray], read, packets,
                           pools: Mapping, dataset: str, *, flow_ids=None, order=None,
                           seed: int = 0, one_field: bool = False) -> None:
    """Adds to ``metrics`` (``evaluate``'s) every task's ``forged`` figures (the test
    ``packets`` forged, ``perturb.FORGED_TESTS``, per packet and per flow) and with
    ``one_field`` its ``shortcut_reliance`` (one header field at a time redrawn). ``read``:
    changed packets -> {task: probabilities}, as the model or probe reads them; ``pools``: the
    training split's ``perturb.field_pools``."""
    for name, changed in perturb.forged_sets(packets, pools, flow_ids=flow_ids, order=order,
                                             seed=seed):
        forged = evaluate(labels, read(changed), dataset, flow_ids=flow_ids, order=order)
        for task, figures in forged.items():
            metrics[task].setdefault("forged", {})[name] = perturb.forged_figures(figures)
    if one_field:
        perturbed = {name: evaluate_predictions(labels, read(changed), dataset)
                     for name, changed in perturb.perturbed_sets(packets, pools, seed=seed)}
        for task, figures in perturb.reliance(metrics, perturbed).items():
            metrics[task]["shortcut_reliance"] = figures


# ----------------------------------------------------------------------------- files
def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def write_confusion_csv(path: str, task_result: Mapping) -> None:
    """Counts with class names: first row the predicted classes, first column the true ones."""
    names = task_result["class_names"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, task_result["confusion_matrix"]):
            writer.writerow([name, *row])


def _figure(width: float, height: float):
    # A Figure on an Agg canvas, never pyplot: no global backend switch, no GUI, thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(path: str, task_result: Mapping, title: str) -> None:
    """Confusion matrix PNG: colour = share of the true class (row), text = counts."""
    names = task_result["class_names"]
    counts = np.asarray(task_result["confusion_matrix"], dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = 2.5 + 0.45 * len(names)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in ticks:
        for j in ticks:
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if shares[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path)


def plot_per_class(path: str, results: Mapping[str, Mapping], title: str) -> None:
    """Per-class F1 and recall (%) as lines, like the paper's Fig. 7.

    ``results`` maps a series name (a model, a run) to that run's ``task_metrics`` of one task;
    all series must share the class names. Classes with no test labels are left as gaps.
    """
    series = list(results.items())
    names = series[0][1]["class_names"]
    fig = _figure(3.0 + 0.45 * len(names), 7.0)
    for position, metric in enumerate(("f1", "recall"), start=1):
        ax = fig.add_subplot(2, 1, position)
        for label, result in series:
            if result["class_names"] != names:
                raise ValueError(f"{label!r} has other classes than {series[0][0]!r}")
            # A class absent from the test labels has no recall: leave a gap, not a 0.
            values = [100 * row[metric] if row["support"] else np.nan
                      for row in (result["per_class"][name] for name in names)]
            ax.plot(range(len(names)), values, marker="o", label=label)
        ax.set_ylabel(f"{'F1 score' if metric == 'f1' else 'recall'} (%)")
        ax.set_ylim(-2, 102)
        ax.grid(True, alpha=0.3)
        ax.set_xticks(range(len(names)), names if position == 2 else [], rotation=60,
                      ha="right", fontsize=8)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)


def _report_markdown(metrics: Mapping[str, Mapping], run_info: Mapping) -> str:
    lines = [f"# {run_info['model']} on {run_info['dataset']} ({run_info['dataset_config']} split)", "",
             "| run | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in run_info.items()]
    lines += ["", "## Test-split metrics (macro averages, %)", "",
              "| task | F1 | recall | precision | accuracy | support | missing labels left out |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for task, result in metrics.items():
        lines.append(f"| {task} | " + " | ".join(_percent(result[key]) for key in SUMMARY_KEYS)
                     + f" | {result['support']} | {result['missing']} |")
    lines += _flow_section(metrics) + _forged_section(metrics) + _shortcut_section(metrics)
    for task, result in metrics.items():
        lines += ["", f"## {task}: per class", "",
                  "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        for name, row in result["per_class"].items():
            lines.append(f"| {name} | {_percent(row['precision'])} | {_percent(row['recall'])} "
                         f"| {_percent(row['f1'])} | {row['support']} |")
        lines += ["", f"![{task} per-class F1 and recall](per_class_{task}.png)", "",
                  f"![{task} confusion matrix](confusion_{task}.png) "
                  f"([counts as CSV](confusion_{task}.csv))"]
    return "\n".join(lines) + "\n"


def _flow_section(metrics: Mapping[str, Mapping]) -> list[str]:
    per_flow = {task: result.get("per_flow") for task, result in metrics.items()}
    if not any(per_flow.values()):
        return ["", "## Per flow", "",
                "No flows: the rows of this dataset are flow records already (CICIDS2017), or "
                "the run kept no flow ids."]
    names = [flows.verdict_name(first) for first in flows.FLOW_VERDICTS]
    titles = [f"first {first} packets" if first else "all packets" for first in flows.FLOW_VERDICTS]
    lines = ["", "## Per packet and per flow (macro-F1 %, accuracy %)", "",
             "Each test flow judged by mtc-classify's rule (mean probability of its packets) from "
             "its first packets and from all of them; its label is that of its packets.", "",
             "| task | per packet | " + " | ".join(f"per flow, {t}" for t in titles) + " | flows |",
             "|---|---:|" + "---:|" * len(titles) + "---:|"]
    for task, result in metrics.items():
        cells = [f"{_percent(result['macro_f1'])} / {_percent(result['accuracy'])}"]
        support = "–"
        for name in names:
            figures = (per_flow[task] or {}).get(name)
            cells.append("–" if figures is None else
                         f"{_percent(figures['macro_f1'])} / {_percent(figures['accuracy'])}")
            if figures is not None:
                support = figures["support"]
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {support} |")
    return lines


def _changed_section(metrics: Mapping[str, Mapping], key: str, title: str, intro: str,
                     clean_title: str, clean_cell, cell, column_title=str) -> list[str]:
    """A report section on the test split changed one way per column: ``metrics[task][key]``
    is {column: figures}; ``clean_cell(result)`` and ``cell(figures)`` write the cells."""
    changed = {task: result.get(key) for task, result in metrics.items()}
    if not any(changed.values()):
        return []
    columns = list(next(c for c in changed.values() if c))
    lines = ["", title, "", intro, "",
             f"| task | {clean_title} | " + " | ".join(column_title(c) for c in columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for task, result in metrics.items():
        cells = [clean_cell(result)]
        for column in columns:
            figures = (changed[task] or {}).get(column)
            cells.append("–" if figures is None else cell(figures))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def _forged_section(metrics: Mapping[str, Mapping]) -> list[str]:
    verdict = flows.verdict_name(flows.EARLY_PACKETS)

    def clean(result):
        first = (result.get("per_flow") or {}).get(verdict)
        return f"{_percent(result['macro_f1'])} / {_percent(first and first['macro_f1'])}"

    return _changed_section(
        metrics, "forged", "## As captured and forged (macro-F1 %: per packet / per flow, first "
        f"{flows.EARLY_PACKETS} packets)",
        "Forged: the test split as another network would show the same flows "
        "(mtc_keras.perturb.forge): per flow and direction the IP identification, TTL, TCP "
        "sequence and acknowledgement numbers, window, IPv6 flow label and the client's port "
        "redrawn; forged, ports too: the server's port as well.", "as captured", clean,
        lambda f: f"{_percent(f['macro_f1'])} / {_percent(f['per_flow'].get(verdict))}",
        lambda test: perturb.FORGED_TITLES.get(test, test))


def _shortcut_section(metrics: Mapping[str, Mapping]) -> list[str]:
    return _changed_section(
        metrics, "shortcut_reliance", "## Shortcut reliance (macro-F1 %, drop in points)",
        "Test packets with one header field replaced by values drawn from the training "
        "split's distribution of that field (mtc_keras.perturb).", "as stored",
        lambda result: _percent(result["macro_f1"]),
        lambda f: f"{_percent(f['macro_f1'])} ({-100 * f['drop']:+.1f})")


def write_reports(output_dir: str, metrics: Mapping[str, Mapping], *, run_info: Mapping) -> dict:
    """Write metrics.json, report.md and per task confusion_<task>.png/.csv, per_class_<task>.png.

    ``metrics`` is ``evaluate_predictions``'s result; ``run_info`` needs ``model``, ``dataset``
    (a TASKS key) and ``dataset_config``. Returns {file name: path} of everything written.
    """
    missing = [key for key in REQUIRED_RUN_KEYS if key not in run_info]
    if missing:
        raise ValueError(f"run_info lacks {missing}")
    dataset = run_info["dataset"]
    if dataset not in TASKS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(TASKS)}")
    unknown = set(metrics) - set(TASKS[dataset])
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not tasks of {dataset}")
    os.makedirs(output_dir, exist_ok=True)
    written = {}

    def path(name):
        written[name] = os.path.join(output_dir, name)
        return written[name]

    document = {"run": dict(run_info), **{task: dict(result) for task, result in metrics.items()}}
    with open(path(METRICS_FILE), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, allow_nan=False)
        f.write("\n")
    title = f"{run_info['model']} · {dataset} ({run_info['dataset_config']})"
    for task, result in metrics.items():
        write_confusion_csv(path(f"confusion_{task}.csv"), result)
        plot_confusion(path(f"confusion_{task}.png"), result, f"{task}: {title}")
        plot_per_class(path(f"per_class_{task}.png"), {run_info["model"]: result}, f"{task}: {title}")
    with open(path(REPORT_FILE), "w", encoding="utf-8") as f:
        f.write(_report_markdown(metrics, run_info))
    return written


def read_metrics(path: str) -> dict:
    """Load a run's metrics.json (``path`` is the file or its run directory) and check its layout."""
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such metrics file (is this a finished run's directory?)")
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    run = document.get("run")
    if not isinstance(run, dict) or any(key not in run for key in REQUIRED_RUN_KEYS):
        raise ValueError(f"{path}: needs a 'run' object with {list(REQUIRED_RUN_KEYS)}")
    for task, result in document.items():
        if task != "run" and not (isinstance(result, dict) and "macro_f1" in result
                                  and "macro_recall" in result):
            raise ValueError(f"{path}: task {task!r} lacks macro_f1 / macro_recall")
    return document
