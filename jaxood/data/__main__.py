"""`python -m jaxood.data {prepare,summary}`: prepare offline data, summarise it."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from jaxood.data import datasets
from jaxood.data.errors import DataError
from jaxood.data.preparation import ON_REQUEST, default_data_dir, is_prepared, prepare


def summary(data_dir) -> str:
    """One line per offline dataset and split: count, shape, pixel mean."""
    rows = [
        "| dataset | split | images | shape | mean pixel |",
        "|---|---|---|---|---|",
    ]
    for name in datasets.available():
        if name in ON_REQUEST and not is_prepared(name, data_dir):
            continue
        splits = ["test"] if name in datasets.SYNTHETIC else ["train", "test"]
        for split in splits:
            images = datasets.load(name, split, data_dir=data_dir)
            rows.append(
                f"| {name} | {split} | {len(images)} | {tuple(images.shape[1:])} "
                f"| {float(np.mean(images)):.1f} |"
            )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxood.data")
    parser.add_argument("command", choices=["prepare", "summary"])
    parser.add_argument(
        "names",
        nargs="*",
        help=f"datasets to prepare (default: all but {', '.join(ON_REQUEST)})",
    )
    parser.add_argument("--data-dir", default=None, help="default: $JAXOOD_DATA_DIR")
    parser.add_argument("--no-apt", action="store_true", help="never call apt-get")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    try:
        built = prepare(
            args.names or None, data_dir=data_dir, allow_apt=not args.no_apt
        )
        if args.command == "prepare":
            print(f"data dir {data_dir}: built {built or 'nothing (all prepared)'}")
        else:
            print(summary(data_dir))
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
