"""Training helpers shared by every experiment: compiling a model (and, later, input functions).

Imports no TensorFlow at module level: compiling and fitting from numpy arrays needs only Keras
and JAX.
"""

from __future__ import annotations

import keras

from mtc_keras.layers import MaskedSparseCategoricalAccuracy, MaskedSparseCategoricalCrossentropy


def compile_model(model: keras.Model, *, learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                  loss_weights: dict[str, float] | None = None,
                  jit_compile: bool = True) -> keras.Model:
    """Compile with a masked cross-entropy and masked accuracy per task, and AdamW (§4.1.3).

    Losses, ``loss_weights`` and metrics are dicts keyed by the model's output (task) names.
    ``loss_weights`` defaults to the weights ``build_model`` stored on the model
    (``model.mtc_loss_weights``); a model without them (e.g. loaded from a .keras file) needs
    them passed. Returns the model.
    """
    tasks = list(model.output_names)
    if loss_weights is None:
        loss_weights = getattr(model, "mtc_loss_weights", None)
        if loss_weights is None:
            raise ValueError(f"model {model.name!r} carries no loss weights: pass loss_weights "
                             f"for the tasks {tasks}")
    if set(loss_weights) != set(tasks):
        raise ValueError(f"loss_weights keys {sorted(loss_weights)} differ from the model's "
                         f"outputs {sorted(tasks)}")
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
        loss={task: MaskedSparseCategoricalCrossentropy() for task in tasks},
        loss_weights={task: float(loss_weights[task]) for task in tasks},
        metrics={task: [MaskedSparseCategoricalAccuracy(name="accuracy")] for task in tasks},
        jit_compile=jit_compile,
    )
    return model
