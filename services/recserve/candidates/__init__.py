"""Candidate generation: approximate nearest neighbours over item vectors (ScaNN)."""
