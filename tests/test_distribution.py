"""Data-parallel training (mtc_keras.distribution) on virtual CPU devices and processes.

JAX fixes its device count when it starts, so every run is a subprocess
(tests/distributed_worker.py) with its own XLA_FLAGS=--xla_force_host_platform_device_count.
One small MTC trains the same 8 steps on the same global batches of 32 with the same seed:
  - on 1 device, no distribution;
  - on 2 virtual devices with --distribution=data_parallel (16 examples per device);
  - in 2 processes of 1 device each, joined by jax.distributed on localhost (the multi-host path).

Tolerances. Sharding changes nothing in the maths (same global batch, same dropout masks:
HashDropout hashes each element's global index; BatchNorm statistics are reduced over the global
batch), only the order of float32 sums: the per-device partial sums of the batch reductions and
the gradient all-reduce. float32 rounds at u = 2**-24 = 6e-8, so a reordered sum of n terms moves
by at most ~n*u relative: ~2e-6 for the 32-example batch means, more for the weight gradients
(sums over batch x positions), then carried through 8 Adam steps. Measured here: the training
losses agree within 1e-7 relative (one float32 ulp), the output probabilities within 2e-6. We
allow 1e-4 (relative for the losses, absolute for the probabilities): 50x above that noise, and
far below what a real difference in training produces: training with the 2-device run's
per-device batch of 16 instead of the global 32 moves the losses by up to 4e-2 relative and the
probabilities by up to 0.05. Weights are not compared element-wise: the few parameters whose
gradient is zero in exact arithmetic (biases right before a normalisation) take noise-sized
gradients that Adam scales up to ~lr-sized steps (26 of 7,075 weights differ by more than 1e-6,
at most by 4e-5), and they do not change the outputs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

RTOL_LOSS = 1e-4
ATOL_PROBABILITY = 1e-4


def _worker(*args: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("XLA_FLAGS", None)  # the worker sets its own device count
    return subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", *args],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait(procs: list[subprocess.Popen], timeout: float = 600):
    try:
        for proc in procs:
            output, _ = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"{' '.join(proc.args)} failed:\n{output[-4000:]}"
    finally:
        for proc in procs:  # one failed: don't leave the others waiting for it
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_all(root) -> dict:
    """result.npz of every run: one_device (which also reloads the two_devices checkpoint),
    two_devices, process_0 and process_1; all four run at once."""
    port = _free_port()
    _wait([
        _worker("--devices", "2", "--out", str(root / "two_devices"), "--save"),
        _worker("--devices", "1", "--distribution", "none", "--out", str(root / "one_device"),
                "--reload", str(root / "two_devices" / "model.keras")),
        *(_worker("--devices", "1", "--coordinator_address", f"localhost:{port}",
                  "--num_processes", "2", "--process_id", str(i),
                  "--out", str(root / f"process_{i}")) for i in range(2)),
    ])
    return {name: dict(np.load(root / name / "result.npz"))
            for name in ("one_device", "two_devices", "process_0", "process_1")}


def _outputs(result):
    return {k: v for k, v in result.items() if k.startswith("output_")}


def _cross_entropy(probabilities, labels):
    present = labels >= 0
    return -np.log(probabilities[present, labels[present]]).mean()


def test_data_parallel_matches_one_device_and_its_checkpoint_reloads(tmp_path):
    # One test, not several sharing a fixture: `make test` spreads tests over pytest-xdist
    # workers, and a module fixture would then train these runs once per worker.
    runs = _run_all(tmp_path)
    one = runs["one_device"]
    assert int(one["device_count"]) == 1 and int(one["variable_devices"]) == 1
    assert len(one["losses"]) == 8 and np.all(np.isfinite(one["losses"]))
    for task in ("app", "traffic", "aux"):  # the runs compared below really train
        before = _cross_entropy(one[f"initial_{task}"], one[f"label_{task}"])
        after = _cross_entropy(one[f"output_{task}"], one[f"label_{task}"])
        assert after < before - 0.05, (task, before, after)
    outputs = _outputs(one)
    assert sorted(outputs) == ["output_app", "output_aux", "output_traffic"]

    for run in ("two_devices", "process_0", "process_1"):
        sharded = runs[run]
        assert int(sharded["device_count"]) == 2, run
        assert int(sharded["variable_devices"]) == 2, run  # the variables lived on 2 devices
        np.testing.assert_allclose(sharded["losses"], one["losses"], rtol=RTOL_LOSS,
                                   err_msg=f"{run} training losses")
        for key, expected in outputs.items():
            np.testing.assert_allclose(sharded[key], expected, rtol=0, atol=ATOL_PROBABILITY,
                                       err_msg=f"{run} {key}")

    # The 2-device checkpoint, reloaded in the 1-device process with no distribution. Same
    # weights, same per-example computation: only XLA's per-shape code generation may differ.
    for key, expected in _outputs(runs["two_devices"]).items():
        np.testing.assert_allclose(one[key.replace("output_", "reloaded_")], expected,
                                   rtol=0, atol=1e-6, err_msg=f"reloaded {key}")


def test_batch_must_split_over_devices():
    code = ("from mtc_keras import distribution\n"
            "distribution.configure_distribution('data_parallel', batch_size=33)\n")
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "batch size 33 does not split evenly over the 2 devices" in proc.stderr


@pytest.mark.parametrize("kwargs, message", [
    (dict(strategy="model_parallel"), "distribution must be one of"),
    (dict(strategy="data_parallel", coordinator_address="h0:1234"),
     "needs coordinator_address, num_processes and process_id together"),
    (dict(strategy="none", coordinator_address="h0:1234", num_processes=2, process_id=0),
     "needs --distribution=data_parallel"),
    (dict(strategy="data_parallel", coordinator_address="h0:1234", num_processes=2,
          process_id=2), r"process_id must be in \[0, 2\)"),
])
def test_bad_distribution_flags_are_refused(kwargs, message):
    from mtc_keras import distribution

    strategy = kwargs.pop("strategy")
    with pytest.raises(ValueError, match=message):
        distribution.configure_distribution(strategy, **kwargs)


def test_mixed_bfloat16_computes_in_bfloat16_with_float32_heads_and_variables():
    import keras

    from mtc_keras import distribution, training
    from mtc_keras.models import build_model
    from mtc_keras.testing import SMALL_MTC
    from tests.distributed_worker import synthetic

    with pytest.raises(ValueError, match="precision must be one of"):
        distribution.configure_precision("float16")
    distribution.configure_precision("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        # One stage (no fusion) is enough here and compiles in a fraction of the time.
        model = build_model("mtc", "iscx", **dict(SMALL_MTC, encoder_repeats=(1,),
                                                  cnn_stages=SMALL_MTC["cnn_stages"][:1]))
    finally:
        distribution.configure_precision("float32")  # global state: later tests build float32
    assert keras.config.dtype_policy().name == "float32"
    encoder = model.get_layer("transformer_s1_e1")
    assert encoder.compute_dtype == "bfloat16" and encoder.variable_dtype == "float32"
    assert {v.dtype for v in model.weights} == {"float32"}
    for task in ("app", "traffic", "aux"):
        assert model.get_layer(task).compute_dtype == "float32"  # logit heads stay float32
    x, labels = synthetic()
    # A CICIDS2017 export puts the quantile transform in front of the model: float32 too.
    from mtc_keras.export import with_quantile_transform

    distribution.configure_precision("mixed_bfloat16")
    try:
        wrapped = with_quantile_transform(model, np.linspace(0, 255, 11)[:, None].repeat(120, 1),
                                          np.linspace(0, 1, 11))
    finally:
        distribution.configure_precision("float32")
    assert wrapped.get_layer("quantile_transform").compute_dtype == "float32"
    training.compile_model(model)
    loss = model.train_on_batch(x[:16], {t: y[:16] for t, y in labels.items()}, return_dict=True)
    assert np.isfinite(loss["loss"])
    from mtc_keras.models import probability_model

    outputs = probability_model(model).predict_on_batch(x[:16])
    for task, probabilities in outputs.items():
        assert probabilities.dtype == np.float32  # the logit heads and the softmax stay float32
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
