"""Lists of arrays (weights, optimizer state) in HDF5 groups: the checkpoint format shared by
stage 1 and stage 3. Datasets are named 0000, 0001, ... in list order; no pickle."""
from __future__ import annotations

from typing import Iterable, Sequence

import h5py
import numpy as np


def write_arrays(group: h5py.Group, arrays: Iterable) -> None:
    for i, a in enumerate(arrays):
        group.create_dataset(f"{i:04d}", data=np.asarray(a))


def read_arrays(group: h5py.Group) -> list[np.ndarray]:
    return [group[k][()] for k in sorted(group)]


def assign_arrays(variables: Sequence, group: h5py.Group, where: str) -> None:
    """Load a group into variables of the same count and shapes; `where` names it in errors."""
    arrays = read_arrays(group)
    if len(arrays) != len(variables):
        raise ValueError(f"{where} holds {len(arrays)} arrays, expected {len(variables)} "
                         "(config changed? rerun with --force)")
    for v, a in zip(variables, arrays):
        if tuple(a.shape) != tuple(v.shape):
            raise ValueError(f"{where}: an array has shape {a.shape}, expected {tuple(v.shape)}")
        v.assign(a)
