"""Bench-only RecBole anchors (GRU4Rec, SASRec, BPR) on our exact split; see docs/training.md."""
