"""Measuring code that does not ship with mean-tf (setup.py does not package it): the performance suite
(`python -m benchmarks.perf`). Run it from a checkout with the project's venv.

May import: mean_tf, pipeline.
"""
