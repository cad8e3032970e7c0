"""CICIDS2017 TFDS builder: importing this package registers `cicids2017`."""

from tfds_builders.cicids2017.cicids2017_dataset_builder import Builder

__all__ = ["Builder"]
