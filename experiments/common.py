"""Flags and the training run shared by ``experiments.iscx`` and ``experiments.cicids``.

One run, in ``--output_dir``:
  training_log.csv     one row per finished epoch (CSVLogger)
  logs/                TensorBoard
  backup/              BackupAndRestore: a killed run started again with the same flags goes on
                       from its last finished epoch; deleted when training ends
  checkpoints/best.weights.h5   the weights of the best epoch by validation loss
  metrics.json, report.md, confusion_<task>.png/.csv, per_class_<task>.png   the test split
  model.keras          the trained model (best epoch)
  export/              the SavedModel for serving (mtc_keras.export) and its labels.json

Training follows the paper's §4.1.3: Adam with L2 weight decay (``--optimizer=adam_l2``, as
PyTorch's ``Adam(weight_decay=...)``; ``adamw`` for decoupled decay), an optional linear warmup
(``--warmup_steps``), ReduceLROnPlateau (factor 0.1, patience 10) and EarlyStopping (patience
20), all on the validation loss; the test split is touched only once, after training, by the
final evaluation.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import sys
import time

from absl import flags, logging

from mtc_keras import distribution, training
from mtc_keras.labels import TASKS
from mtc_keras.models import MODEL_NAMES

MODEL = flags.DEFINE_enum("model", "mtc", MODEL_NAMES, "Which model to train.")
DATASET_CONFIG = flags.DEFINE_string(
    "dataset_config", "paper", "TFDS builder config (the split): paper or flow_split "
    "(or flow_split_masked) for ISCX; paper or clean for CICIDS2017.")
EPOCHS = flags.DEFINE_integer("epochs", 100, "Maximum epochs (EarlyStopping may stop sooner).",
                              lower_bound=1)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Batch size (train, validation, test).",
                                  lower_bound=1)
OPTIMIZER = flags.DEFINE_enum(
    "optimizer", training.DEFAULT_OPTIMIZER, training.OPTIMIZERS, "adam_l2: Adam with the "
    "weight decay as an L2 term on the gradient (the paper's PyTorch Adam); adamw: decoupled "
    "weight decay.")
LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Initial (base) learning rate.")
WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 1e-4, "Weight decay (L2 factor for adam_l2).")
WARMUP_STEPS = flags.DEFINE_integer(
    "warmup_steps", training.DEFAULT_WARMUP_STEPS, "Linear learning-rate warmup over this "
    "many optimizer steps (0: none); ReduceLROnPlateau scales the rate it warms up to.",
    lower_bound=0)
LOSS_WEIGHTS = flags.DEFINE_list(
    "loss_weights", None, "Loss weight per task in task order (ISCX: app,traffic,aux; "
    "CICIDS2017: attack,mal; mtc_2task: app,traffic), normalised to sum to 1. "
    "Default: the model's preset.")
ENCODER_REPEATS = flags.DEFINE_list(
    "encoder_repeats", None, "MTC/MTC-2task: Transformer encoders per stage (m1,m2,m3; paper "
    "1,5,6). Transformer baseline: one number, its encoder count. Default: the preset.")
CNN_DROPOUT = flags.DEFINE_float(
    "cnn_dropout", None, "MTC/MTC-2task: dropout in the CNN bottlenecks (paper 0.07). 1D-CNN "
    "baseline: its dense-layer dropout (paper 0.05). Default: the preset.")
SEED = flags.DEFINE_integer("seed", 0, "Seed of weights, dropout and the training order.")
DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's own).")
MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Raw dataset folder: build the TFDS dataset from it first when it is "
    "not in --data_dir yet (see BUILD.md).")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "The run's folder (see above).")
JIT_COMPILE = flags.DEFINE_boolean("jit_compile", True, "XLA-compile the train/eval steps.")
MAX_TRAIN_EXAMPLES = flags.DEFINE_integer(
    "max_train_examples", None, "Use only the first N training examples (tests, the demo).",
    lower_bound=1)
MAX_EVAL_EXAMPLES = flags.DEFINE_integer(
    "max_eval_examples", None, "Use only the first N validation and test examples.",
    lower_bound=1)
VERBOSE = flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 0 silent, 1 progress bar, "
                               "2 one line per epoch.", lower_bound=0, upper_bound=2)
MODEL_OVERRIDES = flags.DEFINE_string(
    "model_overrides", None, "JSON object of further build_model hyper-parameters, e.g. "
    '\'{"d_model": 12}\' (tests use it for tiny models).')
STOP_AFTER_EPOCHS = flags.DEFINE_integer(
    "stop_after_epochs", None, "Testing aid: SIGKILL this process after N epochs of this "
    "invocation have been backed up, as if the run had been killed.", lower_bound=1)

DISTRIBUTION = flags.DEFINE_enum(
    "distribution", "none", distribution.STRATEGIES, "data_parallel: split every batch over "
    "all devices (of all processes); --batch_size stays the global batch.")
COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host run: host:port of process 0, where the JAX "
    "coordinator listens (with --num_processes, --process_id and "
    "--distribution=data_parallel; see BUILD.md).")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host run: how many "
                                     "processes (one per host).", lower_bound=1)
PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "Multi-host run: this process, 0 .. num_processes-1. Process 0 writes "
    "the run's folder; the others write to OUTPUT_DIR/process_<id>.", lower_bound=0)
PRECISION = flags.DEFINE_enum(
    "precision", "float32", distribution.PRECISIONS, "mixed_bfloat16: compute in bfloat16 "
    "(GPUs, TPUs), keep variables and the output heads in float32.")

UNKNOWN_SHARE = flags.DEFINE_float(
    "unknown_share", 0.05, "The export's confidence thresholds: the share of correctly "
    "classified validation flows that mtc-classify would call unknown.", lower_bound=0.0,
    upper_bound=0.99)

LOG_FILE = "training_log.csv"
BEST_WEIGHTS = os.path.join("checkpoints", "best.weights.h5")
BACKUP_DIR = "backup"
_STATE_FILE = "callback_state.json"


# ------------------------------------------------------------------------------ flags -> kwargs
def model_overrides(name: str, dataset: str) -> dict:
    """build_model keyword arguments from --loss_weights, --encoder_repeats, --cnn_dropout and
    --model_overrides; only what the user set (everything else stays the preset)."""
    from mtc_keras import models

    overrides = json.loads(MODEL_OVERRIDES.value) if MODEL_OVERRIDES.value else {}
    if not isinstance(overrides, dict):
        raise ValueError("--model_overrides must be a JSON object")
    if ENCODER_REPEATS.value is not None:
        repeats = tuple(int(r) for r in ENCODER_REPEATS.value)
        if name in ("mtc", "mtc_2task"):
            overrides["encoder_repeats"] = repeats
        elif name == "transformer" and len(repeats) == 1:
            overrides["num_encoders"] = repeats[0]
        else:
            raise ValueError(f"--encoder_repeats={','.join(ENCODER_REPEATS.value)} does not "
                             f"apply to the {name} model")
    if CNN_DROPOUT.value is not None:
        if name in ("mtc", "mtc_2task"):
            overrides["cnn_dropout"] = CNN_DROPOUT.value
        elif name == "cnn":
            overrides["dense_dropout"] = CNN_DROPOUT.value
        else:
            raise ValueError(f"--cnn_dropout does not apply to the {name} model")
    tasks = list(models.default_config(name, dataset)["num_classes"])
    if LOSS_WEIGHTS.value is not None:
        weights = [float(w) for w in LOSS_WEIGHTS.value]
        if len(weights) != len(tasks) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"--loss_weights needs {len(tasks)} non-negative numbers for "
                             f"{','.join(tasks)}; got {','.join(LOSS_WEIGHTS.value)}")
        overrides["loss_weights"] = {t: w / sum(weights) for t, w in zip(tasks, weights)}
    return overrides


def config_name() -> str:
    """The last --flagfile's name without .cfg, else the output folder's name."""
    name = None
    for arg in sys.argv[1:]:
        if arg.startswith("--flagfile="):
            name = os.path.splitext(os.path.basename(arg.split("=", 1)[1]))[0]
    return name or os.path.basename(os.path.normpath(OUTPUT_DIR.value))


# -------------------------------------------------------------------------- callbacks / resume
def _callbacks(output_dir: str, resume_epoch: int):
    """The §4.1.3 callbacks plus logging, checkpoints and the resume machinery."""
    import keras

    class CallbackState(keras.callbacks.Callback):
        """Keeps what BackupAndRestore does not: the best validation loss and patience counters
        of ReduceLROnPlateau, EarlyStopping and the best checkpoint. Written after the backup
        each epoch; restored on resume when it belongs to the backed-up epoch."""

        def __init__(self, path, parts):
            super().__init__()
            self.path, self.parts = path, parts

        def on_train_begin(self, logs=None):  # runs after the callbacks' own resets
            if not resume_epoch or not os.path.exists(self.path):
                return
            with open(self.path, encoding="utf-8") as f:
                state = json.load(f)
            if state.get("epoch") != resume_epoch:
                logging.warning("%s is from epoch %s, the backup from %s: patience counters "
                                "start afresh", self.path, state.get("epoch"), resume_epoch)
                return
            for key, callback in self.parts.items():
                for attr, value in state[key].items():
                    setattr(callback, attr, value)

        def on_epoch_end(self, epoch, logs=None):
            state = {"epoch": epoch + 1}
            for key, callback in self.parts.items():
                state[key] = {attr: _plain(getattr(callback, attr, None))
                              for attr in ("best", "wait", "cooldown_counter", "best_epoch")
                              if hasattr(callback, attr)}
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(state, f)
            os.replace(tmp, self.path)

    class KillAfter(keras.callbacks.Callback):
        """--stop_after_epochs: die like a killed run, after the epoch's backup is written."""

        def __init__(self, epochs):
            super().__init__()
            self.epochs, self.done = epochs, 0

        def on_epoch_end(self, epoch, logs=None):
            self.done += 1
            if self.done >= self.epochs:
                sys.stdout.flush()
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    backup_dir = os.path.join(output_dir, BACKUP_DIR)
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=10,
                                                  verbose=1)
    # restore_best_weights covers this invocation; after a resume the best epoch may predate
    # it, so the run reloads checkpoints/best.weights.h5 when training ends (see run()).
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=20,
                                                   restore_best_weights=True, verbose=1)
    best = keras.callbacks.ModelCheckpoint(os.path.join(output_dir, BEST_WEIGHTS),
                                           monitor="val_loss", save_best_only=True,
                                           save_weights_only=True)
    callbacks = [
        reduce_lr, early_stopping, best,  # ReduceLROnPlateau first: it logs learning_rate
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(os.path.join(output_dir, LOG_FILE), append=resume_epoch > 0),
        keras.callbacks.BackupAndRestore(backup_dir),
        CallbackState(os.path.join(backup_dir, _STATE_FILE),
                      {"reduce_lr": reduce_lr, "early_stopping": early_stopping,
                       "checkpoint": best}),
    ]
    if importlib.util.find_spec("tensorboard"):  # TensorFlow's summaries need the package
        callbacks.insert(4, keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")))
    else:
        logging.warning("the tensorboard package is not installed: no TensorBoard logs "
                        "(pip install tensorboard); the CSV log is written")
    if STOP_AFTER_EPOCHS.value:
        callbacks.append(KillAfter(STOP_AFTER_EPOCHS.value))
    return callbacks, early_stopping


def _plain(value):
    """JSON-safe copy of a callback attribute (numpy scalars -> float/int)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return float(value)


def backed_up_epoch(output_dir: str) -> int:
    """Epochs finished by an interrupted run in output_dir (0 when there is nothing to resume)."""
    path = os.path.join(output_dir, BACKUP_DIR, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


def _trim_log(path: str, epochs: int) -> None:
    """Keep the first `epochs` rows of the CSV log: an epoch logged after the last backup
    is trained again, and must not appear twice."""
    if not os.path.exists(path):
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) > epochs + 1:
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows[: epochs + 1])


# ----------------------------------------------------------------------------------- the run
def run(dataset: str) -> str:
    """Train, evaluate on the test split, save and export, as the flags say; returns the
    report's path."""
    from mtc_keras import inputs

    inputs.configure_tensorflow()
    # Before anything touches a JAX device: a multi-host run must join its cluster first.
    distribution.configure_distribution(
        DISTRIBUTION.value, batch_size=BATCH_SIZE.value,
        coordinator_address=COORDINATOR_ADDRESS.value, num_processes=NUM_PROCESSES.value,
        process_id=PROCESS_ID.value)
    distribution.configure_precision(PRECISION.value)
    import keras

    from mtc_keras import evaluation, export, models

    name, config, output_dir = MODEL.value, DATASET_CONFIG.value, OUTPUT_DIR.value
    if not distribution.is_chief():  # one writer per file: process 0 owns the run's folder
        output_dir = os.path.join(output_dir, f"process_{PROCESS_ID.value}")
    if dataset != "iscx" and name == "mtc_2task":
        raise ValueError(f"mtc_2task drops ISCX's aux task; {dataset} has no aux task (its "
                         "mtc is already two tasks)")
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(SEED.value)

    data_builder = inputs.prepare(dataset, config, DATA_DIR.value, MANUAL_DIR.value)
    overrides = model_overrides(name, dataset)
    model = models.build_model(name, dataset, **overrides)
    training.compile_model(model, optimizer=OPTIMIZER.value, learning_rate=LEARNING_RATE.value,
                           weight_decay=WEIGHT_DECAY.value, warmup_steps=WARMUP_STEPS.value,
                           jit_compile=JIT_COMPILE.value)
    tasks = tuple(task for task in TASKS[dataset] if task in model.output_names)

    def split(which, training_split, limit):
        return inputs.load_split(dataset, config, which, data_dir=DATA_DIR.value,
                                 batch_size=BATCH_SIZE.value, training=training_split,
                                 seed=SEED.value, max_examples=limit, tasks=tasks)

    train = split("train", True, MAX_TRAIN_EXAMPLES.value)
    validation = split("validation", False, MAX_EVAL_EXAMPLES.value)
    test = split("test", False, MAX_EVAL_EXAMPLES.value)

    resume_epoch = backed_up_epoch(output_dir)
    if resume_epoch:
        print(f"Resuming {output_dir} after epoch {resume_epoch} (its backup/ folder)")
        _trim_log(os.path.join(output_dir, LOG_FILE), resume_epoch)
    callbacks, early_stopping = _callbacks(output_dir, resume_epoch)
    started = time.time()
    history = model.fit(train.dataset, validation_data=validation.dataset, epochs=EPOCHS.value,
                        callbacks=callbacks, verbose=VERBOSE.value, shuffle=False)
    train_seconds = time.time() - started
    model = distribution.local_model(model)  # multi-host: evaluate and export in-process
    best_path = os.path.join(output_dir, BEST_WEIGHTS)
    if os.path.exists(best_path):
        model.load_weights(best_path)  # the best epoch by validation loss, across resumes

    print("Evaluating on the test split")
    labels, probabilities = inputs.predict(model, test, verbose=VERBOSE.value == 1)
    metrics = evaluation.evaluate_predictions(labels, probabilities, dataset)
    with open(os.path.join(output_dir, LOG_FILE), newline="", encoding="utf-8") as f:
        log_rows = list(csv.DictReader(f))
    run_info = {
        "model": name, "dataset": dataset, "dataset_config": config,
        "config_name": config_name(),
        "epochs": EPOCHS.value, "epochs_trained": len(log_rows),
        "best_epoch": 1 + min(range(len(log_rows)), key=lambda i: float(log_rows[i]["val_loss"]))
        if log_rows else None,
        "resumed_after_epoch": resume_epoch or None,
        "early_stopped": bool(early_stopping.stopped_epoch),
        "batch_size": BATCH_SIZE.value, "optimizer": OPTIMIZER.value,
        "learning_rate": LEARNING_RATE.value, "weight_decay": WEIGHT_DECAY.value,
        "warmup_steps": WARMUP_STEPS.value, "loss_weights": dict(model.loss_weights),
        "seed": SEED.value, "jit_compile": JIT_COMPILE.value,
        "distribution": DISTRIBUTION.value, "precision": PRECISION.value,
        "overrides": {k: v for k, v in overrides.items() if k != "loss_weights"},
        "parameters": model.count_params(),
        "examples": {"train": train.num_examples, "validation": validation.num_examples,
                     "test": test.num_examples},
        "train_seconds_this_invocation": round(train_seconds, 1),
        "device": _device(), "keras": keras.__version__, "data_dir": str(data_builder.data_dir),
    }
    written = evaluation.write_reports(output_dir, metrics, run_info=run_info)
    model.save(os.path.join(output_dir, "model.keras"))
    quantiles = None
    if dataset == "cicids2017":
        from mtc_keras import cicids

        quantiles = cicids.load_quantile_transform(data_builder)
    # The "unknown" answer of mtc-classify: per task, the confidence below which 5 % of the
    # correctly classified validation flows (their first 5 packets, as --flow_packets 5) fall.
    # Rows without flows (CICIDS2017) are judged one by one.
    val_labels, val_probabilities = inputs.predict(model, validation, verbose=False)
    val_flows = inputs.flow_ids(dataset, config, "validation", data_dir=DATA_DIR.value,
                                max_examples=MAX_EVAL_EXAMPLES.value)
    thresholds = export.fit_confidence_thresholds(
        val_labels, val_probabilities, flow_ids=val_flows, share=UNKNOWN_SHARE.value,
        flow_packets=None if val_flows is None else 5)
    export.export(model, os.path.join(output_dir, "export"), dataset, quantiles=quantiles,
                  thresholds=thresholds)
    del history
    summary = ", ".join(f"{task} macro-F1 {metrics[task]['macro_f1']:.4f}" for task in tasks
                        if metrics[task]["macro_f1"] is not None)
    print(f"Test split: {summary}")
    print(f"Report: {written[evaluation.REPORT_FILE]}")
    return written[evaluation.REPORT_FILE]


def _device() -> str:
    import jax

    device = jax.devices()[0]
    return f"{device.platform}: {device.device_kind}"


def main_for(dataset: str):
    """An absl main() that runs `dataset` with the flags above."""

    def main(argv):
        if len(argv) > 1:
            raise SystemExit(f"unexpected arguments: {argv[1:]}")
        if not OUTPUT_DIR.value:
            raise SystemExit("--output_dir is required (the run's folder)")
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)  # TFDS and TF log every file they open
        run(dataset)

    return main
