"""Training: the masked losses and metric, the optimizer, compiling a model, the callbacks of
a run and resuming a killed one. Shared by every experiment (``experiments.common``) and the
benchmarks.

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

import csv
import importlib.util
import json
import math
import os
import signal
import sys

import keras
from absl import logging
from keras import ops

from mtc_keras.labels import MISSING

_register = keras.saving.register_keras_serializable(package="mtc_keras")


# -------------------------------------------------------------------- losses and metric
def _labels_and_valid(y_true, y_pred):
    """Integer labels shaped like y_pred without its class axis, and where they are present."""
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
    y_true = ops.cast(y_true, "int32")
    valid = ops.greater_equal(y_true, 0)
    return ops.where(valid, y_true, ops.zeros_like(y_true)), valid


@_register
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy that ignores missing labels (negative, ``MISSING`` = -1).

    The result is the mean over the labelled samples only (weighted by ``sample_weight`` when
    given): sum(w * loss over valid) / sum(w over valid), so a batch where half the traffic
    labels are missing does not halve the traffic loss. A batch with no label gives 0.
    """

    def __init__(self, from_logits: bool = False, name="masked_sparse_categorical_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        labels, valid = _labels_and_valid(y_true, y_pred)
        losses = keras.losses.sparse_categorical_crossentropy(
            labels, y_pred, from_logits=self.from_logits)
        return ops.where(valid, losses, ops.zeros_like(losses))

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.cast(y_pred, self.dtype)
        _, valid = _labels_and_valid(y_true, y_pred)
        weights = ops.cast(valid, self.dtype)
        if sample_weight is not None:
            weights = weights * ops.reshape(ops.cast(sample_weight, self.dtype), weights.shape)
        losses = self.call(y_true, y_pred)
        return ops.divide_no_nan(ops.sum(losses * weights), ops.sum(weights))

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@_register
class MaskedSparseCategoricalAccuracy(keras.metrics.Mean):
    """Accuracy over the samples whose label is present (negative labels are skipped)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        labels, valid = _labels_and_valid(y_true, y_pred)
        hits = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels),
                        self.dtype)
        weights = ops.cast(valid, self.dtype)
        if sample_weight is not None:
            weights = weights * ops.reshape(ops.cast(sample_weight, self.dtype), weights.shape)
        return super().update_state(hits, sample_weight=weights)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


assert MISSING < 0  # the masking above relies on missing labels being negative


# -------------------------------------------------------------------- optimizer and compile
# The recipe's defaults: the one place they live. Experiment flags, the flagfiles' comments,
# benchmarks.learning and the demo read them from here.
OPTIMIZERS = ("adam_l2", "adamw")
DEFAULT_OPTIMIZER = "adam_l2"
# 2e-3, not the paper's 1e-3 (which the paper's flagfiles keep): on the real USTC-TFC2016 flow
# split it raised test app macro-F1 on all three seeds for all three models at the learning
# benchmark's default budget (docs/results.md); on real ISCX sessions the package's defaults
# with it and the byte table beat the paper's rate without it (mtc_keras.registry).
DEFAULT_LEARNING_RATE = 2e-3
DEFAULT_WEIGHT_DECAY = 1e-4  # the paper's (§4.1.3)
# By measurement against no warmup, three seeds at the CPU default budget (docs/results.md).
DEFAULT_WARMUP_STEPS = 50
# After the warmup: a constant rate (ReduceLROnPlateau lowers it in experiments), or a cosine
# decay to 0 over a run of known length (decay_steps).
SCHEDULES = ("constant", "cosine")
DEFAULT_SCHEDULE = "constant"


def decay_steps_for(schedule: str, total_steps: int) -> int:
    """``WarmupAdam``'s ``decay_steps`` for ``schedule`` over a run of ``total_steps``: the
    cosine decays to 0 at the run's last step; a constant rate never decays (0)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {SCHEDULES}")
    return int(total_steps) if schedule == "cosine" else 0


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
        decay_steps: when > 0, a cosine decay after the warmup: the rate is further
            multiplied by ``(1 + cos(pi * p)) / 2``, p the fraction of the steps from
            ``warmup_steps`` to ``decay_steps`` done (then 0 from step ``decay_steps`` on),
            for a run with a fixed number of steps; 0 (the default) keeps the rate constant.
        **kwargs: the other ``keras.optimizers.Adam`` arguments.

    The warmup counts the optimizer's own ``iterations``, so a resumed run (BackupAndRestore
    restores them) goes on where its warmup was.
    """

    def __init__(self, learning_rate=DEFAULT_LEARNING_RATE, l2: float = 0.0, warmup_steps: int = 0,
                 decay_steps: int = 0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if l2 < 0 or warmup_steps < 0 or decay_steps < 0:
            raise ValueError(f"l2, warmup_steps and decay_steps must be >= 0, got {l2}, "
                             f"{warmup_steps}, {decay_steps}")
        if decay_steps and decay_steps <= warmup_steps:
            raise ValueError(f"decay_steps ({decay_steps}) must exceed warmup_steps "
                             f"({warmup_steps})")
        self.l2 = float(l2)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)

    def _get_current_learning_rate(self):
        rate = super()._get_current_learning_rate()
        if self.warmup_steps:
            step = keras.ops.cast(self.iterations + 1, "float32")
            rate = rate * keras.ops.minimum(1.0, step / float(self.warmup_steps))
        if self.decay_steps:
            done = (keras.ops.cast(self.iterations, "float32") - self.warmup_steps) / float(
                self.decay_steps - self.warmup_steps)
            done = keras.ops.clip(done, 0.0, 1.0)
            rate = rate * 0.5 * (1.0 + keras.ops.cos(math.pi * done))
        return rate

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
        return {**super().get_config(), "l2": self.l2, "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps}


def make_optimizer(name: str = DEFAULT_OPTIMIZER, *, learning_rate: float = DEFAULT_LEARNING_RATE,
                   weight_decay: float = DEFAULT_WEIGHT_DECAY,
                   warmup_steps: int = DEFAULT_WARMUP_STEPS,
                   decay_steps: int = 0) -> WarmupAdam:
    """``adam_l2`` (the paper's Adam with L2 weight decay) or ``adamw`` (decoupled decay);
    ``decay_steps`` as ``WarmupAdam``'s."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    decay = {"l2": weight_decay} if name == "adam_l2" else {"weight_decay": weight_decay}
    return WarmupAdam(learning_rate=learning_rate, warmup_steps=warmup_steps,
                      decay_steps=decay_steps, **decay)


def compile_model(model: keras.Model, *, optimizer: str = DEFAULT_OPTIMIZER,
                  learning_rate: float = DEFAULT_LEARNING_RATE,
                  weight_decay: float = DEFAULT_WEIGHT_DECAY,
                  warmup_steps: int = DEFAULT_WARMUP_STEPS, decay_steps: int = 0,
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
                                 weight_decay=weight_decay, warmup_steps=warmup_steps,
                                 decay_steps=decay_steps),
        loss={task: MaskedSparseCategoricalCrossentropy(from_logits=True) for task in tasks},
        loss_weights={task: float(loss_weights[task]) for task in tasks},
        metrics={task: [MaskedSparseCategoricalAccuracy(name="accuracy")] for task in tasks},
        jit_compile=jit_compile,
    )
    return model


# ------------------------------------------------------------------- callbacks and resume
# A run's folder (experiments.common writes the rest):
LOG_FILE = "training_log.csv"  # one row per finished epoch (CSVLogger)
BEST_WEIGHTS = os.path.join("checkpoints", "best.weights.h5")  # the best epoch by val_loss
BACKUP_DIR = "backup"  # BackupAndRestore; deleted when training ends
STATE_FILE = "callback_state.json"  # in BACKUP_DIR: what BackupAndRestore does not keep
TENSORBOARD_DIR = "logs"


def _plain(value):
    """JSON-safe copy of a callback attribute (numpy scalars -> float/int)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return float(value)


class CallbackState(keras.callbacks.Callback):
    """Keeps what BackupAndRestore does not: the best validation loss and patience counters of
    ReduceLROnPlateau, EarlyStopping and the best checkpoint. Written after the backup each
    epoch; restored on resume when it belongs to the backed-up epoch."""

    _ATTRIBUTES = ("best", "wait", "cooldown_counter", "best_epoch")

    def __init__(self, path: str, parts: dict, resume_epoch: int):
        super().__init__()
        self.path, self.parts, self.resume_epoch = path, parts, resume_epoch

    def on_train_begin(self, logs=None):  # runs after the callbacks' own resets
        if not self.resume_epoch or not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            state = json.load(f)
        if state.get("epoch") != self.resume_epoch:
            logging.warning("%s is from epoch %s, the backup from %s: patience counters "
                            "start afresh", self.path, state.get("epoch"), self.resume_epoch)
            return
        for key, callback in self.parts.items():
            for attr, value in state[key].items():
                setattr(callback, attr, value)

    def on_epoch_end(self, epoch, logs=None):
        state = {"epoch": epoch + 1}
        for key, callback in self.parts.items():
            state[key] = {attr: _plain(getattr(callback, attr, None))
                          for attr in self._ATTRIBUTES if hasattr(callback, attr)}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(tmp, self.path)


class KillAfter(keras.callbacks.Callback):
    """Testing aid: die like a killed run (SIGKILL) after `epochs` epochs of this invocation,
    once each epoch's backup is written."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs, self.done = epochs, 0

    def on_epoch_end(self, epoch, logs=None):
        self.done += 1
        if self.done >= self.epochs:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def run_callbacks(output_dir: str, *, resume_epoch: int = 0,
                  kill_after_epochs: int | None = None) -> tuple[list, keras.callbacks.EarlyStopping]:
    """The §4.1.3 callbacks (ReduceLROnPlateau factor 0.1 patience 10, EarlyStopping patience
    20, both on val_loss) plus the best checkpoint, TensorBoard (when installed), the CSV log,
    BackupAndRestore and CallbackState; returns them and the EarlyStopping callback."""
    backup_dir = os.path.join(output_dir, BACKUP_DIR)
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=10,
                                                  verbose=1)
    # restore_best_weights covers this invocation; after a resume the best epoch may predate
    # it, so restore_best reloads checkpoints/best.weights.h5 when training ends.
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=20,
                                                   restore_best_weights=True, verbose=1)
    best = keras.callbacks.ModelCheckpoint(os.path.join(output_dir, BEST_WEIGHTS),
                                           monitor="val_loss", save_best_only=True,
                                           save_weights_only=True)
    tensorboard = []
    if importlib.util.find_spec("tensorboard"):  # TensorFlow's summaries need the package
        tensorboard = [keras.callbacks.TensorBoard(os.path.join(output_dir, TENSORBOARD_DIR))]
    else:
        logging.warning("the tensorboard package is not installed: no TensorBoard logs "
                        "(pip install tensorboard); the CSV log is written")
    callbacks = [
        reduce_lr, early_stopping, best,  # ReduceLROnPlateau first: it logs learning_rate
        keras.callbacks.TerminateOnNaN(),
        *tensorboard,
        keras.callbacks.CSVLogger(os.path.join(output_dir, LOG_FILE), append=resume_epoch > 0),
        keras.callbacks.BackupAndRestore(backup_dir),
        CallbackState(os.path.join(backup_dir, STATE_FILE),
                      {"reduce_lr": reduce_lr, "early_stopping": early_stopping,
                       "checkpoint": best}, resume_epoch),
    ]
    if kill_after_epochs:
        callbacks.append(KillAfter(kill_after_epochs))
    return callbacks, early_stopping


def backed_up_epoch(output_dir: str) -> int:
    """Epochs finished by an interrupted run in output_dir (0 when there is nothing to resume)."""
    path = os.path.join(output_dir, BACKUP_DIR, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


def trim_log(path: str, epochs: int) -> None:
    """Keep the first `epochs` rows of the CSV log: an epoch logged after the last backup
    is trained again, and must not appear twice."""
    if not os.path.exists(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) > epochs + 1:
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows[: epochs + 1])


def resume(output_dir: str) -> int:
    """The epoch an interrupted run in output_dir goes on after (0: a fresh run); its CSV log
    is trimmed to that epoch."""
    epoch = backed_up_epoch(output_dir)
    if epoch:
        print(f"Resuming {output_dir} after epoch {epoch} (its backup/ folder)")
        trim_log(os.path.join(output_dir, LOG_FILE), epoch)
    return epoch


def restore_best(model: keras.Model, output_dir: str) -> None:
    """Load the best epoch's weights by validation loss, across resumes, where they were saved."""
    path = os.path.join(output_dir, BEST_WEIGHTS)
    if os.path.exists(path):
        model.load_weights(path)


def read_log(output_dir: str) -> list[dict]:
    """The rows of the run's CSV log."""
    with open(os.path.join(output_dir, LOG_FILE), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
