"""mtc-keras: MTC (Transformer + 1D-CNN multi-task traffic classifier) in Keras 3 on JAX."""

import os

# The package runs Keras on JAX; users never have to set this themselves. TensorFlow is
# only used for tf.data / TFDS and stays on the CPU.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


def build_model(name: str, dataset: str, **overrides):
    """Build an uncompiled functional MTC / baseline model (see mtc_keras.models)."""
    from mtc_keras import models

    return models.build_model(name, dataset, **overrides)
