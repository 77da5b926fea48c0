"""Federated learning: data, models, DP-SGD training, privacy accounting, aggregation, contribution scores
and payout rules."""
