"""The demo (`make demo`): synthetic ISCX-shaped captures -> TFDS -> MTC -> report, export, classify.

    python -m experiments.demo

1. writes the demo captures (mtc_keras.demo_data: synthetic, but each packet carries its
   application's real protocol framing, and ciphertext is uniform random bytes) to
   runs/demo_data/captures;
2. builds the TFDS dataset iscx_vpn_nonvpn/flow_split from them in runs/demo_data/tfds;
3. trains MTC with experiments/configs/demo.cfg (python -m experiments.iscx), which evaluates
   it on the test split, writes the report and exports it to runs/demo/export;
4. classifies one demo capture with the export (python -m mtc_keras.classify);
and prints where the report is. Steps 1-2 are skipped when the dataset is already built.
Paths are relative to the current directory, like the ones in demo.cfg.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags, logging

from mtc_keras import demo_data, labels

_PACKETS_PER_FILE = flags.DEFINE_integer(
    "packets_per_file", demo_data.DEFAULT_PACKETS_PER_FILE, "Frames per demo capture "
    "(mtc_keras.demo_data; about 60% are kept as packets).", lower_bound=1)
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


def build_dataset(data_root: str, packets_per_file: int = demo_data.DEFAULT_PACKETS_PER_FILE,
                  step=print):
    """Steps 1-2: writes the demo captures and builds iscx_vpn_nonvpn/flow_split from them
    under ``data_root``, announcing each step with ``step``. Returns the builder."""
    from mtc_keras import registry
    from tfds_builders.iscx_vpn_nonvpn import format_report

    captures, data_dir = data_dirs(data_root)
    step(f"1. Writing demo captures to {captures}")
    files = demo_data.write_demo_captures(captures, packets_per_file=packets_per_file)
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
        build_dataset(_DATA_ROOT.value, _PACKETS_PER_FILE.value, step=_step)

    _step("3. Training MTC, evaluating it on the test split and exporting it")
    _run([sys.executable, "-m", "experiments.iscx", f"--flagfile={_CONFIG.value}"])

    _step("4. Classifying a demo capture with the exported model")
    capture = _find(captures, _CAPTURE.value)
    predictions = os.path.join(output_dir, "classify", "predictions.csv")
    _run([sys.executable, "-m", "mtc_keras.classify", f"--model={os.path.join(output_dir, 'export')}",
          f"--pcap={capture}", f"--output={predictions}"])

    with open(os.path.join(output_dir, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    tasks = labels.TASKS["iscx"]
    scores = ", ".join(f"{task} {metrics[task]['macro_f1']:.3f}" for task in tasks
                       if task in metrics and metrics[task]["macro_f1"] is not None)
    _step(f"Done in {time.time() - started:.0f} s")
    print(f"Test-split macro-F1: {scores} (app chance level: {1 / len(tasks['app']):.3f})")
    print(f"Per-packet and per-flow predictions: {predictions}, "
          f"{os.path.splitext(predictions)[0]}_flows.csv")
    print(f"Report: {os.path.join(output_dir, 'report.md')}")


def _find(directory: str, name: str) -> str:
    for root, _, files in os.walk(directory):
        if name in files:
            return os.path.join(root, name)
    raise FileNotFoundError(f"no {name} under {directory}")


if __name__ == "__main__":
    app.run(main)
