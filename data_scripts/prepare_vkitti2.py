"""Prepare Virtual KITTI 2 (rgb jpg + 16-bit cm depth PNG) as a 🤗 datasets folder in the course schema (notebook 05).

    python data_scripts/prepare_vkitti2.py --root /data/vkitti2 --out /data/prepared/vkitti2

Reads <root>/SceneXX/<variation>/frames/rgb/Camera_K/rgb_NNNNN.jpg and .../frames/depth/Camera_K/depth_NNNNN.png.
Virtual KITTI 2 has no official split: the defaults are E2E-FT's training frames (scenes 01 02 06 18 20 x
morning fog rain sunset overcast x Camera_0 Camera_1); choose others with --scenes/--variations/--cameras.
"""
from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    from genpercept_lessons.real_data.vkitti2 import VKITTI2_CAMERAS, VKITTI2_SCENES, VKITTI2_VARIATIONS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder holding the SceneXX folders of both tars")
    parser.add_argument("--out", required=True, help="output folder (written atomically)")
    parser.add_argument("--scenes", nargs="+", default=list(VKITTI2_SCENES), help="e.g. Scene01 or 01")
    parser.add_argument("--variations", nargs="+", default=list(VKITTI2_VARIATIONS))
    parser.add_argument("--cameras", nargs="+", default=list(VKITTI2_CAMERAS), help="Camera_0 Camera_1 (or 0 1)")
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N frames")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)

    from genpercept_lessons.real_data.prepare import prepare_vkitti2

    out = prepare_vkitti2(args.root, args.out, scenes=args.scenes, variations=args.variations, cameras=args.cameras,
                          limit=args.limit, overwrite=args.overwrite)
    print(f"Virtual KITTI 2 written to {out}")


if __name__ == "__main__":
    main()
