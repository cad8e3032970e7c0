"""The ISCX builder's Apache Beam generation writes the same dataset as the plain build.

Real builds of the demo captures: the plain build (this process and its workers) against the
Beam pipeline on Beam's DirectRunner, for the paper and flow_split configs, with the per-app cap
lowered to 40 packets so that the sampling, the VPN/non-VPN balance and (flow_split) the
cross-split duplicate drop all have work to do. Same seed, so the same examples in every split
and the same build report. Plus the `tfds build --beam_pipeline_options=runner=DirectRunner`
command that BUILD.md shows.
"""

import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from mtc_keras import synthetic
from tfds_builders.iscx_vpn_nonvpn import iscx_vpn_nonvpn_dataset_builder as iscx

beam = pytest.importorskip("apache_beam")  # the optional `beam` extra

REPO_ROOT = pathlib.Path(iscx.__file__).resolve().parents[2]

CAP = 40  # packets per app: the demo has ~80 per app, so the cap binds everywhere
SPLIT_NAMES = [name for name, _ in iscx.SPLITS]


class RecordingDirectRunner(beam.runners.DirectRunner):
    """Beam's DirectRunner, keeping the names of the transforms it ran."""

    transform_names: list = []

    def run_pipeline(self, pipeline, options):
        proto = pipeline.to_runner_api()
        RecordingDirectRunner.transform_names = [
            t.unique_name for t in proto.components.transforms.values()]
        return super().run_pipeline(pipeline, options)


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo_captures")
    synthetic.write_demo_captures(folder, packets_per_file=16)
    return folder


def _build(config, data_dir, manual_dir, runner=None):
    builder = iscx.Builder(config=config, data_dir=str(data_dir))
    download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    if runner is not None:
        download_config.beam_runner = runner
        download_config.beam_options = beam.options.pipeline_options.PipelineOptions([])
    builder.download_and_prepare(download_config=download_config)
    examples = {}
    for split in SPLIT_NAMES:
        examples[split] = sorted(
            (ex["capture"].decode(), ex["flow_id"].decode(), ex["packet"].tobytes(),
             int(ex["app"]), int(ex["traffic"]), int(ex["aux"]), bool(ex["vpn"]))
            for ex in tfds.as_numpy(builder.as_dataset(split=split)))
    return examples, builder.info.metadata["build_report"]


@pytest.mark.parametrize("base", ["paper", "flow_split"])
def test_beam_build_holds_the_plain_builds_examples(base, manual_dir, tmp_path):
    config = dataclasses.replace(iscx.Builder.builder_configs[base], name=f"{base}_cap{CAP}",
                                 max_packets_per_app=CAP)
    plain, plain_report = _build(config, tmp_path / "plain", manual_dir)
    RecordingDirectRunner.transform_names = []
    with_beam, beam_report = _build(config, tmp_path / "beam", manual_dir,
                                    runner=RecordingDirectRunner())

    # The captures were read and balanced inside the Beam pipeline, not by the plain path.
    names = RecordingDirectRunner.transform_names
    for step in ("Pass1", "SampleSide", "BalanceAndSplit", "DropCrossSplitDuplicates", "Pass2"):
        assert any(name.endswith(step) for name in names), (step, names)
    assert not any((tmp_path / "beam").rglob(iscx._BEAM_SUMMARY))  # its scratch file is gone

    kept = plain_report["kept_packets"]["app"]
    assert 0 < sum(len(plain[s]) for s in SPLIT_NAMES) < sum(kept.values())  # the cap bit
    for split in SPLIT_NAMES:
        assert plain[split], split
        assert with_beam[split] == plain[split], split
    assert json.dumps(beam_report, sort_keys=True) == json.dumps(plain_report, sort_keys=True)
    if base == "flow_split":  # the cross-split duplicate drop ran in both
        assert sum(plain_report["cross_split_duplicates_dropped"].values()) > 0


def test_tfds_build_command_with_beam_options(manual_dir, tmp_path):
    tfds_cli = shutil.which("tfds", path=str(pathlib.Path(sys.executable).parent))
    command = [tfds_cli] if tfds_cli else [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main"]
    result = subprocess.run(
        command + ["build", "tfds_builders/iscx_vpn_nonvpn", "--config=paper",
                   f"--manual_dir={manual_dir}", f"--data_dir={tmp_path}",
                   "--beam_pipeline_options=runner=DirectRunner"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "build report (paper, Apache Beam)" in result.stdout + result.stderr
    builder = iscx.Builder(config="paper", data_dir=str(tmp_path))
    report = builder.info.metadata["build_report"]
    for split in SPLIT_NAMES:
        total = builder.info.splits[split].num_examples
        assert total == report["split_packets"][split]["total"] > 0
