"""Models of mtc_keras.models: named outputs, learning, save/load, presets, parameter counts.

Training tests use small configurations with fixed shapes (every XLA compile costs seconds);
the full-size presets are only built and run forward.
"""

import numpy as np
import pytest

import mtc_keras  # noqa: F401  (sets KERAS_BACKEND=jax)
import keras

from mtc_keras import models, training
from mtc_keras.layers import TransformerEncoder
from mtc_keras.labels import MISSING, TASKS

# Two stages keep compiles short and still cover a fused stage (with a widening bottleneck).
SMALL_CNN_STAGES = (((4, 4, 8),), ((4, 4, 8), (8, 8, 16)))
SMALL = {
    ("mtc", "iscx"): dict(seq_len=60, n_tokens=6, d_model=10, num_heads=2, ff_dim=16,
                          encoder_repeats=(1, 1), cnn_stages=SMALL_CNN_STAGES),
    ("transformer", "iscx"): dict(seq_len=60, n_tokens=6, d_model=10, num_heads=2, ff_dim=16,
                                  num_encoders=2),
    ("cnn", "iscx"): dict(seq_len=60, conv_filters=(8, 8), dense_units=(16, 8, 8)),
    ("mtc", "cicids2017"): dict(ff_dim=16, encoder_repeats=(1, 1), cnn_stages=SMALL_CNN_STAGES),
    ("transformer", "cicids2017"): dict(ff_dim=16, num_encoders=2),
    ("cnn", "cicids2017"): dict(conv_filters=(8, 8), dense_units=(16, 8, 8)),
}
for _name in ("mtc", "transformer", "cnn"):  # USTC-TFC2016 takes ISCX's packets
    SMALL[_name, "ustc_tfc2016"] = SMALL[_name, "iscx"]
for _dataset in models.DATASETS:
    SMALL["mtc_2task", _dataset] = SMALL["mtc", _dataset]
ALL = sorted(SMALL)


def _expected_tasks(name, dataset):
    return [t for t in TASKS[dataset] if not (name == "mtc_2task" and t == "aux")]


def _learnable_data(dataset, seq_len, tasks, n=256, seed=0):
    """Inputs whose labels are a function of the input (so a model can learn them)."""
    rng = np.random.default_rng(seed)
    if dataset in ("iscx", "ustc_tfc2016"):
        x = rng.integers(0, 256, (n, seq_len)).astype("uint8")
        signal = x[:, : seq_len // 2].astype("float32").mean(1) / 255.0
    else:
        x = rng.random((n, seq_len)).astype("float32")
        signal = x[:, : seq_len // 2].mean(1)
    rank = np.argsort(np.argsort(signal)) / n  # uniform in [0, 1)
    labels = {task: (rank * min(len(TASKS[dataset][task]), 3)).astype("int32") for task in tasks}
    for task in labels:
        if task in ("traffic", "aux"):
            labels[task][::7] = MISSING  # Tor captures have no traffic label
    return x, labels


@pytest.mark.parametrize("name, dataset", ALL)
def test_model_outputs_learns_and_round_trips(name, dataset, tmp_path):
    model = models.build_model(name, dataset, **SMALL[name, dataset])
    tasks = _expected_tasks(name, dataset)
    # Named input and named outputs with the class counts of labels.TASKS.
    input_name = {"iscx": "packet", "cicids2017": "features", "ustc_tfc2016": "packet"}[dataset]
    assert [t.name for t in model.inputs] == [input_name]
    assert model.inputs[0].dtype == {"iscx": "uint8", "cicids2017": "float32",
                                     "ustc_tfc2016": "uint8"}[dataset]
    assert sorted(model.output_names) == sorted(tasks)
    seq_len = model.inputs[0].shape[1]
    x, labels = _learnable_data(dataset, seq_len, tasks)
    logits = model(x[:16], training=False)  # one batch shape for every eager call
    assert set(logits) == set(tasks)
    probs = models.probability_model(model)(x[:16], training=False)
    for task in tasks:
        z = keras.ops.convert_to_numpy(logits[task])
        p = keras.ops.convert_to_numpy(probs[task])
        assert z.shape == p.shape == (16, len(TASKS[dataset][task]))
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(p, models.softmax(z), rtol=1e-4, atol=1e-6)

    # One epoch lowers the (finite) weighted loss.
    training.compile_model(model, learning_rate=3e-3, warmup_steps=0)  # 8 steps: no warmup
    before = model.evaluate(x, labels, batch_size=64, verbose=0, return_dict=True)
    model.fit(x, labels, batch_size=32, epochs=1, verbose=0, shuffle=False)
    after = model.evaluate(x, labels, batch_size=64, verbose=0, return_dict=True)
    assert np.isfinite(before["loss"]) and np.isfinite(after["loss"])
    assert after["loss"] < before["loss"]

    # .keras round trip: same architecture, same weights, same predictions.
    path = tmp_path / f"{name}_{dataset}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.count_params() == model.count_params()
    assert loaded.loss_weights == pytest.approx(model.loss_weights)  # kept in the config
    assert type(loaded.optimizer).__name__ == "WarmupAdam"
    want, got = model(x[:16], training=False), loaded(x[:16], training=False)
    for task in tasks:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got[task]),
                                   keras.ops.convert_to_numpy(want[task]), atol=1e-6)


@pytest.mark.parametrize("readout", models.HEAD_READOUTS)
def test_head_readout_choices_build_and_learn(readout):
    model = models.build_model("mtc", "iscx", head_readout=readout, **SMALL["mtc", "iscx"])
    # pool: [batch, features] averaged over tokens / positions; flatten: every token kept
    # (the CNN map pooled to n_tokens windows first).
    app_in = model.get_layer("app").input.shape[-1]
    traffic_in = model.get_layer("traffic").input.shape[-1]
    assert (app_in, traffic_in) == ((10, 16) if readout == "pool" else (6 * 10, 6 * 16))
    x, labels = _learnable_data("iscx", 60, list(TASKS["iscx"]))
    training.compile_model(model, learning_rate=3e-3, warmup_steps=0)  # 8 steps: no warmup
    before = model.evaluate(x, labels, batch_size=64, verbose=0, return_dict=True)["loss"]
    model.fit(x, labels, batch_size=32, epochs=1, verbose=0, shuffle=False)
    assert model.evaluate(x, labels, batch_size=64, verbose=0, return_dict=True)["loss"] < before
    with pytest.raises(ValueError, match="head_readout"):
        models.build_model("mtc", "iscx", head_readout="max")


def test_pre_norm_encoders_end_with_a_layer_norm_and_round_trip(tmp_path):
    model = models.build_model("transformer", "iscx", encoder_norm="pre",
                               **SMALL["transformer", "iscx"])
    assert all(layer.norm_first for layer in model.layers if isinstance(layer, TransformerEncoder))
    assert model.get_layer("head_app_flatten").input is model.get_layer(
        "transformer_final_norm").output
    path = tmp_path / "pre.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert all(layer.norm_first for layer in loaded.layers
               if isinstance(layer, TransformerEncoder))
    x = np.random.default_rng(3).integers(0, 256, (8, 60)).astype("uint8")
    for task, value in model(x, training=False).items():
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)[task]),
                                   keras.ops.convert_to_numpy(value), atol=1e-6)
    with pytest.raises(ValueError, match="encoder_norm"):
        models.build_model("mtc", "iscx", encoder_norm="sandwich")


def test_full_size_iscx_mtc_runs_forward():
    model = models.build_model("mtc", "iscx")
    packets = np.random.default_rng(1).integers(0, 256, (2, 1500)).astype("uint8")
    probs = model(packets, training=False)
    assert {t: tuple(p.shape) for t, p in probs.items()} == {
        t: (2, len(names)) for t, names in TASKS["iscx"].items()}
    # Table 3 widths: the CNN branch ends with 200 channels over all 1500 positions.
    assert model.get_layer("cnn_s3_b2").output.shape == (None, 1500, 200)
    assert model.get_layer("transformer_s3_e6").output.shape == (None, 30, 50)
    counts = models.count_parameters(model)
    assert all(counts[b] > 0 for b in models.BRANCHES)
    assert sum(counts[b] for b in models.BRANCHES) == counts["total"] == model.count_params()


def test_mtc_parameter_count_lies_between_its_baselines():
    """§5.3: 'the number of parameters is between Transformer and 1D-CNN'."""
    for dataset in models.DATASETS:
        total = {name: models.count_parameters(models.build_model(name, dataset))["total"]
                 for name in ("transformer", "mtc", "cnn")}
        assert total["transformer"] < total["mtc"] < total["cnn"], (dataset, total)


def test_presets_follow_the_paper():
    iscx = models.build_model("mtc", "iscx")
    assert iscx.get_layer("transformer_s1_e1").num_heads == 6
    assert iscx.get_layer("transformer_s1_e1").key_dim == 8  # 50 // 6
    encoders = [layer.name for layer in iscx.layers if isinstance(layer, TransformerEncoder)]
    assert [sum(name.startswith(f"transformer_s{s}_") for name in encoders)
            for s in (1, 2, 3)] == [1, 5, 6]
    # Packet bytes go through a table per byte value (measured on real USTC-TFC2016 and ISCX
    # captures); CICIDS2017's quantiles are not bytes.
    ustc = models.build_model("mtc", "ustc_tfc2016")
    assert ustc.get_layer("transformer_embedding").bytes.embeddings.shape == (256, 16)
    assert iscx.get_layer("transformer_embedding").bytes.embeddings.shape == (256, 16)
    cicids = models.build_model("mtc", "cicids2017")
    assert cicids.get_layer("transformer_embedding").output.shape == (None, 7, 7)
    assert cicids.get_layer("transformer_embedding").byte_embedding == 0
    assert cicids.get_layer("transformer_s1_e1").num_heads == 7
    baseline = models.build_model("transformer", "iscx")
    assert sum(isinstance(layer, TransformerEncoder) for layer in baseline.layers) == 7
    assert baseline.get_layer("transformer_embedding").byte_embedding == 0
    w = models.default_loss_weights("mtc", "iscx")
    assert sum(w.values()) == pytest.approx(1.0)
    assert (w["app"] / w["aux"], w["traffic"] / w["aux"]) == pytest.approx((6, 2))
    assert "aux" not in models.default_loss_weights("mtc_2task", "iscx")


def test_overrides_are_checked():
    with pytest.raises(TypeError, match="no hyper-parameter"):
        models.build_model("cnn", "iscx", encoder_repeats=(1, 1, 1))
    with pytest.raises(ValueError, match="model name"):
        models.build_model("resnet", "iscx")
    with pytest.raises(ValueError, match="dataset"):
        models.build_model("mtc", "mnist")
    with pytest.raises(ValueError, match="loss_weights"):
        models.build_model("cnn", "iscx", num_classes={"app": 17})
    with pytest.raises(ValueError, match="no branch"):
        models.build_model("mtc", "iscx", num_classes={"app": 17, "flow": 3},
                           loss_weights={"app": 1.0, "flow": 1.0})
    model = models.build_model("cnn", "iscx", num_classes={"app": 5}, loss_weights={"app": 1.0},
                               seq_len=60, conv_filters=(4, 4), dense_units=(8, 8, 8))
    assert model.output_names == ["app"] and model.outputs[0].shape == (None, 5)


def test_count_parameters_refuses_unassigned_layers():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, {"app": keras.layers.Dense(2, name="app")(
        keras.layers.Dense(3, name="mystery")(inputs))})
    with pytest.raises(ValueError, match="mystery"):
        models.count_parameters(model)


def test_compile_model_uses_task_keyed_losses_and_weights():
    model = models.build_model("cnn", "cicids2017", conv_filters=(4, 4), dense_units=(8, 8, 8))
    training.compile_model(model)
    assert set(model.loss) == {"attack", "mal"}
    with pytest.raises(ValueError, match="differ"):
        training.compile_model(model, loss_weights={"attack": 1.0})
    plain = keras.Model(model.inputs, model.outputs)
    with pytest.raises(ValueError, match="loss weights"):
        training.compile_model(plain)


def test_ustc_heads_sit_on_the_branches_the_preset_names():
    model = models.build_model("mtc", "ustc_tfc2016")
    assert {t: model.get_layer(t).output.shape[-1] for t in model.output_names} == {
        "app": 20, "malware": 2}
    # app reads the Transformer tokens, malware the CNN map (HEAD_BRANCH), 2:1 loss weights.
    assert model.get_layer("head_app_flatten").input.shape == (None, 30, 50)
    assert model.get_layer("head_malware_pool").input.shape == (None, 1500, 200)
    assert model.loss_weights == pytest.approx({"app": 2 / 3, "malware": 1 / 3})


@pytest.mark.parametrize("source", models.HEAD_SOURCES)
def test_head_branches_choose_what_a_head_reads_and_round_trip(source, tmp_path):
    model = models.build_model("mtc", "iscx", head_branches={"app": source},
                               **SMALL["mtc", "iscx"])
    # flatten readouts: Transformer 6 tokens x 10, CNN map pooled to 6 windows x 16 channels.
    width = {"transformer": 6 * 10, "cnn": 6 * 16, "both": 6 * 10 + 6 * 16}[source]
    assert model.get_layer("app").input.shape[-1] == width
    assert model.get_layer("traffic").input.shape[-1] == 6 * 16  # HEAD_BRANCH still rules it
    path = tmp_path / f"{source}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(4).integers(0, 256, (8, 60)).astype("uint8")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)["app"]),
                               keras.ops.convert_to_numpy(model(x, training=False)["app"]),
                               atol=1e-6)
    with pytest.raises(ValueError, match="head_branches"):
        models.build_model("mtc", "iscx", head_branches={"app": "fusion"})
