"""Turn one capture into packet vectors: ``python -m mtc_keras.preprocess CAPTURE --output OUT.npz``.

Writes ``packets`` (uint8 N x 1500), ``flow_ids`` (str, N) and one scalar per count: ``read``,
``kept``, ``dropped_<reason>`` for every reason in ``mtc_keras.packets.DROP_REASONS`` (they add
up to ``read``), and ``snapped`` / ``truncated`` / ``corrupt``; prints the same counts. A file that
is not a capture gets a one-line error and exit status 1; a truncated capture a warning, and
what was read before the damage is written.
"""

from __future__ import annotations

import logging
import os
import sys

import numpy as np
from absl import app, flags

from mtc_keras import packets

_FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags, defined when it runs (never at import)."""
    flags.DEFINE_string("output", None, "where to write the .npz (packets, flow_ids, counts)")


def preprocess(capture: str, output: str) -> dict:
    """Process ``capture`` and write ``output``; returns the counts."""
    batch = packets.process_capture(capture)
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    # flow_ids as a fixed-width str array: loads without allow_pickle.
    flow_ids = batch.flow_ids.astype(str) if len(batch) else np.zeros(0, "U1")
    np.savez(output, packets=batch.packets, flow_ids=flow_ids,
             **{key: np.int64(value) for key, value in batch.counts.items()})
    return batch.counts


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise app.UsageError("usage: python -m mtc_keras.preprocess CAPTURE --output OUT.npz")
    capture = argv[1]
    logging.getLogger("mtc_keras").setLevel(logging.WARNING)
    try:
        counts = preprocess(capture, _FLAGS.output)
    except (packets.CaptureFormatError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{capture}: {counts['kept']} of {counts['read']} packets kept -> {_FLAGS.output}")
    for key, value in counts.items():
        print(f"{key}={value}")
    return 0


def run() -> None:
    """Console entry point ``mtc-preprocess``."""
    define_flags()
    flags.mark_flag_as_required("output")
    app.run(main)


if __name__ == "__main__":
    run()
