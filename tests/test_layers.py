"""Layers of mtc_keras.layers: shapes, numerics against their definitions, config round trips,
the masked loss and metric, and the quantile layer against scikit-learn."""

import jax
import numpy as np
import pytest

import mtc_keras  # noqa: F401  (sets KERAS_BACKEND=jax)
import keras
from keras import ops

from mtc_keras import layers as L
from mtc_keras import training
from mtc_keras.labels import MISSING

RNG = np.random.default_rng(0)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


# ------------------------------------------------------------------------------- shapes
def test_token_embedding_projects_patches_to_tokens():
    x = RNG.random((2, 60)).astype("float32")
    layer = L.TokenEmbedding(6, 10)
    out = _np(layer(x))
    assert out.shape == (2, 6, 10)
    # Token i is the linear map of the i-th patch of 10 consecutive values.
    kernel, bias = (_np(w) for w in layer.dense.weights)
    np.testing.assert_allclose(out, x.reshape(2, 6, 10) @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_token_embedding_without_projection_is_a_reshape():
    x = RNG.random((2, 1500)).astype("float32")
    out = _np(L.TokenEmbedding(30, 50, projection=False)(x))
    np.testing.assert_array_equal(out, x.reshape(2, 30, 50))
    with pytest.raises(ValueError, match="must equal d_model"):
        L.TokenEmbedding(30, 40, projection=False)(x)
    with pytest.raises(ValueError, match="not a multiple"):
        L.TokenEmbedding(7, 50)(x)


def test_token_embedding_byte_table_looks_each_byte_up_before_the_projection():
    packets = RNG.integers(0, 256, (2, 60))
    x = (packets / 255.0).astype("float32")  # what the model's Rescaling hands the layer
    layer = L.TokenEmbedding(6, 10, byte_embedding=3)
    out = _np(layer(x))
    assert out.shape == (2, 6, 10)
    table = _np(layer.bytes.embeddings)
    kernel, bias = (_np(w) for w in layer.dense.weights)
    assert kernel.shape == (10 * 3, 10)
    # Token i is the linear map of the concatenated table rows of its 10 bytes.
    want = table[packets].reshape(2, 6, 30) @ kernel + bias
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="needs projection"):
        L.TokenEmbedding(6, 10, projection=False, byte_embedding=3)


def test_sinusoidal_position_encoding_follows_eq_7_and_8():
    n, d = 5, 7  # odd d, as on CICIDS2017
    out = _np(L.SinusoidalPositionEncoding()(np.zeros((1, n, d), "float32")))[0]
    for pos in range(n):
        for i in range(d // 2 + 1):
            angle = pos * 10000.0 ** (-2 * i / d)
            assert out[pos, 2 * i] == pytest.approx(np.sin(angle), abs=1e-6)
            if 2 * i + 1 < d:
                assert out[pos, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-6)
    tokens = RNG.random((3, n, d)).astype("float32")
    np.testing.assert_allclose(_np(L.SinusoidalPositionEncoding()(tokens)), tokens + out, atol=1e-6)


def test_transformer_encoder_keeps_shape_and_projects_heads_back_to_d():
    x = RNG.random((2, 30, 50)).astype("float32")
    layer = L.TransformerEncoder(num_heads=6, key_dim=8, ff_dim=1024)
    out = _np(layer(x))
    assert out.shape == x.shape
    # 6 heads x 8 dims = 48, W^M maps them back to 50 (eq. 3).
    assert layer.attention.count_params() == 3 * (50 * 48 + 48) + (48 * 50 + 50)
    assert layer.ff_in.count_params() == 50 * 1024 + 1024
    # Post-norm: the output of each token is layer-normalised (gamma=1, beta=0 at init).
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-5)
    # Inference is deterministic; training applies dropout.
    np.testing.assert_array_equal(out, _np(layer(x, training=False)))
    assert not np.allclose(out, _np(layer(x, training=True)))


def test_bottleneck_shapes_taps_and_projected_residual():
    x = RNG.random((2, 60, 4)).astype("float32")
    block = L.CnnBottleneck((4, 4, 8))
    y, tap = block(x, return_tap=True)
    assert _np(y).shape == (2, 60, 8) and _np(tap).shape == (2, 60, 4)
    assert block.shortcut is not None  # 4 -> 8 channels: projected residual
    same = L.CnnBottleneck((4, 4, 8))
    same(np.zeros((1, 60, 8), "float32"))
    assert same.shortcut is None  # identity residual
    # Residual: with the convs' output forced to zero the block is its shortcut.
    for conv in (block.conv1, block.conv2, block.conv3):
        conv.kernel.assign(np.zeros(conv.kernel.shape, "float32"))
        conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    np.testing.assert_allclose(_np(block(x)), _np(block.shortcut(x)), atol=1e-6)


@pytest.mark.parametrize("merge", ["add", "concat"])
def test_bottleneck_merges_injected_features_after_first_conv(merge):
    x = RNG.random((2, 60, 8)).astype("float32")
    injected = RNG.random((2, 60, 4)).astype("float32")
    block = L.CnnBottleneck((4, 4, 8), merge=merge)
    plain, with_injection = _np(block(x)), _np(block(x, injected=injected))
    assert with_injection.shape == plain.shape == (2, 60, 8)
    assert not np.allclose(plain, with_injection)
    if merge == "add":  # a zero injection changes nothing
        np.testing.assert_allclose(_np(block(x, injected=np.zeros_like(injected))), plain,
                                   atol=1e-6)


def test_cnn_to_transformer_fusion_pools_convs_normalises_and_adds():
    features = RNG.random((2, 60, 8)).astype("float32")
    tokens = RNG.random((2, 6, 10)).astype("float32")
    fusion = L.CnnToTransformerFusion()
    out = _np(fusion([features, tokens]))
    assert out.shape == tokens.shape
    # Reference in numpy, in the paper's order: 1x1 conv, then average pooling, then LayerNorm.
    kernel, bias = (_np(w) for w in fusion.conv.weights)
    pooled = (features @ kernel + bias).reshape(2, 6, 10, 10).mean(2)
    normed = (pooled - pooled.mean(-1, keepdims=True)) / np.sqrt(pooled.var(-1, keepdims=True)
                                                                  + 1e-5)
    np.testing.assert_allclose(out, tokens + normed, atol=1e-4)
    with pytest.raises(ValueError, match="not a multiple"):
        L.CnnToTransformerFusion()([features[:, :50], tokens[:, :4]])


def test_window_mean_equals_average_pooling_values_and_gradients():
    x = RNG.random((2, 60, 3)).astype("float32")
    layer, pooling = L.WindowMean(6), keras.layers.AveragePooling1D(10)
    np.testing.assert_allclose(_np(layer(x)), _np(pooling(x)), atol=1e-6)
    weights = RNG.random((2, 6, 3)).astype("float32")  # a loss that weights each output
    grad = jax.grad(lambda v: ops.sum(layer(v) * weights))(x)
    np.testing.assert_allclose(np.asarray(grad), np.repeat(weights, 10, axis=1) / 10, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of windows=7"):
        L.WindowMean(7)(x)


def test_interpolation_matrix_linear_and_nearest():
    # torch.nn.functional.interpolate([0, 1], size=4, mode="linear") == [0, .25, .75, 1]
    np.testing.assert_allclose(L.interpolation_matrix(4, 2) @ [0.0, 1.0], [0, 0.25, 0.75, 1])
    np.testing.assert_array_equal(L.interpolation_matrix(4, 2, "nearest") @ [0.0, 1.0],
                                  [0, 0, 1, 1])
    np.testing.assert_allclose(L.interpolation_matrix(1500, 30).sum(1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="interpolation"):
        L.TransformerToCnnFusion(4, 60, interpolation="cubic")


def test_transformer_to_cnn_fusion_upsamples_tokens_to_sequence():
    tokens = RNG.random((3, 6, 10)).astype("float32")
    fusion = L.TransformerToCnnFusion(4, 60)
    out = _np(fusion(tokens))
    assert out.shape == (3, 60, 4)
    kernel, bias = (_np(w) for w in fusion.conv.weights)
    upsampled = np.einsum("ln,bnc->blc", L.interpolation_matrix(60, 6), tokens @ kernel + bias)
    bn = fusion.normalization  # inference: moving statistics (0 mean, 1 variance at init)
    np.testing.assert_allclose(out, upsampled / np.sqrt(1 + bn.epsilon), atol=1e-5)
    assert _np(L.TransformerToCnnFusion(4, 60, norm="layer")(tokens)).shape == (3, 60, 4)


# ------------------------------------------------------------------------------ dropout
def test_hash_dropout_rate_scale_and_fresh_masks():
    layer = L.HashDropout(0.07, seed=1)
    x = np.ones((1000, 1000), "float32")
    np.testing.assert_array_equal(_np(layer(x)), x)  # inference: identity
    first, second = _np(layer(x, training=True)), _np(layer(x, training=True))
    for out in (first, second):
        assert set(np.unique(out)) == {0.0, np.float32(1 / 0.93)}
        assert abs((out == 0).mean() - 0.07) < 2e-3  # 8 standard deviations
        assert abs(out.mean() - 1.0) < 3e-3  # the expectation is preserved
    kept1, kept2 = (first > 0).ravel(), (second > 0).ravel()
    assert abs(np.corrcoef(kept1, kept2)[0, 1]) < 0.01  # a new mask per call
    assert abs(np.corrcoef(kept1[:-1], kept1[1:])[0, 1]) < 0.01  # neighbours independent
    with pytest.raises(ValueError):
        L.HashDropout(1.0)


def test_hash_dropout_mixer_is_lowbias32():
    def lowbias32(x):  # C. Wellons' reference, in numpy uint32 arithmetic
        x = x ^ (x >> 16)
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> 15)
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> 16)

    x = np.array([0, 1, 2, 12345, 2**31, 2**32 - 1], dtype=np.uint32)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(_np(L._mix32(ops.convert_to_tensor(x))), lowbias32(x))


# ---------------------------------------------------------------------- loss and metric
def test_masked_loss_equals_loss_over_the_labelled_subset():
    probs = keras.activations.softmax(RNG.normal(size=(8, 5)).astype("float32"))
    labels = np.array([0, MISSING, 3, 4, MISSING, 1, 2, MISSING])
    valid = labels >= 0
    loss = training.MaskedSparseCategoricalCrossentropy()
    plain = keras.losses.SparseCategoricalCrossentropy()
    expected = _np(plain(labels[valid], _np(probs)[valid]))
    assert _np(loss(labels, probs)) == pytest.approx(expected, rel=1e-5)
    assert _np(loss(labels[:, None], probs)) == pytest.approx(expected, rel=1e-5)
    # No missing label: the ordinary cross-entropy.
    full = np.arange(8) % 5
    assert _np(loss(full, probs)) == pytest.approx(_np(plain(full, probs)), rel=1e-5)
    # Sample weights apply to the labelled samples only.
    w = RNG.random(8).astype("float32")
    per_sample = -np.log(_np(probs)[np.arange(8), np.maximum(labels, 0)])
    weighted = (per_sample * w)[valid].sum() / w[valid].sum()
    assert _np(loss(labels, probs, sample_weight=w)) == pytest.approx(weighted, rel=1e-5)
    # A batch without any label contributes nothing (and no NaN).
    assert _np(loss(np.full(8, MISSING), probs)) == 0.0


def test_masked_accuracy_skips_missing_labels():
    probs = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0, 1]]
    labels = np.array([0, 1, 0, MISSING, MISSING, 3])
    metric = training.MaskedSparseCategoricalAccuracy()
    metric.update_state(labels, probs)
    assert float(metric.result()) == pytest.approx(2 / 4)  # hits 0, 1; misses 2, 5
    metric.update_state(np.full(6, MISSING), probs)  # adds nothing
    assert float(metric.result()) == pytest.approx(2 / 4)


# ------------------------------------------------------------------------ quantile layer
def test_quantile_normalization_matches_sklearn():
    from sklearn.preprocessing import QuantileTransformer

    n = 5000
    train = np.column_stack([
        RNG.normal(size=n),
        RNG.exponential(1e3, size=n),           # heavy tail, wide range
        RNG.integers(0, 4, size=n) * 10.0,      # repeated values -> repeated quantiles
        np.where(RNG.random(n) < 0.8, 0.0, RNG.random(n)),  # mostly zeros
    ])
    qt = QuantileTransformer(n_quantiles=200, output_distribution="uniform",
                             subsample=n, random_state=0).fit(train)
    test = np.column_stack([
        RNG.normal(scale=1.5, size=400),        # some beyond the fitted range
        RNG.exponential(1e3, size=400),
        RNG.integers(-1, 6, size=400) * 10.0,   # exact quantile values and outside values
        np.where(RNG.random(400) < 0.8, 0.0, RNG.random(400)),
    ]).astype("float32")
    test[:4] = qt.quantiles_[0]
    test[4:8] = qt.quantiles_[-1]
    test[8, 0] = np.nan
    layer = L.QuantileNormalization(qt.quantiles_, qt.references_)
    got = _np(layer(test))
    want = qt.transform(test.astype("float64"))
    assert np.isnan(got[8, 0]) and np.isnan(want[8, 0])
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    assert got[:4].max() == 0.0 and got[4:8].min() == 1.0


def test_quantile_normalization_rejects_bad_tables():
    with pytest.raises(ValueError, match="n_quantiles"):
        L.QuantileNormalization(np.zeros((5, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="non-decreasing"):
        L.QuantileNormalization(np.array([[1.0], [0.0]]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="features"):
        L.QuantileNormalization(np.array([[0.0], [1.0]]), np.array([0.0, 1.0]))(
            np.zeros((2, 3), "float32"))


# ----------------------------------------------------------------------- serialisation
LAYER_CASES = [
    (lambda: L.TokenEmbedding(6, 10, projection=True), (2, 60)),
    (lambda: L.TokenEmbedding(6, 10, byte_embedding=3), (2, 60)),
    (lambda: L.SinusoidalPositionEncoding(max_wavelength=500.0), (2, 6, 10)),
    (lambda: L.TransformerEncoder(2, 5, ff_dim=16, dropout=0.2), (2, 6, 10)),
    (lambda: L.CnnBottleneck((4, 4, 8), kernel_size=5, dropout=0.1, merge="concat"), (2, 60, 4)),
    (lambda: L.TransformerToCnnFusion(4, 60, norm="layer", interpolation="nearest"), (2, 6, 10)),
    (lambda: L.HashDropout(0.3, seed=7), (2, 6, 10)),
    (lambda: L.WindowMean(3), (2, 6, 10)),
    (lambda: L.QuantileNormalization(np.sort(RNG.random((11, 3)), axis=0), np.linspace(0, 1, 11)),
     (2, 3)),
]


@pytest.mark.parametrize("make, shape", LAYER_CASES)
def test_layer_config_round_trip(make, shape):
    layer = make()
    x = RNG.random(shape).astype("float32")
    out = _np(layer(x))
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(clone(x)), out, atol=1e-6)


def test_keras_file_round_trip_of_all_layers(tmp_path):
    packet = keras.Input((60,), name="packet")
    tokens = L.TokenEmbedding(6, 10)(packet)
    tokens = L.SinusoidalPositionEncoding()(tokens)
    tokens = L.TransformerEncoder(2, 5, ff_dim=16)(tokens)
    cnn = keras.layers.Reshape((60, 1))(packet)
    cnn = L.CnnBottleneck((4, 4, 8))(cnn)
    cnn, tap = L.CnnBottleneck((4, 4, 8))(cnn, return_tap=True)
    tokens = L.CnnToTransformerFusion(merge="concat")([tap, tokens])
    cnn = L.CnnBottleneck((4, 4, 8))(cnn, injected=L.TransformerToCnnFusion(4, 60)(tokens))
    cnn = L.HashDropout(0.1)(cnn)
    cnn = L.WindowMean(6)(cnn)
    quantiles = np.sort(RNG.random((9, 60)), axis=0)
    scaled = L.QuantileNormalization(quantiles, np.linspace(0, 1, 9))(packet)
    model = keras.Model(packet, {"tokens": tokens, "cnn": cnn, "scaled": scaled})
    x = RNG.random((3, 60)).astype("float32")
    path = tmp_path / "layers.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    want, got = model(x), loaded(x)
    for key in want:
        np.testing.assert_allclose(_np(got[key]), _np(want[key]), atol=1e-6)
