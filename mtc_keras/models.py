"""MTC (paper §3.3) and its baselines (§4.3, §5.2) as functional Keras models.

``build_model(name, dataset, **overrides)`` with ``name`` in ``MODEL_NAMES`` and ``dataset`` in
``DATASETS`` returns an uncompiled ``keras.Model`` whose input is named ``packet`` (uint8
[seq_len] bytes, ISCX) or ``features`` (float32 [seq_len] in [0, 1], CICIDS2017) and whose
outputs are unnormalised logits named after the tasks of ``mtc_keras.labels.TASKS`` (the losses
take logits: see ``mtc_keras.training``); ``probability_model(model)`` gives the same model with a
softmax on every output, which is what ``inputs.predict``, the SavedModel export and
``mtc-classify`` hand to users.

The model is an ``MtcModel``: a functional ``keras.Model`` that carries its loss weights in its
config (they survive a ``.keras`` round trip) and counts only real rows, those with a non-zero
sample weight, when it averages the loss over the batches of ``evaluate`` (see ``MtcModel``).

Layer names carry the branch they belong to (``transformer_``, ``cnn_``, ``fusion_``; heads are
``head_<task>_pool`` and the output layer ``<task>``): ``count_parameters`` relies on it.
"""

from __future__ import annotations

import keras
import numpy as np

from mtc_keras import layers as mtc_layers
from mtc_keras import registry
from mtc_keras.labels import TASKS

MODEL_NAMES = tuple(registry.MODELS)
BRANCHES = ("transformer", "cnn", "fusion", "heads")
HEAD_READOUTS = ("pool", "flatten")
HEAD_SOURCES = ("transformer", "cnn", "both")

# The datasets, their inputs (name, dtype, scale, seq_len), their presets (n_tokens, d_model,
# num_heads) and their loss weight ratios: mtc_keras.registry.
DATASETS = tuple(registry.DATASETS)

# Which branch feeds each task's head in MTC (§3.3.5); the baselines have one branch.
# USTC-TFC2016 follows CICIDS2017's split: the fine-grained task (app) on the Transformer
# branch, the coarse binary task (malware) on the CNN branch.
HEAD_BRANCH = {"app": "transformer", "traffic": "cnn", "aux": "cnn",
               "attack": "transformer", "mal": "cnn", "malware": "cnn"}

_TRANSFORMER_DEFAULTS = {
    "key_dim": None,  # None: d_model // num_heads (8 on ISCX, see TransformerEncoder)
    "ff_dim": 1024,
    "transformer_dropout": 0.1,
    "embedding_projection": True,
    # How a head reads a 3-D feature map: "pool" (global average pooling, §3.3.5) or
    # "flatten" (tokens flattened; a CNN map first average-pooled to n_tokens windows).
    # flatten by measurement (learning benchmark, 120 steps: app macro-F1 0.257 vs 0.181).
    "head_readout": "flatten",
    # "post" (the paper's Fig. 4a: LayerNorm after each residual sum) or "pre" (LayerNorm
    # before each sub-layer, one more after the branch's last encoder). pre by measurement:
    # through twelve post-norm encoders the share of the tokens that varies between packets
    # falls from 0.59 to 0.03 at initialisation (0.17 pre-norm), and app macro-F1 after 120
    # steps was 0.257 post-norm, 0.662 pre-norm.
    "encoder_norm": "pre",
}

_MTC_DEFAULTS = {
    **_TRANSFORMER_DEFAULTS,
    "encoder_repeats": (1, 5, 6),
    # Bottleneck widths per stage (Table 3): one bottleneck, then two per fused stage.
    "cnn_stages": (((50, 50, 100),),
                   ((50, 50, 100), (50, 50, 100)),
                   ((100, 100, 200), (100, 100, 200))),
    "cnn_kernel_size": 3,
    "cnn_dropout": 0.07,
    "fusion_merge": "add",
    # "none", not "layer": a LayerNorm per token rescales the exactly-zero windows past the end
    # of a short packet by up to ~1/sqrt(eps); learning benchmark, 150 steps (1 epoch), test app
    # macro-F1 0.719 without it, 0.673 with it (validation 0.728 vs 0.675; malware 0.981/0.979).
    "fusion_down_norm": "none",
    "fusion_up_norm": "batch",
    "fusion_interpolation": "linear",
    # 0.9, not Keras' 0.99: evaluation runs on the moving statistics, and at 0.99 they still
    # hold much of their initial values after a few hundred steps (the 1D-CNN baseline then
    # predicted one class at test time: app macro-F1 0.067 after 178 steps, 0.9: see the note).
    "batchnorm_momentum": 0.9,
    # {task: "transformer" | "cnn" | "both"} for the tasks whose head should not read the
    # branch HEAD_BRANCH gives it ("both": the two readouts concatenated). None: HEAD_BRANCH.
    # USTC app on the CNN measured 0.648 vs 0.673 test app macro-F1 after 150 steps: not taken.
    "head_branches": None,
}

_MODEL_DEFAULTS = {
    "mtc": _MTC_DEFAULTS,
    "mtc_2task": _MTC_DEFAULTS,
    # Scaled bytes into the embedding, not MTC's USTC-TFC2016 byte table (registry): with the
    # table its test app macro-F1 at the CPU default budget fell on all three seeds (README).
    "transformer": {**_TRANSFORMER_DEFAULTS, "num_encoders": 7, "max_wavelength": 10000.0,
                    "byte_embedding": 0},
    # Multi-task 1D-CNN after Deep Packet (§4.3.2): 200 filters per conv as in Deep Packet.
    "cnn": {"conv_filters": (200, 200), "conv_kernel_sizes": (4, 5), "conv_strides": (3, 1),
            "pool_size": 2, "dense_units": (200, 100, 50), "dense_dropout": 0.05,
            "batchnorm_momentum": 0.9},
}


def _tasks(name: str, dataset: str) -> tuple[str, ...]:
    tasks = tuple(TASKS[dataset])
    return tuple(t for t in tasks if t != "aux") if name == "mtc_2task" else tasks


def _check(name: str, dataset: str):
    if name not in MODEL_NAMES:
        raise ValueError(f"model name must be one of {MODEL_NAMES}, got {name!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def default_loss_weights(name: str, dataset: str) -> dict[str, float]:
    """The paper's loss weights of a model, normalised to sum to 1 (a weighted average)."""
    _check(name, dataset)
    ratios = registry.DATASETS[dataset].loss_ratios[name]
    total = sum(ratios.values())
    return {task: ratio / total for task, ratio in ratios.items()}


def default_config(name: str, dataset: str) -> dict:
    """Every hyper-parameter ``build_model`` accepts for this model, with its preset value."""
    _check(name, dataset)
    tasks = _tasks(name, dataset)
    return {
        "seq_len": registry.DATASETS[dataset].seq_len,
        **registry.DATASETS[dataset].model_defaults,
        **_MODEL_DEFAULTS[name],
        "num_classes": {task: len(TASKS[dataset][task]) for task in tasks},
        "loss_weights": default_loss_weights(name, dataset),
    }


def build_model(name: str, dataset: str, **overrides) -> keras.Model:
    """An uncompiled functional model; keyword arguments override ``default_config`` entries.

    ``num_classes`` (task -> class count) also chooses the tasks; the chosen loss weights are
    kept on the model (``MtcModel.loss_weights``) for ``training.compile_model``.
    """
    config = default_config(name, dataset)
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise TypeError(f"{name}/{dataset} has no hyper-parameter(s) {unknown}; "
                        f"valid: {sorted(config)}")
    config.update(overrides)
    if set(config["loss_weights"]) != set(config["num_classes"]):
        raise ValueError(f"loss_weights keys {sorted(config['loss_weights'])} differ from the "
                         f"tasks {sorted(config['num_classes'])}")
    if config.get("head_readout", "pool") not in HEAD_READOUTS:
        raise ValueError(f"head_readout must be one of {HEAD_READOUTS}, "
                         f"got {config['head_readout']!r}")
    if config.get("encoder_norm", "post") not in ENCODER_NORMS:
        raise ValueError(f"encoder_norm must be one of {ENCODER_NORMS}, "
                         f"got {config['encoder_norm']!r}")
    if config.get("key_dim") is None and "num_heads" in config:
        config["key_dim"] = max(1, config["d_model"] // config["num_heads"])

    spec = registry.DATASETS[dataset]
    input_name, input_dtype, scale = spec.input_name, spec.input_dtype, spec.input_scale
    inputs = keras.Input((config["seq_len"],), dtype=input_dtype, name=input_name)
    x = inputs
    if scale is not None:
        x = keras.layers.Rescaling(scale, name="scale_bytes")(x)

    branch_of = {}
    if name in ("mtc", "mtc_2task"):
        branch_of = {**HEAD_BRANCH, **(config.get("head_branches") or {})}
        unplaced = sorted(set(config["num_classes"]) - set(branch_of))
        if unplaced:
            raise ValueError(f"tasks {unplaced} have no branch in HEAD_BRANCH {HEAD_BRANCH}")
        bad = {t: b for t, b in branch_of.items() if b not in HEAD_SOURCES}
        if bad:
            raise ValueError(f"head_branches values must be one of {HEAD_SOURCES}, got {bad}")
    builder = {"mtc": _mtc, "mtc_2task": _mtc, "transformer": _transformer, "cnn": _cnn}[name]
    features = builder(x, config)  # branch -> feature tensor
    outputs = {}
    readout = config.get("head_readout", "pool")
    for task, classes in config["num_classes"].items():
        if len(features) == 1:
            sources = list(features.values())
        elif branch_of[task] == "both":
            sources = [features["transformer"], features["cnn"]]
        else:
            sources = [features[branch_of[task]]]
        outputs[task] = _head(sources, task, classes, readout, config.get("n_tokens"))
    return MtcModel(inputs, outputs, name=f"{name}_{dataset}",
                    loss_weights=dict(config["loss_weights"]))


def _head(sources, task: str, classes: int, readout: str, n_tokens: int | None):
    """§3.3.5: a readout of the branch's features (of each branch in ``sources``, concatenated),
    then a dense layer giving the task's logits (float32 under mixed precision). The softmax of
    the paper's heads is applied by the loss (``from_logits=True``) and by
    ``probability_model``, never inside the trained model."""
    readouts = []
    for i, features in enumerate(sources):
        prefix = f"head_{task}" if len(sources) == 1 else f"head_{task}_{i + 1}"
        if len(features.shape) == 3:
            if readout == "pool":
                features = keras.layers.GlobalAveragePooling1D(name=f"{prefix}_pool")(features)
            else:
                length = features.shape[1]
                if n_tokens and length > n_tokens and length % n_tokens == 0:
                    features = mtc_layers.WindowMean(n_tokens, name=f"{prefix}_pool")(features)
                features = keras.layers.Flatten(name=f"{prefix}_flatten")(features)
        readouts.append(features)
    features = readouts[0] if len(readouts) == 1 else keras.layers.Concatenate(
        name=f"head_{task}_concat")(readouts)
    return keras.layers.Dense(classes, dtype="float32", name=task)(features)


@keras.saving.register_keras_serializable(package="mtc_keras")
class MtcModel(keras.Model):
    """The functional model ``build_model`` returns: a ``keras.Model`` with two additions.

    Args:
        loss_weights: {task: weight}, the weights ``training.compile_model`` uses by default;
            kept in the config, so a reloaded ``.keras`` model still has them.

    ``evaluate`` (and fit's validation) averages the loss over batches weighted by each
    batch's real rows, the rows with a non-zero sample weight in some task, instead of Keras'
    fixed batch size: the padded rows that give every evaluation batch one shape
    (``inputs.load_split``) then count neither in ``loss`` (what the callbacks watch) nor in
    any metric. Keras' per-task ``<task>_loss`` logs remain plain averages over batches.
    """

    def __init__(self, *args, loss_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_weights = None if loss_weights is None else {
            str(task): float(weight) for task, weight in dict(loss_weights).items()}

    def get_config(self):
        weights = None if self.loss_weights is None else dict(self.loss_weights)
        return {**super().get_config(), "loss_weights": weights}

    # Keras' JAX trainer weights the loss tracker by the static batch size; this override
    # (of JAXTrainer._update_metrics_variables, keras 3.15) weights it by the real rows.
    # tests/test_training.py checks that padding leaves evaluate's loss unchanged.
    def _update_metrics_variables(self, metrics_variables, unscaled_loss, x, y, y_pred,
                                  sample_weight):
        if sample_weight is None or not isinstance(sample_weight, dict):
            return super()._update_metrics_variables(metrics_variables, unscaled_loss, x, y,
                                                     y_pred, sample_weight)
        from keras.src import backend as keras_backend

        rows = None
        for weight in sample_weight.values():
            present = keras.ops.cast(keras.ops.reshape(weight, (-1,)) > 0, "float32")
            rows = present if rows is None else keras.ops.maximum(rows, present)
        with keras_backend.StatelessScope(state_mapping=list(
                zip(self.metrics_variables, metrics_variables))) as scope:
            self._loss_tracker.update_state(unscaled_loss, sample_weight=keras.ops.sum(rows))
            logs = self.compute_metrics(x, y, y_pred, sample_weight)
        new_metrics_variables = []
        for ref_v in self.metrics_variables:
            new_v = scope.get_current_value(ref_v)
            new_metrics_variables.append(ref_v.value if new_v is None else new_v)
        return logs, new_metrics_variables


def softmax(logits) -> "np.ndarray":
    """Row-wise softmax of a numpy array of logits (float64 inside, float32 out)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def predict_arrays(model: keras.Model, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """{task: [n, classes] probabilities} of a logit-headed model on numpy inputs, in padded
    batches of one shape (``mtc_keras.batching.padded_predict``: one XLA compilation)."""
    from mtc_keras.batching import padded_predict

    return padded_predict(lambda chunk: {task: softmax(value) for task, value in
                                         model.predict_on_batch(chunk).items()}, x, batch_size)


def probability_model(model: keras.Model) -> keras.Model:
    """``model`` with a softmax on every output: {task: probabilities}, same input and names."""
    (inp,) = model.inputs
    x = keras.Input(inp.shape[1:], dtype=inp.dtype, name=inp.name)
    logits = model(x)
    outputs = {task: keras.layers.Softmax(dtype="float32", name=task)(value)
               for task, value in logits.items()}
    return keras.Model(x, outputs, name=f"{model.name}_probabilities")


ENCODER_NORMS = ("post", "pre")


def _encoder(config, name):
    return mtc_layers.TransformerEncoder(
        config["num_heads"], config["key_dim"], ff_dim=config["ff_dim"],
        dropout=config["transformer_dropout"], norm_first=config["encoder_norm"] == "pre",
        name=name)


def _final_norm(tokens, config, name="transformer_final_norm"):
    """Pre-norm stacks end with a LayerNorm (their residual stream is never normalised)."""
    if config["encoder_norm"] != "pre":
        return tokens
    return keras.layers.LayerNormalization(epsilon=1e-5, name=name)(tokens)


def _embed(x, config):
    return mtc_layers.TokenEmbedding(config["n_tokens"], config["d_model"],
                                     projection=config["embedding_projection"],
                                     byte_embedding=config["byte_embedding"],
                                     name="transformer_embedding")(x)


def _mtc(x, config):
    """MTC: parallel Transformer and 1D-CNN branches, fused in every stage after the first."""
    stages, repeats = config["cnn_stages"], config["encoder_repeats"]
    if len(stages) != len(repeats):
        raise ValueError(f"cnn_stages has {len(stages)} stages, encoder_repeats {len(repeats)}")
    if any(len(stage) < 2 for stage in stages[1:]):
        raise ValueError("every fused stage (after the first) needs at least two bottlenecks")
    seq_len = config["seq_len"]
    tokens = _embed(x, config)
    cnn = keras.layers.Reshape((seq_len, 1), name="cnn_channels")(x)

    def bottleneck(filters, stage, index):
        return mtc_layers.CnnBottleneck(filters, kernel_size=config["cnn_kernel_size"],
                                        dropout=config["cnn_dropout"],
                                        merge=config["fusion_merge"],
                                        name=f"cnn_s{stage}_b{index}")

    for s, (stage, m) in enumerate(zip(stages, repeats), start=1):
        if s == 1:  # no fusion yet (§3.3.1): the branches run side by side
            for e in range(1, m + 1):
                tokens = _encoder(config, f"transformer_s{s}_e{e}")(tokens)
            for b, filters in enumerate(stage, start=1):
                cnn = bottleneck(filters, s, b)(cnn)
            continue
        # CNN -> Transformer from the first bottleneck's 1xk conv ...
        cnn, tap = bottleneck(stage[0], s, 1)(cnn, return_tap=True)
        tokens = mtc_layers.CnnToTransformerFusion(
            norm=config["fusion_down_norm"], merge=config["fusion_merge"],
            batchnorm_momentum=config["batchnorm_momentum"],
            name=f"fusion_s{s}_down")([tap, tokens])
        for e in range(1, m + 1):
            tokens = _encoder(config, f"transformer_s{s}_e{e}")(tokens)
        # ... Transformer -> CNN after the second bottleneck's first 1x1 conv.
        injected = mtc_layers.TransformerToCnnFusion(
            stage[1][0], seq_len, norm=config["fusion_up_norm"],
            interpolation=config["fusion_interpolation"],
            batchnorm_momentum=config["batchnorm_momentum"], name=f"fusion_s{s}_up")(tokens)
        cnn = bottleneck(stage[1], s, 2)(cnn, injected=injected)
        for b, filters in enumerate(stage[2:], start=3):
            cnn = bottleneck(filters, s, b)(cnn)
    return {"transformer": _final_norm(tokens, config), "cnn": cnn}


def _transformer(x, config):
    """Multi-task Transformer (§4.3.1): embedding, sinusoidal positions, stacked encoders."""
    tokens = _embed(x, config)
    tokens = mtc_layers.SinusoidalPositionEncoding(config["max_wavelength"],
                                                   name="transformer_position")(tokens)
    for e in range(1, config["num_encoders"] + 1):
        tokens = _encoder(config, f"transformer_e{e}")(tokens)
    return {"transformer": _final_norm(tokens, config)}


def _cnn(x, config):
    """Multi-task 1D-CNN (§4.3.2): conv k4 s3, conv k5 s1 (each with BatchNorm and ReLU),
    max-pool 2, then dense 200/100/50 with ReLU and dropout 0.05."""
    lengths = [len(config[k]) for k in ("conv_filters", "conv_kernel_sizes", "conv_strides")]
    if len(set(lengths)) != 1:
        raise ValueError("conv_filters, conv_kernel_sizes and conv_strides need equal lengths")
    h = keras.layers.Reshape((config["seq_len"], 1), name="cnn_channels")(x)
    for i, (filters, kernel, stride) in enumerate(
            zip(config["conv_filters"], config["conv_kernel_sizes"], config["conv_strides"]), 1):
        h = keras.layers.Conv1D(filters, kernel, strides=stride, name=f"cnn_conv{i}")(h)
        h = keras.layers.BatchNormalization(momentum=config["batchnorm_momentum"],
                                            name=f"cnn_bn{i}")(h)
        h = keras.layers.ReLU(name=f"cnn_relu{i}")(h)
    h = keras.layers.MaxPooling1D(config["pool_size"], name="cnn_pool")(h)
    h = keras.layers.Flatten(name="cnn_flatten")(h)
    for i, units in enumerate(config["dense_units"], 1):
        h = keras.layers.Dense(units, activation="relu", name=f"cnn_fc{i}")(h)
        h = mtc_layers.HashDropout(config["dense_dropout"], name=f"cnn_fc{i}_dropout")(h)
    return {"cnn": h}


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Parameters (trainable and BatchNorm statistics) per branch, from the layer names.

    Returns ``{"transformer", "cnn", "fusion", "heads", "total"}``; raises if a layer with
    weights belongs to no branch, so the parts always add up to the total.
    """
    counts = dict.fromkeys(BRANCHES, 0)
    outputs = set(model.output_names)
    for layer in model.layers:
        n = layer.count_params() if layer.weights else 0
        if not n:
            continue
        if layer.name in outputs or layer.name.startswith("head_"):
            branch = "heads"
        else:
            branch = layer.name.split("_", 1)[0]
        if branch not in counts:
            raise ValueError(f"layer {layer.name!r} has {n} parameters but no branch prefix")
        counts[branch] += n
    counts["total"] = sum(counts.values())
    assert counts["total"] == model.count_params()
    return counts
