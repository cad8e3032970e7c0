"""mtc_keras.registry: every entry agrees with its TFDS builder, and a built dataset loads
through the one loader without any import of tfds_builders."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from mtc_keras import labels, models, registry
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("key", sorted(registry.DATASETS))
def test_entry_agrees_with_its_builder(key):
    spec = registry.DATASETS[key]
    module = importlib.import_module(spec.builder_module)
    builder_cls = module.Builder
    assert builder_cls.name == spec.tfds_name
    assert tuple(c.name for c in builder_cls.BUILDER_CONFIGS) == spec.configs
    assert spec.builder_folder == f"tfds_builders/{spec.tfds_name}"
    assert (REPO_ROOT / spec.builder_folder / f"{spec.tfds_name}_dataset_builder.py").exists()
    features = builder_cls(config=spec.configs[0], data_dir="/nonexistent").info.features
    assert spec.input_name in features
    assert features[spec.input_name].shape == (spec.seq_len,)
    assert np.dtype(features[spec.input_name].np_dtype) == np.dtype(spec.input_dtype)
    assert set(spec.tasks) <= set(features)
    assert spec.tasks is labels.TASKS[key]
    assert spec.packets == ("flow_id" in features)
    assert set(spec.loss_ratios) == set(registry.MODELS)
    for model, ratios in spec.loss_ratios.items():
        assert set(ratios) == set(models.default_config(model, key)["num_classes"]), model


def _dummy_data(key: str):
    return REPO_ROOT / registry.DATASETS[key].builder_folder / "dummy_data"


def _build(key: str, config: str) -> dict[str, list]:
    """A config of a dataset built from its builder's dummy data by the dataset's module, without
    TFDS: {split: the class cell of every example} (the cells each split is stratified by)."""
    from mtc_keras import cicids, iscx, ustc

    if key == "iscx":
        built = iscx.load_packets(_dummy_data(key), config=config)
        return {s: list(zip(lab["app"].tolist(), lab["traffic"].tolist())) for s, (_, lab, _) in built.items()}
    if key == "ustc_tfc2016":
        built = ustc.load_packets(_dummy_data(key), config=config)
        return {s: lab["app"].tolist() for s, (_, lab, _) in built.items()}
    if key == "cicids2017":
        splits, _ = cicids.prepare_rows(cicids.find_sources(_dummy_data(key))[0], config)
        return {s: rows.attack.tolist() for s, rows in splits.items()}
    raise AssertionError(f"{key}: add how its module builds a config here")


@pytest.mark.parametrize("key", sorted(registry.DATASETS))
def test_a_paper_build_splits_every_class_by_the_registry_fractions(key):
    """Each class (cell) of the paper config is split in the registry's fractions, within
    rounding: at most one example off per split."""
    built = _build(key, "paper")
    fractions = dict(registry.DATASETS[key].splits)
    assert list(built) == list(fractions) and sum(fractions.values()) == pytest.approx(1.0)
    cells = {cell for rows in built.values() for cell in rows}
    assert cells
    for cell in cells:
        sizes = {split: rows.count(cell) for split, rows in built.items()}
        n = sum(sizes.values())
        for split, size in sizes.items():
            assert abs(size - fractions[split] * n) <= 1, (key, cell, sizes)


@pytest.mark.parametrize("key", sorted(registry.DATASETS))
def test_each_dataset_module_builds_the_registry_configs_and_refuses_others(key):
    spec = registry.DATASETS[key]
    for config in spec.configs:
        assert sum(len(rows) for rows in _build(key, config).values()) > 0, config
    other = next(c for d in registry.DATASETS.values() for c in d.configs if c not in spec.configs)
    with pytest.raises(ValueError, match=f"unknown .*config '{other}'"):
        _build(key, other)


def test_unknown_models_and_datasets_are_refused_by_name():
    with pytest.raises(ValueError, match="model name must be one of .* got 'resnet'"):
        models.build_model("resnet", "iscx")
    with pytest.raises(ValueError, match="dataset must be one of .* got 'mnist'"):
        models.build_model("mtc", "mnist")


def test_unknown_names_and_unbuilt_configs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        registry.load("mnist", "paper", str(tmp_path))
    with pytest.raises(ValueError, match="iscx has no config 'clean'"):
        registry.load("iscx", "clean", str(tmp_path))
    with pytest.raises(registry.NotBuiltError) as error:
        registry.load("cicids2017", "clean", str(tmp_path))
    assert isinstance(error.value, FileNotFoundError) and isinstance(error.value, ValueError)
    assert (f"run `tfds build tfds_builders/cicids2017 --config=clean --data_dir={tmp_path} "
            "--manual_dir=RAW_FILES` first") in str(error.value)


def test_a_built_dataset_loads_without_importing_its_builder(tmp_path):
    """Built with the builder class (as `tfds build` would), read back in a fresh process that
    never imports tfds_builders: TFDS reads the dataset from its own files, metadata included."""
    data_dir = str(tmp_path / "tfds")
    built = registry.prepare("cicids2017", "paper", data_dir,
                             manual_dir=str(REPO_ROOT / "tfds_builders" / "cicids2017" / "dummy_data"))
    assert built.is_prepared()
    script = (
        "import sys, mtc_keras\n"
        "from mtc_keras import registry, inputs\n"
        f"b = registry.load('cicids2017', 'paper', {data_dir!r})\n"
        "split = inputs.load_split('cicids2017', 'paper', 'test', data_dir=" f"{data_dir!r}, "
        "batch_size=8, training=False)\n"
        "assert 'quantile_transform' in b.info.metadata and 'build_report' in b.info.metadata\n"
        "assert not [m for m in sys.modules if m.startswith('tfds_builders')], 'imported a builder'\n"
        "print(b.info.splits['test'].num_examples, split.num_examples)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    n = built.info.splits["test"].num_examples
    assert result.stdout.split() == [str(n), str(n)]
    assert tfds.builder("cicids2017/paper", data_dir=data_dir).is_prepared()
