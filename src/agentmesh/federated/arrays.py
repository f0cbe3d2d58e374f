"""Numpy vectors on the wire: ``{"dtype", "size", "data"}`` with base64 little-endian bytes.

>>> unpack(pack(np.arange(3.0)), "float64").tolist()
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import numpy.typing as npt

from agentmesh.errors import ValidationError

DTYPES = ("float64", "float32", "uint64")


def pack(values: npt.NDArray[Any]) -> dict[str, Any]:
    """The JSON form of a 1-D vector."""
    arr = np.ascontiguousarray(values).ravel()
    if arr.dtype.name not in DTYPES:
        raise ValidationError(f"cannot send a {arr.dtype.name} vector: use one of {DTYPES}")
    le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": arr.dtype.name,
        "size": int(arr.size),
        "data": base64.b64encode(le.tobytes()).decode(),
    }


def unpack(obj: Any, dtype: str, size: int | None = None) -> npt.NDArray[Any]:
    """The vector of :func:`pack` output; a wrong dtype, size or encoding is a
    :class:`ValidationError` saying which."""
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), str):
        raise ValidationError("a vector is an object with 'dtype', 'size' and 'data'")
    if obj.get("dtype") != dtype:
        raise ValidationError(f"wrong dtype {obj.get('dtype')!r}: expected {dtype}")
    try:
        raw = base64.b64decode(obj["data"], validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("vector data is not valid base64") from None
    item = np.dtype(dtype).itemsize
    if len(raw) % item:
        raise ValidationError(f"vector data is not a whole number of {dtype} values")
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    if obj.get("size") != arr.size or (size is not None and arr.size != size):
        want = size if size is not None else obj.get("size")
        raise ValidationError(f"wrong shape: {arr.size} values, expected {want}")
    return arr
