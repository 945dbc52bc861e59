"""Experiments: the steps and stages that reproduce the study."""
