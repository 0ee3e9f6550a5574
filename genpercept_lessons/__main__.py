"""Command line: ``python -m genpercept_lessons assets``."""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m genpercept_lessons``."""
    parser = argparse.ArgumentParser(prog="python -m genpercept_lessons", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("assets", help="build the mini assets (MiniScenes, mini VAE, mini-Marigold depth and normals)")
    sub.add_parser("paths", help="print where the mini assets live and whether they are built")
    args = parser.parse_args(argv)
    if args.command == "assets":
        from .build import build_mini_assets

        build_mini_assets()
    elif args.command == "paths":
        from .build import mini_asset_paths, mini_assets_ready

        ready = mini_assets_ready()
        for k, p in mini_asset_paths().items():
            print(f"{'✓' if ready[k] else '✗'} {k:8s} {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
