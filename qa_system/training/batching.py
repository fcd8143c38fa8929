"""Training batches: windows of similar length together (little padding), in random order."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from .features import TrainWindow


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, sort within mega-batches of 50 batches by length, cut into batches, shuffle
    the batches: little padding waste, still random order."""
    return _packed_batches([[i] for i in range(len(lengths))], lengths, batch_size, seed)


def grouped_batches(windows: Sequence[TrainWindow], batch_size: int, seed: int) -> list[list[int]]:
    """Like ``length_grouped_batches``, but the windows of one group (one question on one long
    context) stay together in one batch; a group of more than ``batch_size`` windows is cut."""
    groups: dict[int, list[int]] = {}
    for i, w in enumerate(windows):
        groups.setdefault(w.group, []).append(i)
    units = [rows[i : i + batch_size] for rows in groups.values() for i in range(0, len(rows), batch_size)]
    return _packed_batches(units, [len(w.input_ids) for w in windows], batch_size, seed)


def _packed_batches(units: list[list[int]], lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle the units (lists of window indices, none longer than ``batch_size``), sort them
    by their longest window within mega-batches of about 50 batches, pack them in that order
    into batches of at most ``batch_size`` windows without splitting one, shuffle the batches."""
    rng = random.Random(seed)
    rng.shuffle(units)
    mega = batch_size * 50
    batches: list[list[int]] = []
    lo = 0
    while lo < len(units):
        hi, count = lo, 0
        while hi < len(units) and count < mega:
            count += len(units[hi])
            hi += 1
        batch: list[int] = []
        for unit in sorted(units[lo:hi], key=lambda u: max(lengths[i] for i in u)):
            if len(batch) + len(unit) > batch_size:
                batches.append(batch)
                batch = []
            batch.extend(unit)
        if batch:
            batches.append(batch)
        lo = hi
    rng.shuffle(batches)
    return batches


def collate(windows: Sequence[TrainWindow], pad_id: int,
            device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """A padded batch of ``windows``, on ``device`` (default: the CPU); with the teacher's scores
    (``teacher_start``, ``teacher_end``, padded with ``distill.MASKED``) when every window has them."""
    width = max(len(w.input_ids) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(windows), width), dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    for row, w in enumerate(windows):
        n = len(w.input_ids)
        ids[row, :n] = torch.tensor(w.input_ids)
        types[row, :n] = torch.tensor(w.token_type_ids)
        mask[row, :n] = 1
    batch = {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": mask,
        "start_positions": torch.tensor([w.start for w in windows]),
        "end_positions": torch.tensor([w.end for w in windows]),
    }
    if all(w.teacher_start is not None and w.teacher_end is not None for w in windows):
        from .distill import MASKED

        for name in ("teacher_start", "teacher_end"):
            scores = torch.full((len(windows), width), MASKED, dtype=torch.float32)
            for row, w in enumerate(windows):
                values = getattr(w, name)
                scores[row, : len(values)] = torch.from_numpy(values.astype("float32"))
            batch[name] = scores
    if device is None or device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
