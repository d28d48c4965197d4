"""Fitting and checking the shipped weights, run as modules: `python -m eval.train_ranker --help`."""
