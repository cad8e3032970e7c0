"""mtc_keras.training: logit losses, the adam_l2 optimizer, warmup, and the padded-row weighting
of MtcModel.evaluate."""

import numpy as np
import pytest

import mtc_keras  # noqa: F401  (sets KERAS_BACKEND=jax)
import keras
from keras import ops

from mtc_keras import models, training
from mtc_keras.labels import MISSING

RNG = np.random.default_rng(7)
TINY_CNN = dict(seq_len=60, conv_filters=(4, 4), dense_units=(8, 8, 8))


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_masked_loss_on_logits_equals_the_loss_over_the_labelled_subset():
    logits = RNG.normal(scale=3.0, size=(8, 5)).astype("float32")
    labels = np.array([0, MISSING, 3, 4, MISSING, 1, 2, MISSING])
    valid = labels >= 0
    loss = training.MaskedSparseCategoricalCrossentropy(from_logits=True)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert _np(loss(labels, logits)) == pytest.approx(_np(plain(labels[valid], logits[valid])),
                                                      rel=1e-5)
    # The same value as the probability form, wherever no probability gets clipped.
    probabilities = models.softmax(logits)
    on_probabilities = training.MaskedSparseCategoricalCrossentropy(from_logits=False)
    assert _np(loss(labels, logits)) == pytest.approx(_np(on_probabilities(labels, probabilities)),
                                                      rel=1e-4)
    assert _np(loss(np.full(8, MISSING), logits)) == 0.0


def _confidently_wrong_model():
    """A 1-class-in-2 head whose logits put the true class (1) below 1e-7 for every input."""
    model = models.build_model("cnn", "iscx", num_classes={"app": 2}, loss_weights={"app": 1.0},
                               **TINY_CNN)
    head = model.get_layer("app")
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.array([20.0, -20.0], "float32")])
    x = RNG.integers(0, 256, (16, 60)).astype("uint8")
    return model, x, {"app": np.ones(16, "int32")}


def test_a_confidently_wrong_head_still_receives_gradient():
    model, x, y = _confidently_wrong_model()
    assert models.softmax(model.predict_on_batch(x)["app"])[:, 1].max() < 1e-7
    training.compile_model(model, learning_rate=1e-3, weight_decay=0.0, warmup_steps=0)
    before = model.get_layer("app").get_weights()[1].copy()
    model.train_on_batch(x, y)
    after = model.get_layer("app").get_weights()[1]
    # Adam moves a weight by about lr once it has a gradient: the bias moves towards class 1.
    assert after[1] - before[1] == pytest.approx(1e-3, rel=0.05)

    # The failure this guards against: softmax inside, cross-entropy on clipped probabilities.
    model, x, y = _confidently_wrong_model()
    old = models.probability_model(model)
    old.compile(optimizer=training.make_optimizer(learning_rate=1e-3, weight_decay=0.0,
                                                  warmup_steps=0),
                loss={"app": training.MaskedSparseCategoricalCrossentropy(from_logits=False)})
    before = model.get_layer("app").get_weights()[1].copy()
    old.train_on_batch(x, y)
    np.testing.assert_array_equal(model.get_layer("app").get_weights()[1], before)


def _torch_adam_l2(w, grads, lr, wd, beta1=0.9, beta2=0.999, eps=1e-7):
    """PyTorch's Adam(weight_decay=wd) in numpy, with epsilon where Keras' Adam puts it (added
    to sqrt(v) before the bias correction; PyTorch adds it after)."""
    m = v = np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        g = g + wd * w
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + eps)
    return w


def test_adam_l2_adds_the_decay_to_the_gradient_like_pytorch_adam():
    w0 = RNG.normal(size=(3, 4)).astype("float32")
    grads = [RNG.normal(scale=1e-3, size=(3, 4)).astype("float32") for _ in range(3)]
    lr, wd = 1e-2, 0.5  # a large decay, so that L2 and decoupled decay differ clearly
    results = {}
    for name in training.OPTIMIZERS:
        variable = keras.Variable(w0)
        optimizer = training.make_optimizer(name, learning_rate=lr, weight_decay=wd,
                                            warmup_steps=0)
        for g in grads:
            optimizer.apply([ops.convert_to_tensor(g)], [variable])
        results[name] = _np(variable)
    np.testing.assert_allclose(results["adam_l2"], _torch_adam_l2(w0, grads, lr, wd), rtol=1e-4,
                               atol=1e-6)
    assert not np.allclose(results["adam_l2"], results["adamw"], atol=1e-4)


def test_warmup_ramps_linearly_and_composes_with_a_lowered_rate():
    optimizer = training.make_optimizer(learning_rate=1e-3, warmup_steps=4)
    variable = keras.Variable(np.ones(2, "float32"))
    seen = []
    for step in range(6):
        seen.append(float(_np(optimizer.learning_rate)))
        if step == 4:  # what ReduceLROnPlateau does: read the rate, set a lower one
            optimizer.learning_rate = 1e-4
            seen[-1] = float(_np(optimizer.learning_rate))
        optimizer.apply([ops.ones(2)], [variable])
    np.testing.assert_allclose(seen, [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-4, 1e-4], rtol=1e-6)
    assert optimizer.base_learning_rate == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="optimizer"):
        training.make_optimizer("sgd")


def test_cosine_decay_follows_the_warmup_and_ends_at_zero():
    optimizer = training.make_optimizer(learning_rate=1e-3, warmup_steps=2, decay_steps=6)
    variable = keras.Variable(np.ones(2, "float32"))
    seen = []
    for _ in range(8):
        seen.append(float(_np(optimizer.learning_rate)))
        optimizer.apply([ops.ones(2)], [variable])
    # steps 0, 1: the warmup (1/2, 2/2); steps 2..6: (1 + cos(pi * k / 4)) / 2 for k = 0..4,
    # so 0 from step decay_steps on
    cosine = [1e-3 * (1 + np.cos(np.pi * k / 4)) / 2 for k in range(5)]
    np.testing.assert_allclose(seen, [5e-4, 1e-3, *cosine, 0.0], rtol=1e-5, atol=1e-9)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored.decay_steps == 6
    with pytest.raises(ValueError, match="decay_steps"):
        training.make_optimizer(warmup_steps=10, decay_steps=10)


def test_evaluate_weights_batches_by_their_real_rows():
    model = models.build_model("cnn", "iscx", **TINY_CNN)
    training.compile_model(model)
    x = RNG.integers(0, 256, (20, 60)).astype("uint8")
    y = {t: RNG.integers(0, n, 20) for t, n in ((("app", 17), ("traffic", 12), ("aux", 6)))}
    # The rows of the short batch cost far more than the others, so weighting shows.
    y["app"] = np.array([0] * 16 + [1] * 4)
    head = model.get_layer("app")
    bias = np.zeros(17, "float32")
    bias[0] = 8.0
    head.set_weights([head.get_weights()[0], bias])
    whole = model.evaluate(x, y, batch_size=20, verbose=0, return_dict=True)
    pad = 12  # 20 real rows in two batches of 16: the second has 4 real rows and 12 padded
    xp = np.concatenate([x, np.zeros((pad, 60), "uint8")])
    yp = {t: np.concatenate([v, np.full(pad, MISSING)]) for t, v in y.items()}
    w = {t: np.concatenate([np.ones(20), np.zeros(pad)]).astype("float32") for t in y}
    padded = model.evaluate(xp, yp, sample_weight=w, batch_size=16, verbose=0, return_dict=True)
    # The loss (what ReduceLROnPlateau, EarlyStopping and the checkpoint watch) and every
    # metric; Keras' per-task `<task>_loss` logs stay plain batch averages.
    for key in ["loss"] + [k for k in whole if k.endswith("_accuracy")]:
        assert padded[key] == pytest.approx(whole[key], rel=1e-5), key
    # Without MtcModel's row weighting, the padded rows skew the loss:
    plain = keras.Model(model.inputs, dict(zip(model.output_names, model.outputs)))
    plain.compile(loss=model.loss, loss_weights=model.loss_weights)
    skewed = plain.evaluate(xp, yp, sample_weight=w, batch_size=16, verbose=0, return_dict=True)
    assert skewed["loss"] != pytest.approx(whole["loss"], rel=1e-3)
