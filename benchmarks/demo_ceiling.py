"""How high can any per-packet classifier score on the demo's test split? An upper bound.

    python -m benchmarks.demo_ceiling                       # reads (or builds) runs/demo_data
    python -m benchmarks.demo_ceiling --model runs/demo/model.keras   # and scores the demo's MTC

The demo captures (``mtc_keras.demo_data``) put about half of every application's packets
inside OpenVPN tunnels, as the ISCX builder's sampling asks (half VPN, half non-VPN per app,
``mtc_keras.iscx.quotas``). A tunnelled packet is an outer UDP/1194 header, the P_DATA_V2
header (opcode, per-session peer id, packet counter), a random AEAD tag and the encrypted inner
packet: what it tells about the application is its size and its direction, nothing else.

So the bound gives every classifier more than it can have:
- every non-VPN test packet classified right;
- every VPN test packet given the most frequent app of its (IP length, direction) *on the test
  split itself* (fitted on the rows it is scored on, so no model trained on other flows can do
  better from those two fields).
Its app macro-F1 is ``app_f1_ceiling``. One more field does tell the capture apart: the outer
IPv4 identification of the client's packets, a per-host counter (Windows increments one for
all its flows), so a tunnel session's client packets sit next to the other sessions of the same
capture. That is a shortcut, not traffic: the bound leaves it out, and the benchmark measures
it instead (a 1-nearest-neighbour on the IP ID, train VPN rows to test VPN rows, per
direction) and prints the bound with it, ``app_f1_ceiling_with_ip_id``.

For scale it also fits, in the same run, the trees a model has to beat (gradient-boosted trees
on the header fields and the first 160 bytes, trained on the train split) and reports their
score on each side; ``--model`` adds a trained model's.

The last line is ``ceiling_minus_target=<app_f1_ceiling - --target>`` (issue 10's demo target
is 0.8): negative means no per-packet model reaches the target on these captures without the
IP-ID shortcut.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

DATASET = "iscx"
PREFIX_BYTES = 160


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_root", default=os.path.join("runs", "demo_data"),
                   help="the demo's data folder (experiments.demo's --data_root); built if missing")
    p.add_argument("--packets_per_file", type=int, default=None,
                   help="frames per demo capture when building (default: the demo's)")
    p.add_argument("--model", default=None, help="a trained .keras model to score on each side")
    p.add_argument("--target", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    return p


def load_splits(data_root: str, packets_per_file: int | None) -> dict[str, dict]:
    """{split: {"packet", "app", "traffic", ...}} of the demo's flow_split, built as the demo
    builds it when missing (experiments.demo)."""
    import tensorflow_datasets as tfds

    from experiments import demo
    from mtc_keras import demo_data, registry

    _, data_dir = demo.data_dirs(data_root)
    if not registry.builder(DATASET, demo.DATASET_CONFIG, data_dir).is_prepared():
        demo.build_dataset(data_root, packets_per_file or demo_data.DEFAULT_PACKETS_PER_FILE)
    builder = registry.load(DATASET, demo.DATASET_CONFIG, data_dir)
    splits = {}
    for split in builder.info.splits:
        parts = list(tfds.as_numpy(builder.as_dataset(split=split, batch_size=8192, shuffle_files=False)))
        splits[split] = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return splits


def is_vpn(traffic: np.ndarray) -> np.ndarray:
    """Rows whose traffic class is one of the VPN ones (Tor rows, with no traffic label, are not)."""
    from mtc_keras.labels import ISCX_VPN_TRAFFIC, TASKS

    return np.isin(traffic, [TASKS[DATASET]["traffic"].index(name) for name in ISCX_VPN_TRAFFIC])


def size_direction(packets: np.ndarray) -> np.ndarray:
    """[n, 2]: IP length and direction (1 when the source port is the lower one: server to client)."""
    from mtc_keras.packets import header_fields

    fields = header_fields(packets)
    return np.stack([fields["ip_length"], (fields["src_port"] < fields["dst_port"]).astype(np.int64)], 1)


def nearest_label(train_keys: np.ndarray, train_y: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The label of the train row with the nearest key (1-D), for each key."""
    order = np.argsort(train_keys, kind="stable")
    sorted_keys, sorted_y = train_keys[order], train_y[order]
    right = np.clip(np.searchsorted(sorted_keys, keys), 1, len(sorted_keys) - 1)
    left = right - 1
    take_right = np.abs(sorted_keys[right] - keys) < np.abs(keys - sorted_keys[left])
    return sorted_y[np.where(take_right, right, left)]


def in_sample_majority(keys: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's prediction: the most frequent label among the rows with its key (ties: lowest)."""
    _, key_index = np.unique(keys, axis=0, return_inverse=True)
    key_index = key_index.ravel()
    counts = np.zeros((key_index.max() + 1, int(y.max()) + 1), np.int64)
    np.add.at(counts, (key_index, y), 1)
    return counts.argmax(axis=1)[key_index]  # argmax takes the first, so the lowest label


def macro_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    from mtc_keras.evaluation import evaluate_predictions

    return float(evaluate_predictions({"app": y}, {"app": predicted}, DATASET)["app"]["macro_f1"])


def tree_features(split: dict) -> np.ndarray:
    from experiments.probe import probe_features

    return np.concatenate([probe_features(split["packet"])["header"], split["packet"][:, :PREFIX_BYTES]], 1)


def _sides(y: np.ndarray, predicted: np.ndarray, vpn: np.ndarray) -> str:
    return (f"app macro-F1 {macro_f1(y, predicted):.3f}; accuracy non-VPN "
            f"{(predicted[~vpn] == y[~vpn]).mean():.3f}, VPN {(predicted[vpn] == y[vpn]).mean():.3f}")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    import mtc_keras  # noqa: F401  (selects the Keras backend before anything imports keras)
    from mtc_keras import inputs
    from mtc_keras.labels import MISSING
    from mtc_keras.packets import header_fields

    inputs.configure_tensorflow()
    splits = load_splits(args.data_root, args.packets_per_file)
    train, test = splits["train"], splits["test"]
    y, vpn = test["app"], is_vpn(test["traffic"])
    if (y == MISSING).any():
        raise ValueError("test rows without an app label: the bound assumes every row has one")
    print(f"demo flow_split: {len(train['packet'])} train / {len(test['packet'])} test packets; "
          f"VPN share of test {vpn.mean():.3f} (train {is_vpn(train['traffic']).mean():.3f})")

    from sklearn.ensemble import HistGradientBoostingClassifier

    labelled = train["app"] != MISSING
    trees = HistGradientBoostingClassifier(max_iter=200, random_state=args.seed)
    trees.fit(tree_features(train)[labelled], train["app"][labelled])
    print(f"trees on header fields + first {PREFIX_BYTES} bytes (fitted on train): "
          + _sides(y, trees.predict(tree_features(test)), vpn))

    if args.model:
        import keras

        from benchmarks.learning import predict
        from mtc_keras import models  # noqa: F401  (registers MTC's classes for loading)

        model = keras.saving.load_model(args.model, compile=False)
        predicted = predict(model, test["packet"], batch_size=256)["app"]
        print(f"{args.model}: " + _sides(y, predicted, vpn))

    vpn_keys = size_direction(test["packet"][vpn])
    bound = y.copy()
    bound[vpn] = in_sample_majority(vpn_keys, y[vpn])
    ceiling = macro_f1(y, bound)
    print(f"bound: non-VPN all right, VPN by (IP length, direction) fitted on test itself: "
          f"VPN accuracy {(bound[vpn] == y[vpn]).mean():.3f}")

    # The shortcut: the nearest train VPN packet by IP ID, in the same direction.
    train_vpn = is_vpn(train["traffic"])
    train_keys = size_direction(train["packet"][train_vpn])
    shortcut = np.empty(int(vpn.sum()), np.int64)
    for direction, name in ((0, "client to server"), (1, "server to client")):
        rows, train_rows = vpn_keys[:, 1] == direction, train_keys[:, 1] == direction
        shortcut[rows] = nearest_label(header_fields(train["packet"][train_vpn][train_rows])["ip_id"],
                                       train["app"][train_vpn][train_rows],
                                       header_fields(test["packet"][vpn][rows])["ip_id"])
        print(f"shortcut: 1-NN on the IP ID, VPN {name}: accuracy "
              f"{(shortcut[rows] == y[vpn][rows]).mean():.3f} ({int(rows.sum())} test packets)")
    with_ip_id = bound.copy()
    with_ip_id[vpn] = np.where(shortcut == y[vpn], shortcut, bound[vpn])
    print(f"app_f1_ceiling_with_ip_id={macro_f1(y, with_ip_id):.4f}")
    print(f"app_f1_ceiling={ceiling:.4f}")
    print(f"ceiling_minus_target={ceiling - args.target:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
