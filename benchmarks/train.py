"""Training throughput of the full ISCX MTC: Keras 3 on JAX (XLA) against PyTorch on the CPU.

    python -m benchmarks.train [--batch 128] [--warmup 2] [--steps 5]

Each measurement runs in its own process (so allocators, thread pools and memory don't mix):
PyTorch with jemalloc (LD_PRELOAD, when libjemalloc is installed) and with the default
allocator, then Keras with ``jit_compile=True``. Every process trains the same architecture
(checked: parameter counts within 1%) on the same random batch of 1500-byte packets with
AdamW and the paper's loss weights, and times ``steps`` optimizer steps after ``warmup`` steps
(the first Keras step compiles). The reference is the faster PyTorch run. Needs PyTorch
(``make bench-deps``); the last line is ``speedup_vs_pytorch=<keras samples/s / pytorch's>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
# The build_model overrides that give the architecture benchmarks.torch_mtc implements: pooled
# heads, post-norm encoders, LayerNorm in the CNN -> Transformer fusion and scaled bytes into
# the embedding (the paper's shape; the package defaults have since moved to flattened heads,
# pre-norm, no fusion LayerNorm and a per-byte table).
TWIN_OVERRIDES = {"head_readout": "pool", "encoder_norm": "post", "fusion_down_norm": "layer",
                  "byte_embedding": 0}
RESULT = "RESULT "


def _batch(batch: int, num_classes: dict, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    packets = rng.integers(0, 256, (batch, 1500), dtype=np.uint8)
    labels = {t: rng.integers(0, k, batch).astype(np.int64) for t, k in num_classes.items()}
    labels["traffic"][::10] = -1  # some missing labels, as Tor captures have
    labels["aux"][::10] = -1
    return packets, labels


def _time_steps(step, warmup: int, steps: int) -> dict:
    """Wall and process-CPU seconds of each timed step (the CPU time shows contention)."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    result = {"warmup_s": time.perf_counter() - start, "step_s": [], "cpu_s": []}
    for _ in range(steps):
        start, cpu = time.perf_counter(), time.process_time()
        step()
        result["step_s"].append(time.perf_counter() - start)
        result["cpu_s"].append(time.process_time() - cpu)
    return result


def _worker_keras(args) -> dict:
    import numpy as np

    from mtc_keras import models, training

    model = models.build_model("mtc", "iscx", **TWIN_OVERRIDES)
    training.compile_model(model, jit_compile=True)
    config = models.default_config("mtc", "iscx")
    packets, labels = _batch(args.batch, config["num_classes"])
    labels = {t: v.astype(np.int32) for t, v in labels.items()}
    result = _time_steps(lambda: model.train_on_batch(packets, labels), args.warmup, args.steps)
    import jax

    return {**result, "parameters": model.count_params(),
            "device": f"{jax.devices()[0]}, jax {jax.__version__}"}


def _worker_torch(args) -> dict:
    import torch

    from benchmarks import torch_mtc

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    config = json.loads(args.config)
    model = torch_mtc.TorchMTC(config)
    model.train()
    step = torch_mtc.train_step_fn(model, config["loss_weights"])
    packets, labels = _batch(args.batch, config["num_classes"])
    packets = torch.from_numpy(packets)
    labels = {t: torch.from_numpy(v) for t, v in labels.items()}
    result = _time_steps(lambda: step(packets, labels), args.warmup, args.steps)
    return {**result, "parameters": torch_mtc.count_parameters(model),
            "device": f"cpu, {torch.get_num_threads()} threads, torch {torch.__version__}"}


def _run_worker(kind: str, args, config: dict, env_extra: dict | None = None) -> dict:
    command = [sys.executable, "-m", "benchmarks.train", "--worker", kind,
               "--batch", str(args.batch), "--warmup", str(args.warmup),
               "--steps", str(args.steps), "--config", json.dumps(config)]
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    raise RuntimeError(f"{kind} worker failed (exit {proc.returncode})")


def _samples_per_s(result: dict, batch: int) -> float:
    return batch * len(result["step_s"]) / sum(result["step_s"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--worker", choices=("keras", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = (_worker_keras if args.worker == "keras" else _worker_torch)(args)
        print(RESULT + json.dumps(result), flush=True)
        return

    from mtc_keras import models

    config = {**models.default_config("mtc", "iscx"), "head_branch": models.HEAD_BRANCH}
    config["key_dim"] = config["key_dim"] or max(1, config["d_model"] // config["num_heads"])
    runs = {}
    if os.path.exists(JEMALLOC):
        runs["pytorch (jemalloc)"] = _run_worker("torch", args, config, {"LD_PRELOAD": JEMALLOC})
    else:
        print(f"note: {JEMALLOC} absent (apt-get install libjemalloc2); PyTorch runs only with "
              "the default allocator", flush=True)
    runs["pytorch (glibc malloc)"] = _run_worker("torch", args, config)
    runs["keras-jax (XLA)"] = _run_worker("keras", args, config)

    keras_params = runs["keras-jax (XLA)"]["parameters"]
    for name, result in runs.items():
        rate = _samples_per_s(result, args.batch)
        steps = ", ".join(f"{s:.2f}" for s in result["step_s"])
        cpu = sum(result["cpu_s"]) / len(result["cpu_s"])
        print(f"{name:24s} {rate:7.2f} samples/s  params={result['parameters']:,}  "
              f"warm-up {result['warmup_s']:.1f} s  steps [{steps}] s  "
              f"cpu {cpu:.2f} s/step  on {result['device']}")
        if abs(result["parameters"] - keras_params) > 0.01 * keras_params:
            raise SystemExit(f"{name} has {result['parameters']} parameters, Keras "
                             f"{keras_params}: not the same architecture")
    torch_runs = {k: v for k, v in runs.items() if k.startswith("pytorch")}
    best = max(torch_runs, key=lambda k: _samples_per_s(torch_runs[k], args.batch))
    ratio = _samples_per_s(runs["keras-jax (XLA)"], args.batch) / _samples_per_s(
        torch_runs[best], args.batch)
    def cpu_per_step(result):
        return sum(result["cpu_s"]) / len(result["cpu_s"])

    print(f"batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up; "
          f"reference: {best}; CPU seconds per step, {best} / keras: "
          f"{cpu_per_step(torch_runs[best]) / cpu_per_step(runs['keras-jax (XLA)']):.2f}")
    print(f"speedup_vs_pytorch={ratio:.2f}")


if __name__ == "__main__":
    main()
