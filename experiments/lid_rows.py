"""Compact copies of a LID run's cached rows, small enough to commit.

A LID run caches the row of every image it evaluates (decoder spectrum and log p,
LIDL curves) in ``<workdir>/lid/`` (:func:`jaxood.io.resumable_rows`) so that it
resumes. Exact spectra of the spline flow take about 2 s per image on 2 CPU cores,
hours per set of 5,000 images, and a run folder does not move from one machine to
the next; a shipped copy does::

    python -m experiments.ship --run runs/glow_fmnist_spline_animal_5000 \
        --to experiments/lid_rows/glow_fmnist_spline --lid-rows

``--config.lid.rows_from=experiments/lid_rows/glow_fmnist_spline`` then starts a run
from it as from a run folder: the rows of the same ID model and the same images are
taken, the others computed.

Layout, for each cached file ``<stem>.npz`` of the run: ``<stem>.key.json`` (the ID
model the rows belong to) and parts ``<stem>.<first row, zero-padded>.npz`` that are
only ever added: shipping a run that got further writes one more part, and git
stores each row once. The singular values (descending, as SVDs return them) are
stored as log σ in steps of 2⁻¹⁴: the first of each row and the gaps between
neighbours, split into byte planes that deflate compresses well: about 1.1 kB per
image of 1,024 values instead of 4 kB, each log σ within 2⁻¹⁵ of its float32 value
and float32 rounding again (3.1e-5 in all; σ below float32's normal range, 1e-38,
loses more). A row with a NaN (no finite Jacobian) comes back all NaN, as the
pipeline drops it; σ = 0 comes back as 0. The other fields (log p, LIDL curves) are
kept as they are. The row of an image that repeats an earlier one (5,000 constant
images hold at most 256 grey levels) is stored as the index of that row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxood import io

STEP = 2.0**-14  # of log σ
LIMIT = 128.0  # |log σ| stored: every finite float32 σ; 0 and inf are clipped
PLANES = 3  # bytes per gap: gaps stay below 2 * LIMIT / STEP = 2^22 steps
SPECTRUM = "s"  # the field encoded; the others are stored as they are
FIRST, GAPS, MISSING = "log_s_first", "log_s_gaps", "s_missing"
COPY_OF = "copy_of"  # a row of the same input as an earlier row is stored once


def encode(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``rows`` with the singular values ``s`` (N, D), descending along each row as
    SVDs return them, replaced by the first log σ of each row and byte planes of
    the gaps between neighbours (in steps of ``STEP``).

    Raises:
        ValueError: a row of ``s`` is not descending.
    """
    stored = {k: v for k, v in rows.items() if k != SPECTRUM}
    if SPECTRUM not in rows:
        return stored
    s = np.asarray(rows[SPECTRUM], np.float64)
    missing = np.isnan(s).any(axis=1)
    with np.errstate(divide="ignore"):  # σ = 0 is clipped like any tiny σ
        log_s = np.clip(np.log(np.where(missing[:, None], 1.0, s)), -LIMIT, LIMIT)
    steps = np.rint(log_s / STEP).astype(np.int64)
    gaps = -np.diff(steps, axis=1)
    if (gaps < 0).any():
        raise ValueError("each row of s must be descending, as an SVD returns it.")
    stored[FIRST] = steps[:, 0].astype(np.int32)
    for plane in range(PLANES):  # deflate compresses byte planes better than int32
        stored[f"{GAPS}_{plane}"] = ((gaps >> (8 * plane)) & 255).astype(np.uint8)
    stored[MISSING] = missing
    return stored


def decode(stored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rows that :func:`encode` stored, ``s`` as float32 singular values."""
    rows = dict(stored)
    if FIRST not in rows:
        return rows
    gaps = sum(
        rows.pop(f"{GAPS}_{p}").astype(np.int64) << (8 * p) for p in range(PLANES)
    )
    first = rows.pop(FIRST).astype(np.int64)[:, None]
    steps = np.concatenate([first, first - np.cumsum(gaps, axis=1)], axis=1)
    s = np.exp(steps * STEP).astype(np.float32)
    s[rows.pop(MISSING)] = np.nan
    rows[SPECTRUM] = s
    return rows


def _parts(folder: Path, stem: str) -> list[Path]:
    """The parts of ``stem`` in ``folder``, in the order of their first rows."""
    numbered = [(p.suffixes[-2][1:], p) for p in folder.glob(f"{stem}.*.npz")]
    return [p for n, p in sorted((int(n), p) for n, p in numbered if n.isdigit())]


def load(folder: Path, stem: str) -> tuple[dict | None, dict[str, np.ndarray]]:
    """The key and the rows, with their input hashes (``io.INPUTS_FIELD``), shipped
    in ``folder`` for the cache file ``<stem>.npz``; ``(None, {})`` when none.

    Raises:
        ValueError: a part is missing (the parts do not follow one another).
    """
    key_file, parts = folder / f"{stem}.key.json", _parts(folder, stem)
    if not key_file.exists() or not parts:
        return None, {}
    stored, count = [], 0
    for part in parts:
        if int(part.stem.rsplit(".", 1)[1]) != count:
            raise ValueError(
                f"{folder}: {part.name} follows {count} rows of {stem}: a part is "
                "missing; ship the run again into an empty folder."
            )
        stored.append(dict(np.load(part)))
        count += len(stored[-1][io.INPUTS_FIELD])
    joined = {k: np.concatenate([s[k] for s in stored]) for k in stored[0]}
    copy_of, inputs = joined.pop(COPY_OF), joined.pop(io.INPUTS_FIELD)
    own, copies = decode(joined), copy_of >= 0
    rows = {k: np.empty((count, *v.shape[1:]), v.dtype) for k, v in own.items()}
    for k, v in own.items():  # a copy is of a row stored as such (its first input)
        rows[k][~copies] = v
        rows[k][copies] = rows[k][copy_of[copies]]
    return json.loads(key_file.read_text()), rows | {io.INPUTS_FIELD: inputs}


def saved_rows(path: Path, key: dict, hashes: np.ndarray) -> dict | None:
    """:func:`jaxood.io.saved_rows` for a shipped copy of the cache file ``path``
    (its parts in ``path.parent``): ``{}`` when none are shipped for ``key``, None
    when they are of other inputs."""
    held_key, held = load(path.parent, path.stem)
    return io.matching_rows(held, hashes) if held_key == io.as_json(key) else {}


def ship(lid_dir: Path, dest: Path) -> list[Path]:
    """Adds to ``dest`` the cached rows of the run folder ``lid_dir``
    (``<workdir>/lid``) that ``dest`` does not hold yet; returns the parts written.

    Raises:
        SystemExit: ``dest`` holds rows of another model or of other images under
            the same name (ship to another folder).
    """
    written = []
    for key_file in sorted(lid_dir.glob("*.key.json")):
        stem = key_file.name.removesuffix(".key.json")
        if not (lid_dir / f"{stem}.npz").exists():
            continue
        key, rows = json.loads(key_file.read_text()), np.load(lid_dir / f"{stem}.npz")
        held_key, held = load(dest, stem)
        inputs = rows[io.INPUTS_FIELD]
        if held and (held_key != key or io.matching_rows(held, inputs) is None):
            raise SystemExit(
                f"{dest} holds rows named {stem} of another model or of other images "
                f"than {lid_dir}; ship to another folder."
            )
        start = len(held.get(io.INPUTS_FIELD, ()))
        if len(inputs) > start:
            dest.mkdir(parents=True, exist_ok=True)
            written.append(dest / f"{stem}.{start:05d}.npz")
            io.save_arrays(written[-1], _part(dict(rows), start))
            io.write_json(dest / f"{stem}.key.json", key)
    return written


def _part(rows: dict[str, np.ndarray], start: int) -> dict[str, np.ndarray]:
    """Rows ``start:`` of a cache file as a part stores them."""
    inputs = rows.pop(io.INPUTS_FIELD)
    source = io.first_occurrences(inputs)[start:]
    own = source == np.arange(start, len(inputs))
    return encode({k: v[start:][own] for k, v in rows.items()}) | {
        COPY_OF: np.where(own, -1, source).astype(np.int32),
        io.INPUTS_FIELD: inputs[start:],
    }
