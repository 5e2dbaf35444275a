"""The one vector codec: packed little-endian float32 bytes, on the wire and in Redis."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recserve.runtime.errors import InvalidArgument

VECTOR_DTYPE = "<f4"


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def encode_vectors(vectors: np.ndarray) -> list[bytes]:
    """One blob per row of a [n, dim] matrix."""
    return [row.tobytes() for row in np.ascontiguousarray(vectors, dtype=VECTOR_DTYPE)]


def decode_vector(blob: bytes, dim: int, what: str) -> np.ndarray:
    """A caller's vector, validated: INVALID_ARGUMENT naming `what` unless it has `dim` values,
    all finite (a NaN would poison ANN search)."""
    if len(blob) != 4 * dim:
        raise InvalidArgument(f"{what} has {len(blob)} bytes; expected {4 * dim} (float32 x {dim})")
    vector = np.frombuffer(blob, dtype=VECTOR_DTYPE)
    if not np.isfinite(vector).all():
        raise InvalidArgument(f"{what} contains NaN or infinite values")
    return vector


def decode_vectors(blobs: Sequence[bytes | str | None], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored vectors (MGET replies, None for a missing key): (float32 [m, dim] with zero rows
    for missing, bool [m] found). A blob of the wrong size is corrupt data, not caller input:
    ValueError."""
    out = np.zeros((len(blobs), dim), dtype=np.float32)
    found = np.zeros(len(blobs), dtype=bool)
    for i, blob in enumerate(blobs):
        if isinstance(blob, str):
            raise TypeError("vectors are binary: use a Redis client with decode_responses=False")
        if blob is not None:
            if len(blob) != 4 * dim:
                raise ValueError(f"vector {i} has {len(blob)} bytes, expected {4 * dim}")
            out[i] = np.frombuffer(blob, dtype=VECTOR_DTYPE)
            found[i] = True
    return out, found
