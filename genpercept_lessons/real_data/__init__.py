"""Readers for the real datasets (Hypersim, Virtual KITTI 2, NYUv2) and the scripts' preparation into MiniScenes' schema."""
