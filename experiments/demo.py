"""The demo (`make demo`): synthetic ISCX-shaped captures -> TFDS -> MTC -> report, export, classify.

    python -m experiments.demo

1. writes the demo captures (mtc_keras.synthetic: synthetic, but each packet carries its
   application's real protocol framing, and ciphertext is uniform random bytes) to
   runs/demo_data/captures: many short flows (--flows_per_capture), so that the test split
   holds over 300 flows and the per-flow figures rest on more than a few flows per app;
2. builds the TFDS dataset iscx_vpn_nonvpn/flow_split from them in runs/demo_data/tfds;
3. trains MTC with experiments/configs/demo.cfg (python -m experiments.iscx), which evaluates
   it on the test split, writes the report and exports it to runs/demo/export;
4. runs the shortcut probes (python -m experiments.probe) on the same split;
5. appends MTC's row and the probes' rows under it to the report, and prints them;
6. classifies one demo capture with the export (python -m mtc_keras.classify);
and prints the figures and where the report is. Steps 1-2 are skipped when the dataset is already built.
Paths are relative to the current directory, like the ones in demo.cfg.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags, logging

from mtc_keras import labels, synthetic

_PACKETS_PER_FILE = flags.DEFINE_integer(
    "packets_per_file", synthetic.DEFAULT_PACKETS_PER_FILE, "Frames per demo capture "
    "(mtc_keras.synthetic; about 40% are kept as packets).", lower_bound=1)
_FLOWS_PER_CAPTURE = flags.DEFINE_integer(
    "flows_per_capture", synthetic.DEFAULT_FLOWS_PER_CAPTURE, "Sessions sharing a demo capture's "
    "frames (mtc_keras.synthetic): more, shorter flows in the same frames.", lower_bound=1)
_DATA_ROOT = flags.DEFINE_string("data_root", os.path.join("runs", "demo_data"),
                                 "Where the demo captures and the TFDS dataset go.")
_CONFIG = flags.DEFINE_string(
    "config", os.path.join(os.path.dirname(__file__), "configs", "demo.cfg"),
    "The training flagfile.")
_CAPTURE = flags.DEFINE_string("capture", "vpn_skype_chat1a.pcap",
                               "The demo capture to classify at the end.")

DATASET_CONFIG = "flow_split"


def data_dirs(data_root: str) -> tuple[str, str]:
    """(demo captures, TFDS data_dir) under the demo's data root."""
    return os.path.join(data_root, "captures"), os.path.join(data_root, "tfds")


def build_dataset(data_root: str, packets_per_file: int = synthetic.DEFAULT_PACKETS_PER_FILE,
                  flows_per_capture: int = synthetic.DEFAULT_FLOWS_PER_CAPTURE, step=print):
    """Steps 1-2: writes the demo captures and builds iscx_vpn_nonvpn/flow_split from them
    under ``data_root``, announcing each step with ``step``. Returns the builder."""
    from mtc_keras import registry
    from tfds_builders.iscx_vpn_nonvpn import format_report

    captures, data_dir = data_dirs(data_root)
    step(f"1. Writing demo captures to {captures}")
    files = synthetic.write_demo_captures(captures, packets_per_file=packets_per_file,
                                          flows_per_capture=flows_per_capture)
    print(f"{len(files)} captures, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB")
    step(f"2. Building the TFDS dataset iscx_vpn_nonvpn/{DATASET_CONFIG} in {data_dir}")
    built = registry.prepare("iscx", DATASET_CONFIG, data_dir, manual_dir=captures)
    print(format_report(built.info.metadata["build_report"]))
    return built


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def _run(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _flagfile_value(path: str, name: str) -> str:
    """The value of --name in a flagfile (the last one wins, as in absl)."""
    value = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(f"--{name}="):
                value = line.strip().split("=", 1)[1]
    if value is None:
        raise ValueError(f"{path} sets no --{name}")
    return value


def run_probes(data_dir: str, output_dir: str) -> dict[str, str]:
    """Step 4: the shortcut probes (experiments.probe) on the demo's split: {probe: run dir}."""
    from experiments import probe

    return probe.run_probes(data_dir, DATASET_CONFIG, os.path.join(output_dir, "probes"),
                            probe.DEFAULT_PROBES, threads=1, dataset="iscx")


def comparison_table(run_dirs: list[str]) -> str:
    """Markdown: one row per run (MTC first, then the probes): its identifier arm, macro-F1 per
    task per packet, app macro-F1 per flow (first 5 packets / all), and app macro-F1 on the
    forged test splits (per packet / per flow, first 5)."""
    from mtc_keras import perturb
    from mtc_keras.evaluation import read_metrics

    tasks = list(labels.TASKS["iscx"])
    tests = list(perturb.FORGED_TESTS)
    number = lambda value: "–" if value is None else f"{value:.3f}"  # noqa: E731
    lines = ["| model | identifiers | " + " | ".join(f"{task} macro-F1" for task in tasks)
             + " | app per flow, first 5 / all | "
             + " | ".join(f"app {perturb.FORGED_TITLES[t]} (per packet / per flow)" for t in tests) + " |",
             "|---|---|" + "---:|" * (len(tasks) + 1 + len(tests))]
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        cells = [number(metrics.get(t, {}).get("macro_f1")) for t in tasks]
        per_flow = metrics["app"].get("per_flow") or {}
        flow = " / ".join(number((per_flow.get(name) or {}).get("macro_f1"))
                          for name in ("first_5", "all"))
        forged = [" / ".join((number(f["macro_f1"]), number(f["per_flow"].get("first_5"))))
                  for t in tests for f in [metrics["app"]["forged"][t]]]
        lines.append(f"| {metrics['run']['model']} | {metrics['run'].get('identifiers', '–')} | "
                     + " | ".join(cells) + f" | {flow} | " + " | ".join(forged) + " |")
    return "\n".join(lines)


def append_comparison(output_dir: str, probe_dirs: dict[str, str]) -> str:
    """Step 5: MTC with the probe rows under it, appended to the run's report.md; returns it."""
    table = comparison_table([output_dir] + [probe_dirs[name] for name in sorted(probe_dirs)])
    section = ("\n## Beside the shortcut probes (same split, same test packets)\n\n"
               "A model's score is worth its margin over these: trees on every header field "
               "(probe_header_gbt), on ports and length only (probe_ports_length), logistic "
               "regression on the first 64 bytes (probe_logreg_bytes) and a random forest on the "
               "first 160 bytes (probe_bytes_rf); experiments.probe. Forged: the test split with "
               "the hosts' fields redrawn per flow, and the server's port too "
               "(mtc_keras.perturb.forge): the figure for another network.\n\n"
               + table + "\n")
    with open(os.path.join(output_dir, "report.md"), "a", encoding="utf-8") as f:
        f.write(section)
    return table


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    started = time.time()
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TFDS logs every file it writes
    from mtc_keras import inputs, registry

    inputs.configure_tensorflow()
    captures, data_dir = data_dirs(_DATA_ROOT.value)
    if _flagfile_value(_CONFIG.value, "data_dir") != data_dir:
        raise app.UsageError(f"{_CONFIG.value} must set --data_dir={data_dir}")
    output_dir = _flagfile_value(_CONFIG.value, "output_dir")

    if registry.builder("iscx", DATASET_CONFIG, data_dir).is_prepared():
        _step(f"Demo dataset already built in {data_dir} (delete {_DATA_ROOT.value} to rebuild)")
    else:
        build_dataset(_DATA_ROOT.value, _PACKETS_PER_FILE.value, _FLOWS_PER_CAPTURE.value, step=_step)

    _step("3. Training MTC, evaluating it on the test split and exporting it")
    _run([sys.executable, "-m", "experiments.iscx", f"--flagfile={_CONFIG.value}"])

    _step("4. The shortcut probes on the same split")
    probe_dirs = run_probes(data_dir, output_dir)

    _step("5. MTC beside the probes")
    table = append_comparison(output_dir, probe_dirs)
    print(table)

    _step("6. Classifying a demo capture with the exported model")
    capture = _find(captures, _CAPTURE.value)
    predictions = os.path.join(output_dir, "classify", "predictions.csv")
    _run([sys.executable, "-m", "mtc_keras.classify", f"--model={os.path.join(output_dir, 'export')}",
          f"--pcap={capture}", f"--output={predictions}"])

    from mtc_keras.evaluation import read_metrics

    from mtc_keras import perturb

    _step(f"Done in {time.time() - started:.0f} s")
    app = {name: read_metrics(path)["app"] for name, path in probe_dirs.items()}
    mtc_app = read_metrics(output_dir)["app"]
    for test in (None,) + tuple(perturb.FORGED_TESTS):  # as captured, then each forged test
        def figure(result):
            return result["macro_f1"] if test is None else result["forged"][test]["macro_f1"]

        best_name = max(app, key=lambda name: figure(app[name]))
        mtc, best = figure(mtc_app), figure(app[best_name])
        title = "as captured" if test is None else test
        print(f"Test-split app macro-F1, {title}: MTC {mtc:.3f}, strongest probe "
              f"(probe_{best_name}) {best:.3f}: margin {mtc - best:+.3f}")
    print(f"(app chance level: {1 / len(labels.TASKS['iscx']['app']):.3f})")
    print(f"Per-packet and per-flow predictions: {predictions}, "
          f"{os.path.splitext(predictions)[0]}_flows.csv")
    print(f"Report (MTC, then the probes): {os.path.join(output_dir, 'report.md')}")


def _find(directory: str, name: str) -> str:
    for root, _, files in os.walk(directory):
        if name in files:
            return os.path.join(root, name)
    raise FileNotFoundError(f"no {name} under {directory}")


if __name__ == "__main__":
    app.run(main)
