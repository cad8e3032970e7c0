"""experiments.report on real write_reports output, the paper's numbers, and the flagfiles."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from experiments import report
from experiments.paper_results import MODEL_NAMES, PAPER_ROWS, TABLES
from mtc_keras import evaluation
from mtc_keras.labels import TASKS
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "experiments" / "configs"


def _write_run(run_dir: pathlib.Path, dataset: str, model: str, split: str, tasks, **extra) -> dict:
    """A run whose predictions are right for every example but the first of each task."""
    labels, predictions = {}, {}
    for task in tasks:
        n_classes = len(TASKS[dataset][task])
        labels[task] = np.arange(4 * n_classes) % n_classes
        predictions[task] = labels[task].copy()
        predictions[task][0] = 1  # class 0 -> class 1 once
    metrics = evaluation.evaluate_predictions(labels, predictions, dataset)
    evaluation.write_reports(str(run_dir), metrics,
                             run_info={"model": model, "dataset": dataset, "dataset_config": split, **extra})
    return metrics


def _row(markdown: str, run_dir) -> list[str]:
    """The cells of the one table row that names run_dir."""
    rows = [line for line in markdown.splitlines() if line.endswith(f"| {run_dir} |")]
    assert len(rows) == 1, rows
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


@pytest.fixture
def two_runs(tmp_path):
    iscx = _write_run(tmp_path / "iscx_mtc", "iscx", "mtc", "flow_split", ["app", "traffic", "aux"])
    cicids = _write_run(tmp_path / "my_cicids_run", "cicids2017", "cnn", "clean", ["attack", "mal"])
    return tmp_path, iscx, cicids


def test_report_puts_each_run_beside_the_paper_row_of_its_model(two_runs):
    tmp_path, iscx, cicids = two_runs
    paths = [str(tmp_path / "iscx_mtc"), str(tmp_path / "my_cicids_run")]
    markdown = report.build_report(report.load_runs(paths))
    lines = markdown.splitlines()

    mtc = _row(markdown, paths[0])
    assert mtc[:3] == ["MTC", "ours", "flow_split"]
    app_f1, app_rc = mtc[3:5]
    assert float(app_f1) == pytest.approx(100 * iscx["app"]["macro_f1"], abs=0.005)
    assert float(app_rc) == pytest.approx(100 * iscx["app"]["macro_recall"], abs=0.005)
    assert float(app_rc) < 100  # one of 68 app examples is wrong
    assert mtc[9:13] == ["–"] * 4  # no CICIDS tasks in an ISCX run
    # our row sits right under the paper's MTC row, which carries both datasets' numbers
    paper_mtc = lines[lines.index("| " + " | ".join(mtc) + " |") - 1]
    assert paper_mtc.startswith("| **MTC** | paper | paper | 98.25 | 98.30 |")
    assert "| 99.47 | 99.66 | 99.71 | 99.75 |" in paper_mtc

    cnn = _row(markdown, paths[1])  # no config name: matched by model and dataset
    assert cnn[:3] == ["1D-CNN", "ours", "clean"]
    assert cnn[3:9] == ["–"] * 6
    assert float(cnn[11]) == pytest.approx(100 * cicids["mal"]["macro_f1"], abs=0.005)
    assert "## Table 6" not in markdown and "## Table 9" not in markdown


def test_ustc_runs_get_a_table_of_their_own_and_stay_out_of_table4(tmp_path):
    mtc = _write_run(tmp_path / "ustc_mtc", "ustc_tfc2016", "mtc", "flow_split", ["app", "malware"])
    _write_run(tmp_path / "probe_header_gbt", "ustc_tfc2016", "probe_header_gbt", "paper", ["app", "malware"])
    _write_run(tmp_path / "iscx_mtc", "iscx", "mtc", "flow_split", ["app", "traffic", "aux"])
    paths = [str(tmp_path / name) for name in ("probe_header_gbt", "ustc_mtc", "iscx_mtc")]
    markdown = report.build_report(report.load_runs(paths))
    table4, ustc = markdown.split("## USTC-TFC2016")
    assert paths[0] not in table4 and paths[1] not in table4 and paths[2] in table4
    assert "| row | source | split | app F1 | app Rc | malware F1 | malware Rc | run |" in ustc
    rows = [line for line in ustc.splitlines() if line.startswith("| ") and "ours" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["MTC", "probe_header_gbt"]  # models first
    cells = _row(markdown, paths[1])
    assert cells[:3] == ["MTC", "ours", "flow_split"]
    assert float(cells[5]) == pytest.approx(100 * mtc["malware"]["macro_f1"], abs=0.005)


def test_report_handles_missing_tasks_sweep_cells_and_unknown_models(tmp_path):
    _write_run(tmp_path / "two", "iscx", "mtc_2task", "paper", ["app", "traffic"])
    _write_run(tmp_path / "epochs", "iscx", "mtc", "paper", ["app", "traffic", "aux"],
               config_name="table9_epochs50")
    _write_run(tmp_path / "probe", "iscx", "probe_header_gbt", "flow_split", ["app", "traffic", "aux"])
    runs = report.load_runs([str(tmp_path / name) for name in ("two", "epochs", "probe")])
    extra = report.Row(label="leakage", source="build report", scores={"app": (12.5, None)})
    markdown = report.build_report(runs, extra_rows=[extra], extra_sections=["## Leakage\n\nnone"])
    lines = markdown.splitlines()

    assert _row(markdown, tmp_path / "two")[7:9] == ["–", "–"]  # mtc_2task: no aux
    # the probe and the given extra row sit under the MTC rows, before the Transformer's
    def line_of(start):
        return lines.index(next(line for line in lines if line.startswith(start)))

    mtc, transformer = line_of("| **MTC** |"), line_of("| **Transformer** |")
    leakage, probe = line_of("| leakage | build report |"), line_of("| probe_header_gbt | ours | flow_split")
    assert mtc < leakage < probe < transformer
    assert "| 12.50 | – |" in lines[leakage]
    # a Table 9 run goes to its cell of Table 9 only
    assert TABLES["table9"] in markdown and TABLES["table6"] not in markdown
    cell = _row(markdown, tmp_path / "epochs")
    assert cell[:3] == ["50 epochs", "ours", "paper"] and len(cell) == 8
    assert lines[lines.index("| " + " | ".join(cell) + " |") - 1].startswith(
        "| **50 epochs** | paper | paper | 96.87 | 96.74 | 95.99 | 96.85 |")
    assert markdown.rstrip().endswith("## Leakage\n\nnone")


def test_report_cli_prints_and_writes_the_same_markdown(two_runs):
    tmp_path, _, _ = two_runs
    output = tmp_path / "results.md"
    paths = [str(tmp_path / "iscx_mtc"), str(tmp_path / "my_cicids_run")]
    done = subprocess.run([sys.executable, "-m", "experiments.report", *paths, f"--output={output}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == output.read_text()
    assert done.stdout == report.build_report(report.load_runs(paths))


def test_report_names_a_run_dir_without_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "metrics.json")):
        report.load_runs([str(tmp_path)])


# ------------------------------------------------------------------- the paper's numbers
def test_paper_results_cover_every_row_and_cell_of_tables_4_and_6_to_9():
    by_table = {table: [row for row in PAPER_ROWS.values() if row.table == table] for table in TABLES}
    assert {(row.dataset, row.model) for row in by_table["table4"]} == (
        {("iscx", model) for model in MODEL_NAMES}
        | {("cicids2017", model) for model in ("mtc", "transformer", "cnn")})
    assert [row.label for row in by_table["table6"]] == [f"m2, m3 = {a}, {b}" for a in (5, 6) for b in (5, 6)]
    assert [row.settings["loss_weights"] for row in by_table["table7"]] == [f"{w},2,1" for w in range(3, 8)]
    assert [row.settings["cnn_dropout"] for row in by_table["table8"]] == [0.05, 0.07, 0.09]
    assert [row.settings["epochs"] for row in by_table["table9"]] == [50, 80, 100, 120]
    for row in PAPER_ROWS.values():
        assert set(row.scores) <= set(TASKS[row.dataset]), row.key
        assert all(0 < value <= 100 for score in row.scores.values() for value in score), row.key
    # the paper repeats the final MTC cell in Tables 4, 8 and 9
    assert PAPER_ROWS["table8_dropout007"].scores["app"] == PAPER_ROWS["iscx_mtc"].scores["app"]
    assert PAPER_ROWS["table9_epochs100"].scores["traffic"] == PAPER_ROWS["iscx_mtc"].scores["traffic"]


# ---------------------------------------------------------------------------- flagfiles
def _experiment_flags() -> flags.FlagValues:
    """Exactly the flags of experiments/iscx.py and experiments/cicids.py."""
    fv = flags.FlagValues()
    flags.DEFINE_enum("model", "mtc", list(MODEL_NAMES), "", flag_values=fv)
    flags.DEFINE_enum("dataset_config", "paper", ["paper", "flow_split", "clean"], "", flag_values=fv)
    flags.DEFINE_integer("epochs", 100, "", flag_values=fv)
    flags.DEFINE_integer("batch_size", 128, "", flag_values=fv)
    flags.DEFINE_enum("optimizer", "adam_l2", ["adam_l2", "adamw"], "", flag_values=fv)
    flags.DEFINE_integer("warmup_steps", 50, "", flag_values=fv)
    flags.DEFINE_float("learning_rate", 1e-3, "", flag_values=fv)
    flags.DEFINE_float("weight_decay", 1e-4, "", flag_values=fv)
    flags.DEFINE_list("loss_weights", None, "", flag_values=fv)
    flags.DEFINE_list("encoder_repeats", None, "", flag_values=fv)
    flags.DEFINE_float("cnn_dropout", 0.07, "", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "", flag_values=fv)
    flags.DEFINE_bool("jit_compile", True, "", flag_values=fv)
    flags.DEFINE_integer("max_train_examples", None, "", flag_values=fv)
    flags.DEFINE_enum("schedule", "constant", ["constant", "cosine"], "", flag_values=fv)
    flags.DEFINE_enum("identifiers", None, ["keep", "redraw", "mask"], "", flag_values=fv)
    return fv


def _parse(cfg: pathlib.Path) -> flags.FlagValues:
    fv = _experiment_flags()
    fv(["experiment", f"--flagfile={cfg}"])
    return fv


USTC_CONFIGS = {"ustc_mtc", "ustc_transformer", "ustc_cnn"}  # not in the paper


def test_there_is_one_flagfile_per_paper_row_and_cell_plus_the_demo():
    assert {cfg.stem for cfg in CONFIGS.glob("*.cfg")} == set(PAPER_ROWS) | {"demo"} | USTC_CONFIGS


@pytest.mark.parametrize("key", sorted(USTC_CONFIGS))
def test_ustc_flagfiles_train_the_leak_free_split_with_one_weight_per_task(key):
    cfg = CONFIGS / f"{key}.cfg"
    fv = _parse(cfg)
    assert fv.model == key.removeprefix("ustc_")
    assert (fv.dataset_config, fv.output_dir) == ("flow_split", f"runs/{key}")
    assert fv.loss_weights == ["2", "1"] and len(fv.loss_weights) == len(TASKS["ustc_tfc2016"])
    assert "flow_split is the leak-free" in cfg.read_text()


@pytest.mark.parametrize("key", sorted(PAPER_ROWS))
def test_paper_flagfile_sets_what_the_paper_states_for_its_cell(key):
    cfg = CONFIGS / f"{key}.cfg"
    fv = _parse(cfg)
    row = PAPER_ROWS[key]
    assert fv.model == row.model
    assert fv.dataset_config == "paper"
    assert fv.output_dir == f"runs/{key}"
    assert fv.optimizer == "adam_l2"  # the paper's PyTorch Adam(weight_decay=1e-4): an L2 term
    for flag, value in row.settings.items():
        parsed = fv[flag].value
        assert (",".join(parsed) if isinstance(parsed, list) else parsed) == value, flag
    if fv.loss_weights is not None:  # one weight per output of the model (mtc_2task has no aux)
        assert len(fv.loss_weights) == (2 if row.model == "mtc_2task" else len(TASKS[row.dataset]))
    leak_free = "flow_split" if row.dataset == "iscx" else "clean"
    assert f"{leak_free} is the leak-free" in cfg.read_text()
    # a later --dataset_config on the command line overrides the flagfile's
    fv = _experiment_flags()
    fv(["experiment", f"--flagfile={cfg}", f"--dataset_config={leak_free}"])
    assert fv.dataset_config == leak_free


def test_cicids_flagfiles_weight_two_tasks():
    # attack:mal is 2:1 for MTC (§3.3.5) and 3:1 for both comparison models (§4.3).
    expected = {"cicids_mtc": ["2", "1"], "cicids_transformer": ["3", "1"], "cicids_cnn": ["3", "1"]}
    for key, weights in expected.items():
        assert _parse(CONFIGS / f"{key}.cfg").loss_weights == weights


def test_demo_flagfile():
    fv = _parse(CONFIGS / "demo.cfg")
    assert (fv.model, fv.dataset_config) == ("mtc", "flow_split")
    assert (fv.data_dir, fv.output_dir) == ("runs/demo_data/tfds", "runs/demo")


def test_an_unknown_flag_in_a_flagfile_is_rejected(tmp_path):
    # guards the test above: the parser really rejects what the scripts would not define
    bad = tmp_path / "bad.cfg"
    bad.write_text("--model=mtc\n--dropout=0.1\n")
    with pytest.raises(flags.UnrecognizedFlagError):
        _parse(bad)
