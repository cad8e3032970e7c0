"""Training helpers shared by every experiment: the optimizer and compiling a model.

Imports no TensorFlow at module level: compiling and fitting from numpy arrays needs only Keras
and JAX.

The recipe (each part chosen by the learning benchmark, ``benchmarks/learning.py``; the A/B
figures are in the closing note of the issue that made them):

* the heads give logits and the masked cross-entropy takes ``from_logits=True``: with
  probabilities, Keras clips them to [1e-7, 1 - 1e-7] before the log, so a sample whose true
  class the head gives less than 1e-7 sends no gradient back;
* ``optimizer="adam_l2"`` is the paper's optimizer, PyTorch's ``Adam(weight_decay=1e-4)``: the
  decay is an L2 term added to the gradient (through Adam's moments), not AdamW's decoupled
  ``lr * wd`` shrink (1e-7 a step at the paper's rates); ``"adamw"`` keeps the latter;
* a linear learning-rate warmup over ``warmup_steps`` optimizer steps, which composes with
  ``ReduceLROnPlateau`` (that callback scales the base rate; the warmup multiplies it).
"""

from __future__ import annotations

import keras

from mtc_keras.layers import MaskedSparseCategoricalAccuracy, MaskedSparseCategoricalCrossentropy

OPTIMIZERS = ("adam_l2", "adamw")
DEFAULT_OPTIMIZER = "adam_l2"
DEFAULT_WARMUP_STEPS = 50  # by measurement: see the module docstring


@keras.saving.register_keras_serializable(package="mtc_keras")
class WarmupAdam(keras.optimizers.Adam):
    """Adam with an optional L2 term, decoupled weight decay and linear learning-rate warmup.

    Args:
        learning_rate: the base rate (a float; ``ReduceLROnPlateau`` may lower it).
        l2: coupled weight decay, as PyTorch's ``Adam(weight_decay=l2)``: ``l2 * w`` is added
            to every gradient before the moment updates.
        weight_decay: decoupled weight decay (AdamW): ``w -= lr * weight_decay * w``.
        warmup_steps: the rate used at step t (counting from 0) is
            ``learning_rate * min(1, (t + 1) / warmup_steps)``; 0 turns warmup off.
        **kwargs: the other ``keras.optimizers.Adam`` arguments.

    The warmup counts the optimizer's own ``iterations``, so a resumed run (BackupAndRestore
    restores them) goes on where its warmup was.
    """

    def __init__(self, learning_rate=1e-3, l2: float = 0.0, warmup_steps: int = 0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if l2 < 0 or warmup_steps < 0:
            raise ValueError(f"l2 and warmup_steps must be >= 0, got {l2}, {warmup_steps}")
        self.l2 = float(l2)
        self.warmup_steps = int(warmup_steps)

    def _get_current_learning_rate(self):
        rate = super()._get_current_learning_rate()
        if not self.warmup_steps:
            return rate
        step = keras.ops.cast(self.iterations + 1, "float32")
        return rate * keras.ops.minimum(1.0, step / float(self.warmup_steps))

    @property
    def base_learning_rate(self) -> float:
        """The rate warmup ramps up to (what ReduceLROnPlateau lowers)."""
        return float(keras.ops.convert_to_numpy(self._learning_rate))

    def apply(self, grads, trainable_variables=None):
        if self.l2 and len(grads):
            variables = (self._trainable_variables if trainable_variables is None
                         else trainable_variables)
            grads = [None if g is None else g + self.l2 * keras.ops.cast(v.value, g.dtype)
                     for g, v in zip(grads, variables)]
        return super().apply(grads, trainable_variables)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2, "warmup_steps": self.warmup_steps}


def make_optimizer(name: str = DEFAULT_OPTIMIZER, *, learning_rate: float = 1e-3,
                   weight_decay: float = 1e-4,
                   warmup_steps: int = DEFAULT_WARMUP_STEPS) -> WarmupAdam:
    """``adam_l2`` (the paper's Adam with L2 weight decay) or ``adamw`` (decoupled decay)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    decay = {"l2": weight_decay} if name == "adam_l2" else {"weight_decay": weight_decay}
    return WarmupAdam(learning_rate=learning_rate, warmup_steps=warmup_steps, **decay)


def compile_model(model: keras.Model, *, optimizer: str = DEFAULT_OPTIMIZER,
                  learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                  warmup_steps: int = DEFAULT_WARMUP_STEPS,
                  loss_weights: dict[str, float] | None = None,
                  jit_compile: bool = True) -> keras.Model:
    """Compile with a masked cross-entropy on logits and a masked accuracy per task (§4.1.3).

    Losses, ``loss_weights`` and metrics are dicts keyed by the model's output (task) names.
    ``loss_weights`` defaults to the weights the model carries (``MtcModel.loss_weights``,
    set by ``build_model`` and kept by ``.keras`` files). Returns the model.
    """
    tasks = list(model.output_names)
    if loss_weights is None:
        loss_weights = getattr(model, "loss_weights", None)
        if not isinstance(loss_weights, dict):
            raise ValueError(f"model {model.name!r} carries no loss weights: pass loss_weights "
                             f"for the tasks {tasks}")
    if set(loss_weights) != set(tasks):
        raise ValueError(f"loss_weights keys {sorted(loss_weights)} differ from the model's "
                         f"outputs {sorted(tasks)}")
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate=learning_rate,
                                 weight_decay=weight_decay, warmup_steps=warmup_steps),
        loss={task: MaskedSparseCategoricalCrossentropy(from_logits=True) for task in tasks},
        loss_weights={task: float(loss_weights[task]) for task in tasks},
        metrics={task: [MaskedSparseCategoricalAccuracy(name="accuracy")] for task in tasks},
        jit_compile=jit_compile,
    )
    return model
