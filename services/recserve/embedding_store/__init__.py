"""Embedding store: item vectors and user state in Redis, per model version."""
