"""Ranking: logistic regression over user/context x item cross features."""
