"""The learning benchmark: does full-size MTC learn real traffic, and beat its baselines?

    python -m benchmarks.learning                      # CPU default: about 10 minutes in all
    python -m benchmarks.learning --epochs 30 --schedule cosine   # to convergence (a GPU)
    python -m benchmarks.learning --models mtc --steps 150 --optimizer adamw   # one A/B arm
    bash benchmarks/gpu_learning.sh      # on a lent GPU machine: 30 epochs, three seeds

Data: the real USTC-TFC2016 captures in ``../shared/data/ustc-tfc2016`` (``--manual_dir``; or,
with ``--dataset iscx``, an ISCX-shaped manual folder such as the demo's captures),
through the project's own preprocessing and its leak-free ``flow_split`` (no flow and no vector
in two splits; ``mtc_keras.ustc``; ``--config paper`` for the per-packet split). Without that folder the benchmark says so and exits 1.

On the same split and the same budget it trains full-size MTC (encoder repeats 1,5,6) with the
default recipe (``mtc_keras.training``'s defaults), the multi-task Transformer and 1D-CNN
baselines, and fits the shortcut probes of ``experiments.probe`` (gradient-boosted trees on
every header field, the same on ports and length only, logistic regression on 64 bytes), each
with its divergence guard. The budget is ``--epochs`` (every model the same epochs), or
``--steps``, or ``--minutes`` of MTC training (the default): MTC's rate is timed on a few steps,
which fixes its steps, and the baselines train MTC's number of steps, so all models see the
same examples. Each model is evaluated on the validation split ``--evals`` times along the way
(its learning curve) and once on the test split at the end: per packet, per flow (each test
flow judged from its first 5 packets and from all of them, by ``mtc_keras.flows``, the rule
``mtc-classify`` uses), on the forged test splits (``mtc_keras.perturb.forge``: the hosts'
fields redrawn per flow, and the server's port too), and, with ``--perturb``, with one header
field at a time redrawn from the training split (shortcut reliance). ``--identifiers`` is the
identifier arm of every model and probe (keep, redraw: every training batch forged afresh,
mask: the hosts' fields zeroed in every split; default: the dataset's, ``mtc_keras.registry``).

It trains with its own loop of ``train_on_batch`` calls rather than the experiments' steps
(``experiments.common``: a TFDS build, tf.data and ``model.fit`` with ReduceLROnPlateau and
EarlyStopping): it needs a budget of exact steps shared by all models, validation points at
chosen steps and a cosine decay over exactly those steps, from the packets in memory (no TFDS
build, so it runs where TensorFlow is not installed, as on the lent GPU machines). The model,
the optimizer, the loss and the padded predict are the package's (``models.build_model``,
``training.compile_model``, ``models.predict_arrays``).

Prints a table of per-packet and per-flow macro-F1, samples/s and seconds per model, the
per-flow figures of MTC and the strongest probe, and as its last line
``mtc_over_best_probe=<MTC's test app macro-F1 minus the strongest probe's>``. ``--json``
writes everything, curves, per-class test F1 and the probes' training fit included.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

DATASET = "ustc_tfc2016"
DEFAULT_MANUAL_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                  "ustc-tfc2016")


def _parser() -> argparse.ArgumentParser:
    # argparse, like every benchmark: a benchmark is a script with a few numeric knobs, run
    # from the shell or CI, never composed with the package's absl apps.
    import mtc_keras  # noqa: F401  (sets KERAS_BACKEND=jax before Keras loads)
    from experiments.probe import DEFAULT_PROBES
    from mtc_keras import perturb, training

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default=DATASET, choices=("ustc_tfc2016", "iscx"),
                   help="ustc_tfc2016 (the real captures, the default) or iscx (e.g. the demo's "
                        "captures: --manual_dir runs/demo_data/captures)")
    p.add_argument("--manual_dir", default=DEFAULT_MANUAL_DIR)
    p.add_argument("--config", default="flow_split", choices=("flow_split", "paper"),
                   help="the split: flow_split (leak-free, the default) or the per-packet paper")
    p.add_argument("--models", default="mtc,transformer,cnn")
    p.add_argument("--probes", default=",".join(DEFAULT_PROBES))
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None,
                        help="MTC's training time (default 6: about 10 minutes in all on 2 cores)")
    budget.add_argument("--steps", type=int, default=None)
    budget.add_argument("--epochs", type=float, default=None)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--eval_batch_size", type=int, default=256)
    p.add_argument("--evals", type=int, default=4, help="validation points on each curve")
    p.add_argument("--test_curve", action="store_true",
                   help="also the test figures at every validation point (reported, never used "
                        "to choose anything)")
    p.add_argument("--max_per_class", type=int, default=None,
                   help="cap on packets per class (ISCX: per app; default: the builder config's)")
    p.add_argument("--seed", type=int, default=0)
    # The recipe (defaults: mtc_keras.training's, the one place they live); for A/B arms.
    p.add_argument("--optimizer", default=training.DEFAULT_OPTIMIZER, choices=training.OPTIMIZERS)
    p.add_argument("--learning_rate", type=float, default=training.DEFAULT_LEARNING_RATE)
    p.add_argument("--weight_decay", type=float, default=training.DEFAULT_WEIGHT_DECAY)
    p.add_argument("--warmup_steps", type=int, default=training.DEFAULT_WARMUP_STEPS)
    p.add_argument("--schedule", default=training.DEFAULT_SCHEDULE, choices=training.SCHEDULES,
                   help="after the warmup: a constant rate, or a cosine decay to 0 over the "
                        "model's training steps")
    p.add_argument("--probability_heads", action="store_true",
                   help="A/B arm: softmax inside the model and a cross-entropy on probabilities "
                        "(from_logits=False), as before logit heads")
    p.add_argument("--overrides", default="{}",
                   help="JSON build_model overrides for every model, e.g. "
                        "'{\"head_readout\": \"pool\"}'")
    p.add_argument("--identifiers", default=None, choices=perturb.IDENTIFIER_ARMS,
                   help="keep (train on packets as captured), redraw (forge every training "
                        "batch afresh) or mask (zero the hosts' fields in every split); default: "
                        "the dataset's (mtc_keras.registry)")
    p.add_argument("--perturb", action="store_true",
                   help="also each model's and probe's test figures with one header field at a "
                        "time redrawn from the training split (mtc_keras.perturb)")
    p.add_argument("--json", default=None, help="write all results here")
    return p


def load_data(manual_dir: str, max_per_class: int | None, config: str = "flow_split",
              dataset: str = DATASET) -> dict:
    """{split: {"packets", "labels", "flow_ids"}}: exactly what the TFDS builder writes for
    ``config`` (the dataset module's ``load_packets``), in capture order, without a TFDS build.
    ``max_per_class``: USTC-TFC2016's per-class cap, ISCX's per-app cap."""
    from mtc_keras import iscx, ustc

    module, cap = {"ustc_tfc2016": (ustc, "max_per_class"),
                   "iscx": (iscx, "max_packets_per_app")}[dataset]
    kwargs = {} if max_per_class is None else {cap: max_per_class}
    splits = module.load_packets(manual_dir, config=config, **kwargs)
    return {name: {"packets": packets, "labels": labels, "flow_ids": flow_ids}
            for name, (packets, labels, flow_ids) in splits.items()}


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless shuffled index batches of exactly batch_size (epochs concatenated)."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def macro_f1(metrics: dict) -> dict:
    return {task: None if m["macro_f1"] is None else round(float(m["macro_f1"]), 4)
            for task, m in metrics.items()}


def flow_f1(metrics: dict) -> dict:
    """{task: {"first_5": macro-F1, "all": macro-F1}} of ``evaluation.evaluate``'s metrics."""
    return {task: {name: None if figures is None else round(float(figures["macro_f1"]), 4)
                   for name, figures in (m.get("per_flow") or {}).items()}
            for task, m in metrics.items()}


def test_figures(predict, split: dict, pools: dict, seed: int, dataset: str, *,
                 identifiers: str = "keep", one_field: bool = False) -> dict:
    """Per-packet, per-class, per-flow and forged figures (and with ``one_field`` the
    shortcut-reliance ones) of the probabilities ``predict(packets)`` gives on the test split;
    ``pools``: the training split's ``perturb.field_pools``. The packets are what a model of arm
    ``identifiers`` reads (``perturb.model_inputs``), forged first where forged."""
    from mtc_keras import evaluation, perturb

    def read(packets):
        return predict(perturb.model_inputs(packets, identifiers))

    probabilities = read(split["packets"])
    labels = {task: split["labels"][task] for task in probabilities}
    # Rows are in capture order (ustc.load_packets): a flow's first rows are its first packets.
    order = np.arange(len(split["packets"]))
    metrics = evaluation.evaluate(labels, probabilities, dataset, flow_ids=split["flow_ids"],
                                  order=order)
    out = {"test_macro_f1": macro_f1(metrics), "test_per_flow_f1": flow_f1(metrics),
           "test_per_class_f1": {task: {name: round(c["f1"], 4)
                                        for name, c in m["per_class"].items() if c["support"]}
                                 for task, m in metrics.items()}}
    evaluation.evaluate_changed_tests(metrics, labels, read, split["packets"], pools, dataset,
                                      flow_ids=split["flow_ids"], order=order, seed=seed,
                                      one_field=one_field)
    return {**out, **changed_figures(metrics)}


def changed_figures(metrics: dict) -> dict:
    """{"forged": {test: {task: figures}}} and, where measured, {"shortcut_reliance": {task:
    ...}} of metrics that ``evaluation.evaluate_changed_tests`` filled."""
    from mtc_keras import perturb

    out = {"forged": {test: {task: m["forged"][test] for task, m in metrics.items()}
                      for test in perturb.FORGED_TESTS}}
    if any("shortcut_reliance" in m for m in metrics.values()):
        out["shortcut_reliance"] = {task: m["shortcut_reliance"] for task, m in metrics.items()}
    return out


def split_f1(model, split: dict, batch_size: int, dataset: str) -> dict:
    from mtc_keras import evaluation
    from mtc_keras.models import predict_arrays

    probabilities = predict_arrays(model, split["packets"], batch_size)
    return macro_f1(evaluation.evaluate_predictions(
        {task: split["labels"][task] for task in probabilities}, probabilities, dataset))


def build(name: str, args, steps: int):
    """(the model to read predictions from, the model to train) for ``steps`` of training."""
    import keras

    from mtc_keras import models, training

    keras.utils.set_random_seed(args.seed)
    overrides = json.loads(args.overrides)
    config = models.default_config(name, args.dataset)
    model = models.build_model(name, args.dataset, **{k: v for k, v in overrides.items()
                                                      if k in config})
    recipe = {"optimizer": args.optimizer, "learning_rate": args.learning_rate,
              "weight_decay": args.weight_decay, "warmup_steps": args.warmup_steps,
              "decay_steps": training.decay_steps_for(args.schedule, steps)}
    if not args.probability_heads:
        return model, training.compile_model(model, **recipe)
    # The pre-logits recipe, for the A/B table: softmax inside, cross-entropy on probabilities.
    from mtc_keras.layers import MaskedSparseCategoricalCrossentropy

    optimizer = recipe.pop("optimizer")
    trained = models.probability_model(model)
    trained.compile(optimizer=training.make_optimizer(optimizer, **recipe),
                    loss={t: MaskedSparseCategoricalCrossentropy(from_logits=False)
                          for t in model.output_names},
                    loss_weights=model.loss_weights, jit_compile=True)
    return model, trained


def steps_for_minutes(name: str, data: dict, args, minutes: float) -> int:
    """The steps ``name`` trains in ``minutes`` here: compile, then time 3 steps."""
    _, trained = build(name, args, 0)
    train = data["train"]
    batches = _batches(len(train["packets"]), args.batch_size, np.random.default_rng(args.seed))

    def step():
        index = next(batches)
        trained.train_on_batch(train["packets"][index],
                               {t: train["labels"][t][index] for t in trained.output_names})

    step()  # compiles
    start = time.perf_counter()
    for _ in range(3):
        step()
    return max(2, int(minutes * 60 / ((time.perf_counter() - start) / 3)))


def train_model(name: str, data: dict, args, steps: int, pools: dict) -> dict:
    """Train one model for ``steps`` with the identifier arm ``args.identifiers``, with a
    validation curve; test at the end."""
    from mtc_keras import perturb
    from mtc_keras.models import predict_arrays

    model, trained = build(name, args, steps)
    train, test = data["train"], data["test"]
    validation = dict(data["validation"], packets=perturb.model_inputs(
        data["validation"]["packets"], args.identifiers))
    n_train = len(train["packets"])
    batches = _batches(n_train, args.batch_size, np.random.default_rng(args.seed))
    tasks = list(model.output_names)
    # keep and mask read fixed packets (mask them once); redraw forges every batch afresh
    inputs = perturb.training_inputs(args.identifiers, pools, args.seed)
    fixed = None if args.identifiers == "redraw" else inputs(train["packets"])

    def batch(index):
        x = (fixed[index] if fixed is not None
             else inputs(train["packets"][index], train["flow_ids"][index], index))
        return x, {t: train["labels"][t][index] for t in tasks}

    first = time.perf_counter()
    trained.train_on_batch(*batch(next(batches)))  # compiles
    compile_seconds = time.perf_counter() - first
    step, train_seconds, curve, losses = 1, 0.0, [], []
    marks = sorted({max(1, round(steps * (i + 1) / args.evals)) for i in range(args.evals)})
    eval_seconds = 0.0
    while step <= steps:
        if step in marks:
            start = time.perf_counter()
            point = split_f1(model, validation, args.eval_batch_size, args.dataset)
            curve.append({"step": step, "epochs": round(step * args.batch_size / n_train, 3),
                          "train_loss": round(float(np.mean(losses[-20:])), 4) if losses else None,
                          "validation_macro_f1": point})
            if args.test_curve:  # reported only: nothing is chosen on it
                curve[-1]["test_macro_f1"] = split_f1(model, test, args.eval_batch_size,
                                                      args.dataset)
            eval_seconds += time.perf_counter() - start
            print(f"  {name} step {step}/{steps} ({curve[-1]['epochs']:.2f} epochs) "
                  f"loss {curve[-1]['train_loss']} validation macro-F1 {point}"
                  + (f" test macro-F1 {curve[-1]['test_macro_f1']}" if args.test_curve else ""),
                  flush=True)
        if step == steps:
            break
        start = time.perf_counter()
        result = trained.train_on_batch(*batch(next(batches)), return_dict=True)
        train_seconds += time.perf_counter() - start
        losses.append(float(result["loss"]))
        step += 1
    start = time.perf_counter()
    figures = test_figures(lambda x: predict_arrays(model, x, args.eval_batch_size), test, pools,
                           args.seed, args.dataset, identifiers=args.identifiers,
                           one_field=args.perturb)
    eval_seconds += time.perf_counter() - start
    trained_steps = steps - 1  # the compiling step is not timed
    return {"model": name, "identifiers": args.identifiers, "steps": steps,
            "epochs": round(steps * args.batch_size / n_train, 3),
            **figures, "curve": curve, "parameters": model.count_params(),
            "samples_per_second": round(trained_steps * args.batch_size / train_seconds, 1)
            if train_seconds else None,
            "train_seconds": round(train_seconds, 1), "compile_seconds": round(compile_seconds, 1),
            "eval_seconds": round(eval_seconds, 1)}


def probe_splits(data: dict, identifiers: str, pools: dict, seed: int) -> dict:
    """The splits as experiments.probe reads them for arm ``identifiers`` (rows in capture
    order; the test split keeps its vectors as captured, to forge)."""
    from experiments.probe import ProbeSplit
    from mtc_keras import perturb

    training = perturb.training_inputs(identifiers, pools, seed)
    out = {}
    for name, split in data.items():
        order = np.arange(len(split["packets"]))
        inputs = (training(split["packets"], split["flow_ids"], order) if name == "train"
                  else perturb.model_inputs(split["packets"], identifiers))
        out[name] = ProbeSplit.from_packets(inputs, split["labels"], split["flow_ids"], order,
                                            kept=split["packets"] if name == "test" else None)
    return out


def run_probe(name: str, splits: dict, pools: dict, args) -> dict:
    """One probe of experiments.probe, fitted as it fits it (its guard included)."""
    from experiments import probe as probes

    start = time.perf_counter()
    metrics, facts = probes.run_probe(name, splits, seed=args.seed, dataset=args.dataset,
                                      pools=pools, identifiers=args.identifiers,
                                      one_field=args.perturb)
    return {"model": f"probe_{name}", "identifiers": args.identifiers,
            "test_macro_f1": macro_f1(metrics), "test_per_flow_f1": flow_f1(metrics),
            **changed_figures(metrics), "fit": facts["fit"],
            "train_seconds": round(time.perf_counter() - start, 1)}


def _cell(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def forged_figure(result: dict, test: str | None, verdict: str | None = None, task: str = "app"):
    """A result's ``task`` macro-F1 as captured (``test`` None) or on a forged test, per packet
    (``verdict`` None) or per flow."""
    if test is None:
        return (result["test_macro_f1"][task] if verdict is None
                else result["test_per_flow_f1"][task][verdict])
    figures = result["forged"][test][task]
    return figures["macro_f1"] if verdict is None else figures["per_flow"][verdict]


def forged_cells(result: dict) -> list[str]:
    """App macro-F1 as captured, forged, forged with ports: per packet, then per flow (first 5)."""
    from mtc_keras import perturb

    return [_cell(forged_figure(result, test, verdict)) for verdict in (None, "first_5")
            for test in (None,) + tuple(perturb.FORGED_TESTS)]


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if not os.path.isdir(args.manual_dir):
        print(f"error: {args.manual_dir} is missing: the learning benchmark needs the real "
              "USTC-TFC2016 captures (see ../shared/data/README.md or BUILD.md)", file=sys.stderr)
        return 1
    from mtc_keras import perturb, registry

    if args.identifiers is None:
        args.identifiers = registry.dataset(args.dataset).identifiers
    started = time.perf_counter()
    data = load_data(args.manual_dir, args.max_per_class, args.config, args.dataset)
    sizes = {split: len(data[split]["packets"]) for split in ("train", "validation", "test")}
    print(f"{args.dataset} {args.config}: {sizes} packets; identifiers: {args.identifiers}",
          flush=True)
    train = data["train"]
    pools = perturb.field_pools(train["packets"], flow_ids=train["flow_ids"],
                                order=np.arange(len(train["packets"])))
    results = []
    probe_names = [p for p in args.probes.split(",") if p]
    if probe_names:
        splits = probe_splits(data, args.identifiers, pools, args.seed)
        for name in probe_names:
            results.append(run_probe(name, splits, pools, args))
            print(f"  {results[-1]['model']}: test macro-F1 {results[-1]['test_macro_f1']}, "
                  f"per flow {results[-1]['test_per_flow_f1']}, forged "
                  f"{forged_cells(results[-1])}, fit {results[-1]['fit']}", flush=True)
    steps = args.steps
    if args.epochs is not None:
        steps = max(2, round(args.epochs * sizes["train"] / args.batch_size))
    model_names = [m for m in args.models.split(",") if m]
    if steps is None and model_names:
        steps = steps_for_minutes(model_names[0], data, args,
                                  args.minutes if args.minutes is not None else 6.0)
    for name in model_names:  # every model the same steps
        results.append(train_model(name, data, args, steps, pools))

    tasks = list(results[-1]["test_macro_f1"]) if results else []
    print(f"\n| model | steps | epochs | {' | '.join(f'test {t} macro-F1' for t in tasks)} "
          f"| app per flow, first 5 / all | samples/s | train s |")
    print("|---|---|---|" + "---|" * len(tasks) + "---|---|---|")
    for r in results:
        f1 = " | ".join(_cell(r["test_macro_f1"].get(t)) for t in tasks)
        flow = r["test_per_flow_f1"].get("app", {})
        print(f"| {r['model']} | {r.get('steps', '')} | {r.get('epochs', '')} | {f1} | "
              f"{_cell(flow.get('first_5'))} / {_cell(flow.get('all'))} | "
              f"{r.get('samples_per_second', '')} | {r['train_seconds']} |")
    print(f"\n| model | identifiers | app: as captured | forged | forged, ports too "
          f"| per flow (first 5): as captured | forged | forged, ports too |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['identifiers']} | " + " | ".join(forged_cells(r)) + " |")
    if args.perturb:
        names = list(perturb.PERTURBATIONS)
        print(f"\n| model | test app macro-F1 | {' | '.join(names)} |  (app macro-F1 with the "
              "field redrawn from train)")
        print("|---|---|" + "---|" * len(names))
        for r in results:
            cells = " | ".join(_cell(r["shortcut_reliance"]["app"][n]["macro_f1"]) for n in names)
            print(f"| {r['model']} | {_cell(r['test_macro_f1']['app'])} | {cells} |")
    print(f"wall seconds: {time.perf_counter() - started:.0f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "sizes": sizes, "results": results}, f, indent=2)
    by_name = {r["model"]: r for r in results}
    probes = [r for r in results if r["model"].startswith("probe_")]
    if "mtc" in by_name and probes:
        best = max(probes, key=lambda r: r["test_macro_f1"]["app"])
        mtc = by_name["mtc"]
        for verdict in ("first_5", "all"):
            gap = mtc["test_per_flow_f1"]["app"][verdict] - max(
                r["test_per_flow_f1"]["app"][verdict] for r in probes)
            print(f"mtc_flow_{verdict}_over_best_probe={gap:.4f}")
        print(f"strongest probe: {best['model']} (test app macro-F1 "
              f"{best['test_macro_f1']['app']:.4f})")
        for test in perturb.FORGED_TESTS:  # the strongest probe in each forged column
            strongest = max(probes, key=lambda r: forged_figure(r, test))
            print(f"mtc_{test}_over_best_probe="
                  f"{forged_figure(mtc, test) - forged_figure(strongest, test):.4f} "
                  f"(MTC {forged_figure(mtc, test):.4f}, {strongest['model']} "
                  f"{forged_figure(strongest, test):.4f})")
        print(f"mtc_over_best_probe={mtc['test_macro_f1']['app'] - best['test_macro_f1']['app']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
