"""Keras layers of MTC (paper §3.3) and its baselines (§4.3); the losses and metric are in
``mtc_keras.training``.

Every layer is registered under the package name ``mtc_keras`` so that ``.keras`` files load
without custom_objects. Shapes are channels-last: a CNN feature map is [batch, length, channels]
and the Transformer's tokens are [batch, n_tokens, d_model].

Nothing here imports TensorFlow: the model trains from plain numpy arrays on a machine that has
only JAX and Keras.
"""

from __future__ import annotations

import math

import numpy as np

import keras
from keras import ops


_register = keras.saving.register_keras_serializable(package="mtc_keras")

_NORMS = ("layer", "batch", "none")
_MERGES = ("add", "concat")


def _normalization(kind: str, name: str, momentum: float = 0.99) -> keras.layers.Layer:
    if kind == "layer":
        return keras.layers.LayerNormalization(epsilon=1e-5, name=name)
    if kind == "batch":
        return keras.layers.BatchNormalization(momentum=momentum, name=name)
    if kind == "none":
        return keras.layers.Identity(name=name)
    raise ValueError(f"norm must be one of {_NORMS}, got {kind!r}")


def _check_choice(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")


# ------------------------------------------------------------------------------ dropout
def _mix32(x):
    """lowbias32 (C. Wellons' 32-bit integer hash): a bijection with near-ideal avalanche."""
    x = ops.bitwise_xor(x, ops.right_shift(x, 16))
    x = ops.multiply(x, ops.cast(0x7FEB352D, "uint32"))
    x = ops.bitwise_xor(x, ops.right_shift(x, 15))
    x = ops.multiply(x, ops.cast(0x846CA68B, "uint32"))
    return ops.bitwise_xor(x, ops.right_shift(x, 16))


@_register
class HashDropout(keras.layers.Layer):
    """Dropout whose random bits come from a counter-based hash fused into the masking op.

    Same semantics as ``keras.layers.Dropout``: in training every element is kept with
    probability ``1 - rate`` (exact to 2**-32) and scaled by ``1 / (1 - rate)``; identity
    otherwise. Only the generator differs: instead of JAX's threefry (about 75 M values/s on a
    2-core CPU, and the CNN branch of MTC needs ~2 M values per sample per step), each element's
    32-bit number is ``mix(mix(index ^ k0) + k1)``, where ``mix`` is a 32-bit avalanche hash and
    (k0, k1) are hashed from the layer's ``SeedGenerator`` seed, new at every call. XLA fuses the
    hash into the surrounding element-wise ops, so no random tensor is ever stored (8x faster
    than ``jax.random.bernoulli`` here). It is a statistical generator for regularisation, not a
    cryptographic one.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None
        self.supports_masking = True
        self._build_at_init()

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        seed = ops.cast(self.seed_generator.next(), "uint32")
        k0 = _mix32(ops.bitwise_xor(seed[0], ops.cast(0x9E3779B9, "uint32")))
        k1 = _mix32(ops.add(seed[1], k0))
        size = math.prod(inputs.shape)
        index = ops.reshape(ops.arange(size, dtype="uint32"), inputs.shape)
        bits = _mix32(ops.add(_mix32(ops.bitwise_xor(index, k0)), k1))
        threshold = ops.cast(min(round(self.rate * 2.0**32), 2**32 - 1), "uint32")
        keep = ops.greater_equal(bits, threshold)
        scale = ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return ops.where(keep, inputs * scale, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# ---------------------------------------------------------------------- Transformer side
@_register
class TokenEmbedding(keras.layers.Layer):
    """Turns a [batch, length] vector into [batch, n_tokens, d_model] tokens (paper §3.3.2).

    The vector is cut into ``n_tokens`` consecutive patches of ``length / n_tokens`` values
    (1500 bytes -> 30 x 50 on ISCX, 49 features -> 7 x 7 on CICIDS2017). With
    ``projection=True`` (default) each patch then goes through a learned linear map to
    ``d_model``, as a token embedding does in a Transformer; the paper only says that the
    Embedding "converts the 1500-byte sequence into n x d tokens with n x d = 1500", so
    ``projection=False`` gives the plain reshape (then length / n_tokens must equal d_model).
    Inputs are expected already scaled to [0, 1] (the model divides bytes by 255 once, for
    both branches). MTC adds no positional encoding (the CNN branch carries position).
    """

    def __init__(self, n_tokens: int, d_model: int, projection: bool = True,
                 byte_embedding: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.n_tokens = int(n_tokens)
        self.d_model = int(d_model)
        self.projection = bool(projection)
        # > 0: each byte (the [0, 1] input times 255) looked up in a learned 256 x this table
        # before the projection, instead of entering as one scaled value.
        self.byte_embedding = int(byte_embedding)
        if self.byte_embedding and not self.projection:
            raise ValueError("byte_embedding needs projection=True")

    def build(self, input_shape):
        length = input_shape[-1]
        if length is None or length % self.n_tokens:
            raise ValueError(f"input length {length} is not a multiple of n_tokens={self.n_tokens}")
        self.patch = length // self.n_tokens
        # Values per token: a patch of bytes, each one value or one table row.
        self.token_width = self.patch * max(1, self.byte_embedding)
        if self.byte_embedding:
            self.bytes = keras.layers.Embedding(256, self.byte_embedding, name="bytes",
                                                dtype=self.dtype_policy)
            self.bytes.build((None, length))
        if self.projection:
            self.dense = keras.layers.Dense(self.d_model, name="projection")
            self.dense.build((None, self.n_tokens, self.token_width))
        elif self.patch != self.d_model:
            raise ValueError(f"without projection, length / n_tokens ({self.patch}) must equal "
                             f"d_model ({self.d_model})")

    def call(self, inputs):
        if self.byte_embedding:  # [batch, length] -> [batch, length, byte_embedding]
            inputs = self.bytes(ops.cast(ops.clip(ops.round(inputs * 255.0), 0, 255), "int32"))
        tokens = ops.reshape(inputs, (-1, self.n_tokens, self.token_width))
        return self.dense(tokens) if self.projection else tokens

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_tokens, self.d_model)

    def get_config(self):
        return {**super().get_config(), "n_tokens": self.n_tokens, "d_model": self.d_model,
                "projection": self.projection, "byte_embedding": self.byte_embedding}


def sinusoidal_position_table(length: int, depth: int, max_wavelength: float = 10000.0):
    """PE(pos, 2i) = sin(pos * w**(-2i/d)), PE(pos, 2i+1) = cos(pos * w**(-2i/d)) (eq. 7-8)."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    j = np.arange(depth)
    angle = pos * max_wavelength ** (-(j - j % 2) / depth)
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle)).astype("float32")


@_register
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Adds the fixed sinusoidal table of eq. 7-8 to [batch, n_tokens, d_model] tokens.

    Used by the multi-task Transformer baseline only; sin and cos interleave along d_model as the
    equations write them (an odd d_model, 7 on CICIDS2017, ends with a sin column).
    """

    def __init__(self, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = float(max_wavelength)

    def build(self, input_shape):
        self.table = sinusoidal_position_table(input_shape[-2], input_shape[-1],
                                               self.max_wavelength)

    def call(self, inputs):
        return inputs + ops.cast(self.table, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@_register
class TransformerEncoder(keras.layers.Layer):
    """One post-norm Transformer encoder (paper §3.3.2, Fig. 4a).

    ``x = LayerNorm(x + Dropout(MHA(x)))`` then ``x = LayerNorm(x + Dropout(FFN(x)))`` with
    ``FFN = Dense(ff_dim, relu) -> Dropout -> Dense(d_model)``. The paper sets the key dim to
    d / H; 50 / 6 is not whole, so ``key_dim`` is a free argument (the model uses d // H = 8 on
    ISCX: the 6 heads see 48 dims and W^M projects the concatenation back to d = 50, as eq. 3
    does). ``dropout`` (0.1) is applied where PyTorch's ``nn.TransformerEncoderLayer`` applies it
    to its sub-layer outputs: after attention, inside the FFN and after the FFN.

    ``norm_first=True`` gives the pre-norm variant (Xiong et al. 2020):
    ``x = x + Dropout(MHA(LN(x)))`` then ``x = x + Dropout(FFN(LN(x)))``; a stack of them needs
    one LayerNorm after its last encoder (the models add it).
    """

    def __init__(self, num_heads: int, key_dim: int, ff_dim: int = 1024, dropout: float = 0.1,
                 layer_norm_epsilon: float = 1e-5, norm_first: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.norm_first = bool(norm_first)

    def build(self, input_shape):
        d_model = input_shape[-1]
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads, self.key_dim, name="attention")
        self.attention.build(input_shape, input_shape)
        self.attention_dropout = HashDropout(self.dropout, name="attention_dropout")
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_norm")
        self.attention_norm.build(input_shape)
        self.ff_in = keras.layers.Dense(self.ff_dim, activation="relu", name="ff_in")
        self.ff_in.build(input_shape)
        self.ff_dropout = HashDropout(self.dropout, name="ff_dropout")
        self.ff_out = keras.layers.Dense(d_model, name="ff_out")
        self.ff_out.build((*input_shape[:-1], self.ff_dim))
        self.output_dropout = HashDropout(self.dropout, name="output_dropout")
        self.ff_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="ff_norm")
        self.ff_norm.build(input_shape)

    def call(self, inputs, training=None):
        if self.norm_first:  # pre-norm: the residual stream itself is never normalised
            normed = self.attention_norm(inputs)
            attended = self.attention(normed, normed, training=training)
            x = inputs + self.attention_dropout(attended, training=training)
            hidden = self.ff_dropout(self.ff_in(self.ff_norm(x)), training=training)
            return x + self.output_dropout(self.ff_out(hidden), training=training)
        attended = self.attention(inputs, inputs, training=training)
        x = self.attention_norm(inputs + self.attention_dropout(attended, training=training))
        hidden = self.ff_dropout(self.ff_in(x), training=training)
        y = self.output_dropout(self.ff_out(hidden), training=training)
        return self.ff_norm(x + y)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "ff_dim": self.ff_dim, "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon, "norm_first": self.norm_first}


# ------------------------------------------------------------------------------ CNN side
@_register
class CnnBottleneck(keras.layers.Layer):
    """1D-CNN bottleneck of MTC (paper §3.3.3, Table 3, Fig. 4c) on [batch, length, channels].

    ``Conv 1x1 (filters[0]) -> Conv 1xk (filters[1], same padding) -> Conv 1x1 (filters[2])``,
    stride 1, each followed by ReLU then dropout (0.07), and a residual connection around the
    three, through a 1x1 projection conv when the channel count changes (identity otherwise).

    Fusion taps (§3.3.3):
    - ``return_tap=True`` also returns the features after the 1xk conv: the CNN -> Transformer
      tap of a stage's first bottleneck.
    - ``injected`` is the Transformer -> CNN contribution, already shaped
      [batch, length, filters[0]] by ``TransformerToCnnFusion``; it is merged right after the
      first 1x1 conv (the second bottleneck of a stage). The merge point is inside this layer,
      so the merge choice is too: ``merge="add"`` (default, as in Conformer, whose coupling
      units MTC's fusion block resembles) or ``"concat"`` followed by a 1x1 conv back to
      filters[0].
    """

    def __init__(self, filters=(50, 50, 100), kernel_size: int = 3, dropout: float = 0.07,
                 merge: str = "add", **kwargs):
        super().__init__(**kwargs)
        self.filters = tuple(int(f) for f in filters)
        if len(self.filters) != 3:
            raise ValueError(f"filters needs 3 widths (1x1, 1xk, 1x1), got {filters!r}")
        self.kernel_size = int(kernel_size)
        self.dropout = float(dropout)
        _check_choice(merge, _MERGES, "merge")
        self.merge = merge

    def build(self, input_shape):
        f0, f1, f2 = self.filters
        length, channels = input_shape[1], input_shape[2]

        def conv(filters, kernel, name, in_channels):
            layer = keras.layers.Conv1D(filters, kernel, padding="same", activation="relu",
                                        name=name)
            layer.build((None, length, in_channels))
            return layer

        self.conv1 = conv(f0, 1, "conv1", channels)
        self.conv2 = conv(f1, self.kernel_size, "conv2", f0)
        self.conv3 = conv(f2, 1, "conv3", f1)
        self.drop1, self.drop2, self.drop3 = (
            HashDropout(self.dropout, name=f"dropout{i}") for i in (1, 2, 3))
        self.shortcut = None
        if channels != f2:
            self.shortcut = keras.layers.Conv1D(f2, 1, name="shortcut")
            self.shortcut.build(input_shape)
        self.merge_projection = None
        if self.merge == "concat":
            self.merge_projection = keras.layers.Conv1D(f0, 1, name="merge_projection")
            self.merge_projection.build((None, length, 2 * f0))

    def call(self, inputs, injected=None, return_tap=False, training=None):
        x = self.drop1(self.conv1(inputs), training=training)
        if injected is not None:
            if self.merge == "add":
                x = x + injected
            else:
                x = self.merge_projection(ops.concatenate([x, injected], axis=-1))
        tap = self.drop2(self.conv2(x), training=training)
        y = self.drop3(self.conv3(tap), training=training)
        y = y + (self.shortcut(inputs) if self.shortcut is not None else inputs)
        return (y, tap) if return_tap else y

    def get_config(self):
        return {**super().get_config(), "filters": list(self.filters),
                "kernel_size": self.kernel_size, "dropout": self.dropout, "merge": self.merge}


# -------------------------------------------------------------------------------- fusion
@_register
class CnnToTransformerFusion(keras.layers.Layer):
    """Fusion block, CNN -> Transformer half (paper §3.3.4, Fig. 4b, "<- [1x1, 50]").

    Called on ``[cnn_features, tokens]`` ([batch, length, C] and [batch, n, d]), returns tokens:
    1x1 conv C -> d, average pooling of the length down to n tokens (length / n positions per
    token), normalisation, merge into the tokens. Pooling is applied before the 1x1 conv: both
    are linear and the pooling weights sum to one, so the result is the same as conv-then-pool
    with length / n times less work.

    Choices the paper leaves open: ``norm="layer"`` (default; the tokens' own normalisation,
    as Conformer's CNN -> Transformer unit uses) or ``"batch"``; ``merge="add"`` (default;
    keeps d unchanged, as Conformer does) or ``"concat"`` followed by a dense layer back to d.
    """

    def __init__(self, norm: str = "layer", merge: str = "add", batchnorm_momentum: float = 0.99,
                 **kwargs):
        super().__init__(**kwargs)
        _check_choice(norm, _NORMS, "norm")
        _check_choice(merge, _MERGES, "merge")
        self.norm = norm
        self.merge = merge
        self.batchnorm_momentum = float(batchnorm_momentum)

    def build(self, input_shape):
        cnn_shape, token_shape = input_shape
        length, channels = cnn_shape[1], cnn_shape[2]
        self.n_tokens, d_model = token_shape[1], token_shape[2]
        if length % self.n_tokens:
            raise ValueError(f"CNN length {length} is not a multiple of n_tokens={self.n_tokens}")
        self.conv = keras.layers.Dense(d_model, name="conv1x1")
        self.conv.build((None, self.n_tokens, channels))
        self.normalization = _normalization(self.norm, "norm", self.batchnorm_momentum)
        self.normalization.build(token_shape)
        self.merge_projection = None
        if self.merge == "concat":
            self.merge_projection = keras.layers.Dense(d_model, name="merge_projection")
            self.merge_projection.build((None, self.n_tokens, 2 * d_model))

    def call(self, inputs, training=None):
        features, tokens = inputs
        pooled = window_mean(features, self.n_tokens)
        aligned = self.normalization(self.conv(pooled), training=training)
        if self.merge == "add":
            return tokens + aligned
        return self.merge_projection(ops.concatenate([tokens, aligned], axis=-1))

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {**super().get_config(), "norm": self.norm, "merge": self.merge,
                "batchnorm_momentum": self.batchnorm_momentum}


def window_mean(features, windows: int):
    """[batch, length, C] -> [batch, windows, C]: the mean of each of ``windows`` consecutive
    windows of the length axis, as a reshape and a mean (``length`` a multiple of ``windows``)."""
    length, channels = features.shape[1], features.shape[2]
    return ops.mean(ops.reshape(features, (-1, windows, length // windows, channels)), axis=2)


@_register
class WindowMean(keras.layers.Layer):
    """Mean over consecutive windows of the length axis: [batch, length, C] ->
    [batch, windows, C], each window ``length / windows`` positions.

    The same values as ``AveragePooling1D(length // windows)``, computed as a reshape and a
    mean (``window_mean``): XLA's CPU gradient of a wide ``reduce_window`` made the full
    model's training step 1.7x slower (20.1 against 34.0 samples/s at batch 32, 2 cores).

    Args:
        windows: the number of windows; must divide the input length.
    """

    def __init__(self, windows: int, **kwargs):
        super().__init__(**kwargs)
        self.windows = int(windows)

    def build(self, input_shape):
        if input_shape[1] % self.windows:
            raise ValueError(f"length {input_shape[1]} is not a multiple of "
                             f"windows={self.windows}")

    def call(self, features):
        return window_mean(features, self.windows)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.windows, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "windows": self.windows}


def interpolation_matrix(out_length: int, in_length: int, mode: str = "linear") -> np.ndarray:
    """[out_length, in_length] weights W with ``W @ x`` resampling x along its first axis.

    ``linear`` matches ``torch.nn.functional.interpolate(mode="linear", align_corners=False)``
    (half-pixel centres, edges clamped); ``nearest`` matches its ``mode="nearest"``.
    """
    weights = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.arange(out_length)
    if mode == "nearest":
        weights[rows, np.minimum(rows * in_length // out_length, in_length - 1)] = 1.0
    elif mode == "linear":
        src = np.clip((rows + 0.5) * in_length / out_length - 0.5, 0, in_length - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, in_length - 1)
        frac = src - lo
        np.add.at(weights, (rows, lo), 1.0 - frac)
        np.add.at(weights, (rows, hi), frac)
    else:
        raise ValueError(f"interpolation must be 'linear' or 'nearest', got {mode!r}")
    return weights.astype("float32")


@_register
class TransformerToCnnFusion(keras.layers.Layer):
    """Fusion block, Transformer -> CNN half (paper §3.3.4, Fig. 4b, "[1x1, 50|100] ->").

    Called on tokens [batch, n, d], returns [batch, length, channels] to be merged into the
    receiving bottleneck after its first 1x1 conv (``CnnBottleneck(injected=...)``):
    1x1 conv d -> channels, upsampling from n to ``length`` by interpolation (``"linear"``
    default, or ``"nearest"``), normalisation. The 1x1 conv runs on the n tokens before
    upsampling: interpolation is linear with weights summing to one, so that equals
    upsample-then-conv at n / length of the cost.

    ``norm="batch"`` (default; the CNN side's normalisation, as in Conformer's Transformer ->
    CNN unit) or ``"layer"``.
    """

    def __init__(self, channels: int, length: int, norm: str = "batch",
                 interpolation: str = "linear", batchnorm_momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        _check_choice(norm, _NORMS, "norm")
        self.channels = int(channels)
        self.length = int(length)
        self.norm = norm
        self.interpolation = interpolation
        self.batchnorm_momentum = float(batchnorm_momentum)
        interpolation_matrix(2, 1, interpolation)  # validates the mode now, not at build

    def build(self, input_shape):
        n_tokens, d_model = input_shape[1], input_shape[2]
        self.conv = keras.layers.Dense(self.channels, name="conv1x1")
        self.conv.build((None, n_tokens, d_model))
        self.resample = interpolation_matrix(self.length, n_tokens, self.interpolation)
        self.normalization = _normalization(self.norm, "norm", self.batchnorm_momentum)
        self.normalization.build((None, self.length, self.channels))

    def call(self, inputs, training=None):
        projected = self.conv(inputs)
        resample = ops.cast(self.resample, projected.dtype)
        upsampled = ops.einsum("ln,bnc->blc", resample, projected)
        return self.normalization(upsampled, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length, self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "length": self.length,
                "norm": self.norm, "interpolation": self.interpolation,
                "batchnorm_momentum": self.batchnorm_momentum}


# ------------------------------------------------------------------- CICIDS preprocessing
@_register
class QuantileNormalization(keras.layers.Layer):
    """scikit-learn's ``QuantileTransformer(output_distribution="uniform").transform`` in Keras.

    ``quantiles`` is the fitted ``quantiles_`` ([n_quantiles, n_features]) and ``references``
    its ``references_`` ([n_quantiles]). Like sklearn, each value becomes the average of
    ``interp(x, q, r)`` and ``-interp(-x, -q[::-1], -r[::-1])`` (so repeated quantiles map to
    the middle of their range), values outside the fitted range clip to 0 / 1, values equal to
    the first / last quantile map to exactly 0 / 1, and NaN stays NaN. Built from keras.ops so
    it runs inside exported models; computes in float32 unless given another ``dtype``.
    """

    def __init__(self, quantiles, references, **kwargs):
        kwargs.setdefault("dtype", "float32")  # never a mixed-precision policy's bfloat16
        super().__init__(**kwargs)
        self.quantiles = np.asarray(quantiles, dtype="float64")
        self.references = np.asarray(references, dtype="float64")
        if self.quantiles.ndim != 2 or self.references.shape != self.quantiles.shape[:1]:
            raise ValueError(f"quantiles must be [n_quantiles, n_features] and references "
                             f"[n_quantiles]; got {self.quantiles.shape} and "
                             f"{self.references.shape}")
        if self.quantiles.shape[0] < 2:
            raise ValueError("need at least two quantiles")
        if np.any(np.diff(self.quantiles, axis=0) < 0) or np.any(np.diff(self.references) < 0):
            raise ValueError("quantiles and references must be non-decreasing")

    def build(self, input_shape):
        if input_shape[-1] != self.quantiles.shape[1]:
            raise ValueError(f"input has {input_shape[-1]} features, the quantiles "
                             f"{self.quantiles.shape[1]}")

    @staticmethod
    def _interp(x, xp, fp):
        """numpy.interp per feature: x [b, f], xp [q, f] non-decreasing, fp [q]."""
        count = ops.sum(ops.cast(ops.expand_dims(xp, 0) <= ops.expand_dims(x, 1), "int32"),
                        axis=1)  # [b, f]: how many xp are <= x
        q = xp.shape[0]
        j = ops.clip(count - 1, 0, q - 2)
        x0 = ops.take_along_axis(xp, j, axis=0)
        x1 = ops.take_along_axis(xp, j + 1, axis=0)
        y0, y1 = ops.take(fp, j), ops.take(fp, j + 1)
        # Inside the range x0 <= x < x1, so x1 > x0; the guard only protects the clipped ends.
        slope = (y1 - y0) / ops.where(x1 > x0, x1 - x0, ops.ones_like(x0))
        inside = slope * (x - x0) + y0
        return ops.where(count == 0, fp[0], ops.where(count >= q, fp[-1], inside))

    def call(self, inputs):
        dtype = self.compute_dtype
        x = ops.cast(inputs, dtype)
        q = ops.convert_to_tensor(self.quantiles, dtype)
        r = ops.convert_to_tensor(self.references, dtype)
        up = self._interp(x, q, r)
        down = self._interp(-x, -ops.flip(q, axis=0), -ops.flip(r, axis=0))
        y = 0.5 * (up - down)
        y = ops.where(x == q[-1], ops.ones_like(y), y)
        y = ops.where(x == q[0], ops.zeros_like(y), y)
        return ops.where(ops.isnan(x), x, y)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "quantiles": self.quantiles.tolist(),
                "references": self.references.tolist()}


# The masked losses and metric live beside compile_model (mtc_keras.training); importing this
# module still registers them for .keras files, and the old names keep working.
from mtc_keras.training import (  # noqa: E402,F401
    MaskedSparseCategoricalAccuracy, MaskedSparseCategoricalCrossentropy)
