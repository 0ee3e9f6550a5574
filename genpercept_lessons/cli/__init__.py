"""The command line (``python -m genpercept_lessons``): doctor, assets, predict, bench, train. Not lesson material."""
