"""Pretrained trackers: the catalogue of official checkpoints and ``vos-ros fetch-model``."""
