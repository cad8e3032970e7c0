"""The training run shared by ``experiments.iscx``, ``experiments.cicids`` and ``experiments.ustc``:
flags in, a few named steps, files out.

One run, in ``--output_dir`` (file names: ``mtc_keras.training`` and ``mtc_keras.evaluation``):
  training_log.csv     one row per finished epoch (CSVLogger)
  logs/                TensorBoard
  backup/              BackupAndRestore: a killed run started again with the same flags goes on
                       from its last finished epoch; deleted when training ends
  checkpoints/best.weights.h5   the weights of the best epoch by validation loss
  metrics.json, report.md, confusion_<task>.png/.csv, per_class_<task>.png   the test split,
                       as captured and (packet datasets) forged (mtc_keras.perturb.forge)
  model.keras          the trained model (best epoch; its loss weights are in its config)
  export/              the SavedModel for serving (mtc_keras.export) and its labels.json

Training follows the paper's §4.1.3 (``mtc_keras.training``): Adam with L2 weight decay
(``--optimizer=adam_l2``, as PyTorch's ``Adam(weight_decay=...)``; ``adamw`` for decoupled
decay), a linear warmup (``--warmup_steps``), optionally a cosine decay over the run
(``--schedule=cosine``), ReduceLROnPlateau (factor 0.1, patience 10) and EarlyStopping (patience
20), all on the validation loss; the defaults are ``mtc_keras.training``'s, the one place they
live. The test split is touched only once, after training, by the final evaluation.

Flags: ``define_flags()`` defines them when an entry point runs (``experiments.iscx`` etc. call
it before ``app.run``), never at import, so modules with flags of the same name (``--data_dir``
of ``experiments.report``) import side by side.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from absl import app, flags, logging

from mtc_keras import distribution, perturb, registry, training
from mtc_keras.models import MODEL_NAMES

FLAGS = flags.FLAGS


_FLAG_NAMES: list[str] = []  # the flags define_flags defines, in order (Run reads them all)


def define_flags() -> None:
    """The experiments' flags (see the module docstring for where they are defined)."""
    before = set(FLAGS)
    _define_flags()
    _FLAG_NAMES[:] = [name for name in FLAGS if name not in before]


def _define_flags() -> None:
    flags.DEFINE_enum("model", "mtc", MODEL_NAMES, "Which model to train.")
    flags.DEFINE_string(
        "dataset_config", "paper", "TFDS builder config (the split): paper or flow_split "
        "(or flow_split_masked) for ISCX; paper or clean for CICIDS2017.")
    flags.DEFINE_integer("epochs", 100, "Maximum epochs (EarlyStopping may stop sooner).",
        lower_bound=1)
    flags.DEFINE_integer("batch_size", 128, "Batch size (train, validation, test).",
        lower_bound=1)
    flags.DEFINE_enum(
        "optimizer", training.DEFAULT_OPTIMIZER, training.OPTIMIZERS, "adam_l2: Adam with the "
        "weight decay as an L2 term on the gradient (the paper's PyTorch Adam); adamw: decoupled "
        "weight decay.")
    flags.DEFINE_float("learning_rate", training.DEFAULT_LEARNING_RATE,
                       "Initial (base) learning rate (the paper's flagfiles set its 1e-3).")
    flags.DEFINE_float("weight_decay", training.DEFAULT_WEIGHT_DECAY,
                       "Weight decay (L2 factor for adam_l2).")
    flags.DEFINE_enum(
        "schedule", training.DEFAULT_SCHEDULE, training.SCHEDULES, "After the warmup: a constant "
        "rate (which ReduceLROnPlateau lowers), or a cosine decay to 0 over --epochs.")
    flags.DEFINE_integer(
        "warmup_steps", training.DEFAULT_WARMUP_STEPS, "Linear learning-rate warmup over this "
        "many optimizer steps (0: none); ReduceLROnPlateau scales the rate it warms up to.",
        lower_bound=0)
    flags.DEFINE_list(
        "loss_weights", None, "Loss weight per task in task order (ISCX: app,traffic,aux; "
        "CICIDS2017: attack,mal; mtc_2task: app,traffic), normalised to sum to 1. "
        "Default: the model's preset.")
    flags.DEFINE_list(
        "encoder_repeats", None, "MTC/MTC-2task: Transformer encoders per stage (m1,m2,m3; paper "
        "1,5,6). Transformer baseline: one number, its encoder count. Default: the preset.")
    flags.DEFINE_float(
        "cnn_dropout", None, "MTC/MTC-2task: dropout in the CNN bottlenecks (paper 0.07). 1D-CNN "
        "baseline: its dense-layer dropout (paper 0.05). Default: the preset.")
    flags.DEFINE_integer("seed", 0, "Seed of weights, dropout and the training order.")
    flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's own).")
    flags.DEFINE_string(
        "manual_dir", None, "Raw dataset folder: build the TFDS dataset from it first when it is "
        "not in --data_dir yet (see BUILD.md).")
    flags.DEFINE_string("output_dir", None, "The run's folder (see above).")
    flags.DEFINE_boolean("jit_compile", True, "XLA-compile the train/eval steps.")
    flags.DEFINE_integer(
        "max_train_examples", None, "Use only the first N training examples (tests, the demo).",
        lower_bound=1)
    flags.DEFINE_integer(
        "max_eval_examples", None, "Use only the first N validation and test examples.",
        lower_bound=1)
    flags.DEFINE_integer("verbose", 1, "Keras fit verbosity: 0 silent, 1 progress bar, "
        "2 one line per epoch.", lower_bound=0, upper_bound=2)
    flags.DEFINE_string(
        "model_overrides", None, "JSON object of further build_model hyper-parameters, e.g. "
        '\'{"d_model": 12}\' (tests use it for tiny models).')
    flags.DEFINE_integer(
        "stop_after_epochs", None, "Testing aid: SIGKILL this process after N epochs of this "
        "invocation have been backed up, as if the run had been killed.", lower_bound=1)

    flags.DEFINE_enum(
        "distribution", "none", distribution.STRATEGIES, "data_parallel: split every batch over "
        "all devices (of all processes); --batch_size stays the global batch.")
    flags.DEFINE_string(
        "coordinator_address", None, "Multi-host run: host:port of process 0, where the JAX "
        "coordinator listens (with --num_processes, --process_id and "
        "--distribution=data_parallel; see BUILD.md).")
    flags.DEFINE_integer("num_processes", None, "Multi-host run: how many "
        "processes (one per host).", lower_bound=1)
    flags.DEFINE_integer(
        "process_id", None, "Multi-host run: this process, 0 .. num_processes-1. Process 0 writes "
        "the run's folder; the others write to OUTPUT_DIR/process_<id>.", lower_bound=0)
    flags.DEFINE_enum(
        "precision", "float32", distribution.PRECISIONS, "mixed_bfloat16: compute in bfloat16 "
        "(GPUs, TPUs), keep variables and the output heads in float32.")

    flags.DEFINE_float(
        "unknown_share", 0.05, "The export's confidence thresholds: the share of correctly "
        "classified validation flows that mtc-classify would call unknown.", lower_bound=0.0,
        upper_bound=0.99)
    flags.DEFINE_enum(
        "identifiers", None, perturb.IDENTIFIER_ARMS, "Packet datasets: keep (train on the "
        "packets as captured), redraw (forge every training batch afresh: the hosts' fields "
        "redrawn per flow) or mask (zero the hosts' fields in every split); mtc_keras.perturb. "
        "Default: the dataset's (mtc_keras.registry).")
    flags.DEFINE_bool(
        "perturb", False, "Also evaluate the test split with one header field at a time redrawn "
        "from the training split's values (shortcut reliance, mtc_keras.perturb; packet datasets).")


# ------------------------------------------------------------------------------ flags in
@dataclasses.dataclass(frozen=True)
class Run:
    """What a run is asked to do: the flag values, and the dataset of the entry point."""

    dataset: str
    model: str
    dataset_config: str
    output_dir: str
    flags: dict  # every flag above by name

    @classmethod
    def from_flags(cls, dataset: str) -> Run:
        if not _FLAG_NAMES:
            raise RuntimeError("define_flags() was not called")
        values = {name: FLAGS[name].value for name in _FLAG_NAMES}
        if values["identifiers"] is None:
            values["identifiers"] = registry.dataset(dataset).identifiers
        return cls(dataset, values["model"], values["dataset_config"], values["output_dir"], values)

    def __getattr__(self, name):  # run.batch_size, run.seed, ...: the flag values
        try:
            return self.__dict__["flags"][name]
        except KeyError:
            raise AttributeError(name) from None


# The build_model keyword each model takes a shorthand flag's value as.
_FLAG_KEYWORDS = {
    "encoder_repeats": {"mtc": "encoder_repeats", "mtc_2task": "encoder_repeats",
                        "transformer": "num_encoders"},
    "cnn_dropout": {"mtc": "cnn_dropout", "mtc_2task": "cnn_dropout", "cnn": "dense_dropout"},
}


def model_overrides(run: Run) -> dict:
    """build_model keyword arguments from --loss_weights, --encoder_repeats, --cnn_dropout and
    --model_overrides; only what the user set (everything else stays the preset)."""
    from mtc_keras import models

    name = run.model
    overrides = json.loads(run.model_overrides) if run.model_overrides else {}
    if not isinstance(overrides, dict):
        raise ValueError("--model_overrides must be a JSON object")
    repeats = None if run.encoder_repeats is None else tuple(int(r) for r in run.encoder_repeats)
    if name == "transformer" and repeats is not None:
        repeats = repeats[0] if len(repeats) == 1 else None  # its encoder count: one number
        if repeats is None:
            raise ValueError(f"--encoder_repeats={','.join(run.encoder_repeats)} does not apply "
                             f"to the {name} model")
    for flag, value in (("encoder_repeats", repeats), ("cnn_dropout", run.cnn_dropout)):
        if value is None:
            continue
        if name not in _FLAG_KEYWORDS[flag]:
            raise ValueError(f"--{flag} does not apply to the {name} model")
        overrides[_FLAG_KEYWORDS[flag][name]] = value
    tasks = list(models.default_config(name, run.dataset)["num_classes"])
    if run.loss_weights is not None:
        weights = [float(w) for w in run.loss_weights]
        if len(weights) != len(tasks) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"--loss_weights needs {len(tasks)} non-negative numbers for "
                             f"{','.join(tasks)}; got {','.join(run.loss_weights)}")
        overrides["loss_weights"] = {t: w / sum(weights) for t, w in zip(tasks, weights)}
    return overrides


def config_name(output_dir: str) -> str:
    """The last --flagfile's name without .cfg, else the output folder's name."""
    name = None
    for arg in sys.argv[1:]:
        if arg.startswith("--flagfile="):
            name = os.path.splitext(os.path.basename(arg.split("=", 1)[1]))[0]
    return name or os.path.basename(os.path.normpath(output_dir))


# ------------------------------------------------------------------------------- the steps
def set_up(run: Run) -> Run:
    """TensorFlow on the CPU, the distribution (before anything touches a JAX device: a
    multi-host run joins its cluster first), the precision, the seed and the run's folder;
    returns the run with this process's folder."""
    from mtc_keras import inputs

    inputs.configure_tensorflow()
    distribution.configure_distribution(
        run.distribution, batch_size=run.batch_size, coordinator_address=run.coordinator_address,
        num_processes=run.num_processes, process_id=run.process_id)
    distribution.configure_precision(run.precision)
    import keras

    if not distribution.is_chief():  # one writer per file: process 0 owns the run's folder
        run = dataclasses.replace(run, output_dir=os.path.join(run.output_dir, f"process_{run.process_id}"))
    os.makedirs(run.output_dir, exist_ok=True)
    keras.utils.set_random_seed(run.seed)
    return run


def build(run: Run):
    """(the model, the build_model overrides the flags asked for)."""
    from mtc_keras import models

    overrides = model_overrides(run)
    return models.build_model(run.model, run.dataset, **overrides), overrides


def compile_for(model, run: Run, steps_per_epoch: int) -> None:
    """The recipe of the flags (mtc_keras.training's defaults); ``--schedule=cosine`` decays
    the rate to 0 over the run's ``--epochs`` of ``steps_per_epoch`` steps."""
    training.compile_model(model, optimizer=run.optimizer, learning_rate=run.learning_rate,
                           weight_decay=run.weight_decay, warmup_steps=run.warmup_steps,
                           decay_steps=training.decay_steps_for(run.schedule,
                                                                run.epochs * steps_per_epoch),
                           jit_compile=run.jit_compile)


@dataclasses.dataclass(frozen=True)
class Data:
    builder: object  # the built TFDS builder
    train: object  # inputs.Split
    validation: object
    test: object
    pools: dict | None  # the training split's perturb.field_pools (packet datasets)


def load_data(run: Run, tasks: tuple[str, ...]) -> Data:
    """The built dataset (built from --manual_dir first where asked) and its three splits."""
    from mtc_keras import inputs

    data_builder = registry.prepare(run.dataset, run.dataset_config, run.data_dir, run.manual_dir)
    pools = (inputs.training_pools(run.dataset, run.dataset_config, data_dir=run.data_dir,
                                   max_examples=run.max_train_examples)
             if registry.dataset(run.dataset).packets else None)

    def split(which, training_split, limit):
        return inputs.load_split(run.dataset, run.dataset_config, which, data_dir=run.data_dir,
                                 batch_size=run.batch_size, training=training_split,
                                 seed=run.seed, max_examples=limit, tasks=tasks,
                                 identifiers=run.identifiers, pools=pools)

    return Data(data_builder, split("train", True, run.max_train_examples),
                split("validation", False, run.max_eval_examples),
                split("test", False, run.max_eval_examples), pools)


@dataclasses.dataclass(frozen=True)
class Fitted:
    resume_epoch: int
    early_stopped: bool
    seconds: float


def fit(model, run: Run, data: Data) -> Fitted:
    """Train (resuming a killed run), then keep the best epoch's weights."""
    resume_epoch = training.resume(run.output_dir)
    callbacks, early_stopping = training.run_callbacks(
        run.output_dir, resume_epoch=resume_epoch, kill_after_epochs=run.stop_after_epochs)
    started = time.time()
    model.fit(data.train.dataset, validation_data=data.validation.dataset, epochs=run.epochs,
              callbacks=callbacks, verbose=run.verbose, shuffle=False)
    return Fitted(resume_epoch, bool(early_stopping.stopped_epoch), time.time() - started)


def run_info(run: Run, model, overrides: dict, data: Data, fitted: Fitted) -> dict:
    """The ``run`` entry of metrics.json."""
    import keras

    log_rows = training.read_log(run.output_dir)
    return {
        "model": run.model, "dataset": run.dataset, "dataset_config": run.dataset_config,
        "config_name": config_name(run.output_dir),
        "epochs": run.epochs, "epochs_trained": len(log_rows),
        "best_epoch": 1 + min(range(len(log_rows)), key=lambda i: float(log_rows[i]["val_loss"]))
        if log_rows else None,
        "resumed_after_epoch": fitted.resume_epoch or None,
        "early_stopped": fitted.early_stopped,
        "batch_size": run.batch_size, "optimizer": run.optimizer,
        "learning_rate": run.learning_rate, "weight_decay": run.weight_decay,
        "warmup_steps": run.warmup_steps, "schedule": run.schedule,
        "identifiers": run.identifiers,
        "loss_weights": dict(model.loss_weights),
        "seed": run.seed, "jit_compile": run.jit_compile,
        "distribution": run.distribution, "precision": run.precision,
        "overrides": {k: v for k, v in overrides.items() if k != "loss_weights"},
        "parameters": model.count_params(),
        "examples": {"train": data.train.num_examples, "validation": data.validation.num_examples,
                     "test": data.test.num_examples},
        "train_seconds_this_invocation": round(fitted.seconds, 1),
        "device": _device(), "keras": keras.__version__, "data_dir": str(data.builder.data_dir),
    }


def test_rows(run: Run, split: str) -> dict:
    """The flow ids (``flow_id``) and capture positions (``index``) of a split's rows, in the
    order ``inputs.predict`` returns them; {} for a dataset without flows (CICIDS2017)."""
    from mtc_keras import inputs

    return inputs.split_features(run.dataset, run.dataset_config, split, ("flow_id", "index"),
                                 data_dir=run.data_dir, max_examples=run.max_eval_examples)


def export_model(model, run: Run, data: Data) -> None:
    """model.keras, and the SavedModel export with the confidence thresholds of mtc-classify's
    "unknown": per task, the confidence below which --unknown_share of the correctly classified
    validation flows (judged as mtc-classify judges them by default: mtc_keras.flows, their
    first EARLY_PACKETS packets) fall. Rows without flows (CICIDS2017) are judged one by one."""
    from mtc_keras import export, flows, inputs

    model.save(os.path.join(run.output_dir, "model.keras"))
    quantiles = None
    if registry.dataset(run.dataset).quantile_transform:
        from mtc_keras import cicids

        quantiles = cicids.load_quantile_transform(data.builder)
    val_labels, val_probabilities = inputs.predict(model, data.validation, verbose=False)
    rows = test_rows(run, "validation")
    val_flows = rows.get("flow_id")
    thresholds = export.fit_confidence_thresholds(
        val_labels, val_probabilities, flow_ids=val_flows, share=run.unknown_share,
        flow_packets=None if val_flows is None else flows.EARLY_PACKETS, order=rows.get("index"))
    export.export(model, os.path.join(run.output_dir, "export"), run.dataset, quantiles=quantiles,
                  thresholds=thresholds)


def changed_tests(model, run: Run, data: Data, labels: dict, metrics: dict) -> None:
    """Adds to ``metrics`` every task's ``forged`` figures (the test split forged,
    ``perturb.FORGED_TESTS``, per packet and per flow) and with ``--perturb`` its
    ``shortcut_reliance`` (one header field at a time redrawn from the training split's
    values); the model reads each changed split as its arm reads test packets."""
    from mtc_keras import evaluation, inputs
    from mtc_keras.models import predict_arrays

    rows = inputs.split_features(run.dataset, run.dataset_config, "test",
                                 ("packet", "flow_id", "index"), data_dir=run.data_dir,
                                 max_examples=run.max_eval_examples)
    packets, flow_ids, order = rows["packet"], rows.get("flow_id"), rows.get("index")

    def read(changed):
        return predict_arrays(model, perturb.model_inputs(changed, run.identifiers), run.batch_size)

    evaluation.evaluate_changed_tests(metrics, labels, read, packets, data.pools, run.dataset,
                                      flow_ids=flow_ids, order=order, seed=run.seed,
                                      one_field=run.perturb)


def train_and_evaluate(run: Run) -> str:
    """Train, evaluate on the test split, save and export; returns the report's path."""
    run = set_up(run)
    from mtc_keras import evaluation, inputs

    if run.perturb and not registry.dataset(run.dataset).packets:
        raise ValueError(f"--perturb redraws packet header fields; {run.dataset} has no packets")
    model, overrides = build(run)
    tasks = tuple(task for task in registry.DATASETS[run.dataset].tasks if task in model.output_names)
    data = load_data(run, tasks)
    compile_for(model, run, data.train.steps)
    fitted = fit(model, run, data)
    model = distribution.local_model(model)  # multi-host: evaluate and export in-process
    training.restore_best(model, run.output_dir)  # the best epoch by val_loss, across resumes

    print("Evaluating on the test split")
    labels, probabilities = inputs.predict(model, data.test, verbose=run.verbose == 1)
    rows = test_rows(run, "test")
    metrics = evaluation.evaluate(labels, probabilities, run.dataset, flow_ids=rows.get("flow_id"),
                                  order=rows.get("index"))
    if registry.dataset(run.dataset).packets:
        print("Evaluating on the forged test splits"
              + (" and with one header field at a time redrawn (--perturb)" if run.perturb else ""))
        changed_tests(model, run, data, labels, metrics)
    written = evaluation.write_reports(run.output_dir, metrics,
                                       run_info=run_info(run, model, overrides, data, fitted))
    export_model(model, run, data)
    summary = ", ".join(f"{task} macro-F1 {metrics[task]['macro_f1']:.4f}" for task in tasks
                        if metrics[task]["macro_f1"] is not None)
    print(f"Test split: {summary}")
    flow_summary = ", ".join(
        f"{task} {figures['macro_f1']:.4f}" for task in tasks
        for figures in [(metrics[task].get("per_flow") or {}).get("all")] if figures)
    if flow_summary:
        print(f"Test split per flow (all packets): {flow_summary}")
    print(f"Report: {written[evaluation.REPORT_FILE]}")
    return written[evaluation.REPORT_FILE]


def _device() -> str:
    import jax

    device = jax.devices()[0]
    return f"{device.platform}: {device.device_kind}"


# ------------------------------------------------------------------------- entry points
def main_for(dataset: str):
    """An absl main() that runs `dataset` with the flags of define_flags."""

    def main(argv):
        if len(argv) > 1:
            raise SystemExit(f"unexpected arguments: {argv[1:]}")
        if not FLAGS.output_dir:
            raise SystemExit("--output_dir is required (the run's folder)")
        if not FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)  # TFDS and TF log every file they open
        train_and_evaluate(Run.from_flags(dataset))

    return main


def run_for(dataset: str) -> None:
    """Define the flags and run `dataset`'s experiment (an entry point's __main__)."""
    define_flags()
    app.run(main_for(dataset))
