"""ISCX VPN-nonVPN 2016 TFDS builder. Importing this package registers `iscx_vpn_nonvpn` (a
built dataset needs no import: mtc_keras.registry.load, or tfds.load with its data_dir):

    import tfds_builders.iscx_vpn_nonvpn  # noqa: F401
    ds = tfds.load("iscx_vpn_nonvpn/flow_split", split="train", data_dir=DATA_DIR)

The logic is mtc_keras.iscx; find_captures and format_report are its functions.
"""

from .iscx_vpn_nonvpn_dataset_builder import Builder, IscxConfig, find_captures, format_report

__all__ = ["Builder", "IscxConfig", "find_captures", "format_report"]
