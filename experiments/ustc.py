"""Train and evaluate a model on USTC-TFC2016 (not in the MTC paper: a third, real dataset).

    python -m experiments.ustc --flagfile=experiments/configs/ustc_mtc.cfg [--data_dir=DIR] \
        [--manual_dir=../shared/data/ustc-tfc2016]
    python -m experiments.ustc --model=cnn --dataset_config=paper --output_dir=runs/x

Flags: experiments/common.py (--helpfull lists them). The run's files: see experiments.common.
Tasks `app` (20 classes) and `malware` (2); configs `flow_split` (leak-free) and `paper`.
"""

from experiments import common

main = common.main_for("ustc_tfc2016")

if __name__ == "__main__":
    common.run_for("ustc_tfc2016")
