"""Orchestration in one place: the runs that tie the stages together and write a run directory.

``train`` (train_run, finetune_run), ``evaluate`` (evaluate_bundle), ``demo`` (run_demo). The command line and
``train.py`` call these; the stages themselves (data, models, train, evaluate) never import this package.
"""
