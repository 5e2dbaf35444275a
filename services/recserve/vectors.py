"""Vectors on the wire: packed little-endian float32 bytes."""

from __future__ import annotations

import numpy as np

from recserve.runtime.errors import InvalidArgument


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def decode_vector(blob: bytes, dim: int, what: str) -> np.ndarray:
    """Decodes and validates: right size, all finite (a NaN would poison ANN search)."""
    if len(blob) != 4 * dim:
        raise InvalidArgument(f"{what} has {len(blob)} bytes; expected {4 * dim} (float32 x {dim})")
    vector = np.frombuffer(blob, dtype="<f4")
    if not np.isfinite(vector).all():
        raise InvalidArgument(f"{what} contains NaN or infinite values")
    return vector
