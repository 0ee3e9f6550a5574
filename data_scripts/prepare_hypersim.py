"""Prepare Hypersim (raw HDF5 frames) as a 🤗 datasets folder in the course schema (full profile, notebook 05).

    python data_scripts/prepare_hypersim.py --root /data/hypersim --out /data/prepared/hypersim_train --split train

Reads <root>/metadata_images_split_scene_v1.csv (or --split-csv) and, per listed frame,
<root>/<scene>/images/scene_<cam>_final_hdf5/frame.IIII.color.hdf5 and
<root>/<scene>/images/scene_<cam>_geometry_hdf5/frame.IIII.depth_meters.hdf5 (+ normal_cam, render_entity_id).
"""
from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder holding the ai_VVV_NNN scene folders")
    parser.add_argument("--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--split-csv", default=None, help="default: <root>/metadata_images_split_scene_v1.csv")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N frames")
    parser.add_argument("--skip-missing", action="store_true", help="skip listed frames whose files are absent")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)

    from genpercept_lessons.real_data.prepare import prepare_hypersim

    out = prepare_hypersim(args.root, args.out, split=args.split, size=(args.height, args.width), limit=args.limit,
                           overwrite=args.overwrite, split_csv=args.split_csv, skip_missing=args.skip_missing)
    print(f"Hypersim {args.split} written to {out}")


if __name__ == "__main__":
    main()
