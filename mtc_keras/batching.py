"""Fixed-shape batches: on JAX and XLA every new batch shape is a new compilation.

No TensorFlow, no Keras: ``mtc-classify`` (an export's TensorFlow serve function), the Keras
models (``mtc_keras.models.predict_arrays``) and the benchmarks share it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np


def padded_predict(call: Callable[[np.ndarray], Mapping[str, np.ndarray]], x: np.ndarray,
                   batch_size: int) -> dict[str, np.ndarray]:
    """{task: [n, ...]} from ``call`` ({task: array} of one batch) over ``x`` in batches of
    exactly ``batch_size`` rows, the last one padded with zeros and its padding stripped: the
    one padded predict of the package."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    outputs: dict[str, list] = {}
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - real,) + chunk.shape[1:],
                                                    chunk.dtype)])
        for task, value in call(chunk).items():
            outputs.setdefault(task, []).append(np.asarray(value)[:real])
    return {task: np.concatenate(parts) for task, parts in outputs.items()}
