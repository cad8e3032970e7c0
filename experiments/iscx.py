"""Train and evaluate a model on ISCX VPN-nonVPN (paper Tables 4, 6-9).

    python -m experiments.iscx --flagfile=experiments/configs/iscx_mtc.cfg [--data_dir=DIR]
    python -m experiments.iscx --model=mtc --dataset_config=flow_split --output_dir=runs/x

Flags: experiments/common.py (--helpfull lists them). The run's files: see experiments.common.
"""

from experiments import common

main = common.main_for("iscx")

if __name__ == "__main__":
    common.run_for("iscx")
