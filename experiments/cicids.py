"""Train and evaluate a model on CICIDS2017 (paper Table 4).

    python -m experiments.cicids --flagfile=experiments/configs/cicids_mtc.cfg [--data_dir=DIR]

Flags: experiments/common.py (--helpfull lists them). The run's files: see experiments.common.
The export takes the raw 49 CICFlowMeter features: the builder's quantile transform is inside.
"""

from experiments import common

main = common.main_for("cicids2017")

if __name__ == "__main__":
    common.run_for("cicids2017")
