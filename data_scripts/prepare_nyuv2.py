"""Prepare NYUv2 labeled (nyu_depth_v2_labeled.mat + splits.mat) as a 🤗 datasets folder in the course schema (notebook 08).

    python data_scripts/prepare_nyuv2.py --mat /data/nyu/nyu_depth_v2_labeled.mat --out /data/prepared/nyuv2_test

The .mat is MATLAB v7.3 (HDF5); splits.mat (next to it unless --splits) holds the 1-based official split.
"""
from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mat", required=True, help="path to nyu_depth_v2_labeled.mat")
    parser.add_argument("--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--splits", default=None, help="path to splits.mat (default: next to --mat)")
    parser.add_argument("--depth", default="raw", choices=("raw", "filled"),
                        help="rawDepths (Marigold's evaluation) or the in-painted depths")
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N frames")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)

    from genpercept_lessons.real_data.prepare import prepare_nyuv2

    out = prepare_nyuv2(args.mat, args.out, split=args.split, splits_mat=args.splits, depth=args.depth,
                        limit=args.limit, overwrite=args.overwrite)
    print(f"NYUv2 {args.split} written to {out}")


if __name__ == "__main__":
    main()
