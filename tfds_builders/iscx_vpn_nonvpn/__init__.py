"""ISCX VPN-nonVPN 2016 TFDS builder. Importing this package registers `iscx_vpn_nonvpn`:

    import tfds_builders.iscx_vpn_nonvpn  # noqa: F401
    ds = tfds.load("iscx_vpn_nonvpn/flow_split", split="train", data_dir=DATA_DIR)
"""

from .iscx_vpn_nonvpn_dataset_builder import Builder, IscxConfig, find_captures, format_report

__all__ = ["Builder", "IscxConfig", "find_captures", "format_report"]
