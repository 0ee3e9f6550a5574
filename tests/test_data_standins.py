"""Stand-ins of Hypersim, Virtual KITTI 2 and NYUv2 in the real raw formats, read back by the course's own readers."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from genpercept_lessons.mini.miniscenes import miniscenes_features
from genpercept_lessons.mini.scenes import render_scene
from genpercept_lessons.real_data.hypersim import (
    HYPERSIM_DEPTH_RANGE,
    hypersim_frame_paths,
    hypersim_frames,
    read_hypersim_frame,
)
from genpercept_lessons.real_data.nyuv2 import nyuv2_rows, nyuv2_split_indices
from genpercept_lessons.real_data.standins import (
    STANDIN_DATASETS,
    STANDIN_SEED_OFFSETS,
    STANDIN_SETTINGS_FILE,
    VKITTI2_STANDIN_DEPTH_SCALE,
    VKITTI2_STANDIN_RENDER_SIZE,
    prepare_standin_data,
    write_hypersim_standin,
    write_nyuv2_standin,
    write_vkitti2_standin,
)
from genpercept_lessons.real_data.vkitti2 import kitti_benchmark_crop, read_vkitti2_frame, vkitti2_frames


def _load(out):
    from datasets import load_from_disk

    return load_from_disk(str(out)).with_format("numpy", dtype=None)


def _centre_sample(arr, size):
    """Nearest-neighbour resize by pixel-centre sampling, independent of PIL (which the writers use)."""
    h, w = arr.shape[:2]
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(int), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(int), w - 1)
    return arr[rows][:, cols]


def _mtimes(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


# ---------------------------------------------------------------------------------------------------------------
# the three writers, read back with the course's readers

def test_hypersim_standin_gives_back_the_rendered_rooms(tmp_path):
    import h5py

    root = write_hypersim_standin(tmp_path / "hs", n_train=2, n_val=1, size=(48, 64), seed=3)
    assert root == tmp_path / "hs"
    csv_path = root / "metadata_images_split_scene_v1.csv"
    assert hypersim_frames(csv_path, "train") == [("ai_001_001", "cam_00", 0), ("ai_001_001", "cam_00", 1)]
    assert hypersim_frames(csv_path, "val") == [("ai_001_001", "cam_00", 2)]
    f = 886.81 * 64 / 1024
    holes = 0
    for i in range(3):
        s = render_scene(3 + STANDIN_SEED_OFFSETS["hypersim"], i, 48, 64)
        paths = hypersim_frame_paths(root, "ai_001_001", "cam_00", i)
        with h5py.File(paths["color"]) as hc, h5py.File(paths["depth"]) as hd:
            assert hc["dataset"].dtype == np.float16 and hc["dataset"].shape == (48, 64, 3)
            assert hd["dataset"].dtype == np.float16 and hd["dataset"].shape == (48, 64)
            assert np.array_equal(np.isnan(hd["dataset"][()]), ~s.mask)  # windows: nothing hit
        holes += int((~s.mask).sum())
        assert paths["normal"].is_file() and paths["entity"].is_file()

        r = read_hypersim_frame(root, "ai_001_001", "cam_00", i, size=(48, 64))
        lo, hi = HYPERSIM_DEPTH_RANGE
        ok = r["mask"]
        assert np.array_equal(ok, s.mask & (s.depth > lo) & (s.depth < hi)) and ok.mean() > 0.8
        np.testing.assert_allclose(r["depth"][ok], s.depth[ok], rtol=1e-3)  # distance stored as float16
        assert (r["depth"][~ok] == 0).all() and (r["normals"][~ok] == 0).all()
        np.testing.assert_allclose(r["K"], [[f, 0, 32], [0, f, 24], [0, 0, 1]], rtol=1e-6)
        # the normal_cam route: the render's normals come back (a grazing one may be turned by the reader's K)
        dot = (r["normals"] * s.normals).sum(-1)[ok]
        assert (np.abs(dot) > 0.999).all() and (dot > 0.999).mean() > 0.99
        # colour: linear (image/255)^2.2 tone-mapped with gamma 1/2.2 is the image times one constant (the p90 scale)
        image, back = s.image.astype(np.float64), r["image"].astype(np.float64)
        use = (image > 20) & (back < 255)
        c = np.median(back[use] / image[use])
        assert 0.5 < c < 3 and np.abs(np.clip(np.round(image * c), 0, 255) - back).max() <= 2
    assert holes > 0  # frame 1 of this stream looks out of a window


def test_vkitti2_standin_gives_back_the_rendered_rooms_at_street_depth(tmp_path):
    from PIL import Image

    root = write_vkitti2_standin(tmp_path / "vk", n=2, seed=0)
    pairs = vkitti2_frames(root, scenes=("01",), variations=("morning",), cameras=(0,))
    assert [(p.name, q.name) for p, q in pairs] == [("rgb_00000.jpg", "depth_00000.png"),
                                                    ("rgb_00001.jpg", "depth_00001.png")]
    top, left = kitti_benchmark_crop(375, 1242)
    sky = 0
    for i, (rgb, depth) in enumerate(pairs):
        with Image.open(depth) as png, Image.open(rgb) as jpg:
            assert png.mode == "I;16" and png.size == (1242, 375) and jpg.size == (1242, 375)
            raw = np.asarray(png)
        s = render_scene(STANDIN_SEED_OFFSETS["vkitti2"], i, *VKITTI2_STANDIN_RENDER_SIZE)
        up_depth = _centre_sample(s.depth, (375, 1242)) * VKITTI2_STANDIN_DEPTH_SCALE
        assert np.array_equal(raw == 65535, up_depth == 0)  # windows are the sky
        sky += int((raw == 65535).sum())
        r = read_vkitti2_frame(rgb, depth)
        want = up_depth[top:top + 352, left:left + 1216]
        assert np.array_equal(r["mask"], want > 0) and 1 < want[want > 0].min() and want.max() < 30
        np.testing.assert_allclose(r["depth"], np.where(want > 0, want, 0), atol=0.01)  # stored in whole cm
        up_image = _centre_sample(s.image, (375, 1242))[top:top + 352, left:left + 1216]
        assert np.abs(r["image"].astype(int) - up_image).mean() < 3  # JPEG, quality 95
    assert sky > 0  # frame 0 of this stream looks out of a window


def test_nyuv2_standin_gives_back_the_rendered_rooms_upright(tmp_path):
    import h5py

    mat = write_nyuv2_standin(tmp_path / "nyu", n_test=3, n_train=2, seed=2)
    assert mat == tmp_path / "nyu" / "nyu_depth_v2_labeled.mat"
    assert mat.read_bytes()[:19] == b"MATLAB 7.3 MAT-file" and h5py.is_hdf5(mat)
    with h5py.File(mat) as f:
        assert f.userblock_size == 512
        assert f["images"].shape == (5, 3, 640, 480) and f["images"].dtype == np.uint8
        assert f["depths"].shape == f["rawDepths"].shape == (5, 640, 480) and f["rawDepths"].dtype == np.float32
    splits = mat.with_name("splits.mat")
    test, train = nyuv2_split_indices(splits, "test"), nyuv2_split_indices(splits, "train")
    assert test.tolist() == [0, 2, 4] and train.tolist() == [1, 3]
    rows = list(nyuv2_rows(mat, np.arange(5)))
    filled = list(nyuv2_rows(mat, np.arange(5), depth="filled"))
    for k in range(5):
        s = render_scene(2 + STANDIN_SEED_OFFSETS["nyuv2"], k, 120, 160)
        row = rows[k]
        assert row["image"].shape == (480, 640, 3)
        # ×4 upsampling: every 4th pixel is the render's, so the frame is upright and not mirrored
        assert np.array_equal(row["image"][::4, ::4], s.image) and np.array_equal(row["depth"][::4, ::4], s.depth)
        assert np.array_equal(row["image"], _centre_sample(s.image, (480, 640)))
        assert np.array_equal(row["mask"], _centre_sample(s.mask, (480, 640)))
        full = filled[k]["depth"]
        assert (full > 0).all() and np.array_equal(full[row["mask"]], row["depth"][row["mask"]])
    assert not rows[1]["mask"].all()  # frame 1 looks out of a window: raw depth 0 there, filled in `depths`


# ---------------------------------------------------------------------------------------------------------------
# prepare_standin_data: the four datasets the full profile reads

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data = tmp_path_factory.mktemp("standins") / "data"
    return data, prepare_standin_data(data)


def test_prepare_standin_data_writes_the_four_datasets(prepared):
    data, outs = prepared
    assert list(outs) == list(STANDIN_DATASETS) and all(p == data / name for name, p in outs.items())
    expected = {"hypersim_train": (4, 48, 64), "hypersim_val": (4, 48, 64), "vkitti2": (2, 352, 1216),
                "nyuv2_test": (8, 480, 640)}
    for name, (n, h, w) in expected.items():
        ds = _load(outs[name])
        assert len(ds) == n and ds.features == miniscenes_features(h, w), name
        row = ds[0]
        assert row["image"].shape == (h, w, 3) and row["mask"].mean() > 0.5 and (row["depth"][row["mask"]] > 0).all()
    train, val = _load(outs["hypersim_train"]), _load(outs["hypersim_val"])
    # prepared at 48×64 from frames written at 96×128: nearest takes the odd rows and columns
    s = render_scene(STANDIN_SEED_OFFSETS["hypersim"], 4, 96, 128)  # the first val frame
    ok = val[0]["mask"]
    np.testing.assert_allclose(val[0]["depth"][ok], s.depth[1::2, 1::2][ok], rtol=1e-3)
    assert not np.array_equal(train[0]["depth"], val[0]["depth"])
    s = render_scene(STANDIN_SEED_OFFSETS["nyuv2"], 2, 120, 160)  # NYUv2 test frames are 0, 2, 4
    assert np.array_equal(_load(outs["nyuv2_test"])[1]["image"][::4, ::4], s.image)
    recorded = json.loads((data / "raw" / STANDIN_SETTINGS_FILE).read_text())
    assert recorded == {name: {"seed": 0, "size": [48, 64]} for name in STANDIN_DATASETS}


def test_prepare_standin_data_is_idempotent(prepared):
    data, outs = prepared
    before = _mtimes(data)
    assert prepare_standin_data(data) == outs
    assert _mtimes(data) == before
    with pytest.raises(FileExistsError, match=r"were made with .*'seed': 0.*overwrite=True"):
        prepare_standin_data(data, seed=1)
    with pytest.raises(FileExistsError, match=r"'size': \[48, 64\].*overwrite=True"):
        prepare_standin_data(data, size=(32, 32))
    assert _mtimes(data) == before


def test_prepare_standin_data_fills_in_only_what_is_missing_and_overwrites(prepared, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(prepared[0], data)
    kept = {name: _mtimes(data / name) for name in ("hypersim_train", "vkitti2", "nyuv2_test")}
    shutil.rmtree(data / "hypersim_val")
    outs = prepare_standin_data(data)
    assert len(_load(outs["hypersim_val"])) == 4
    assert {name: _mtimes(data / name) for name in kept} == kept
    first = _load(outs["hypersim_train"])[0]["image"]
    prepare_standin_data(data, seed=1, overwrite=True)
    assert not np.array_equal(_load(outs["hypersim_train"])[0]["image"], first)
    assert {v["seed"] for v in json.loads((data / "raw" / STANDIN_SETTINGS_FILE).read_text()).values()} == {1}


def test_prepare_standin_data_never_mixes_with_data_it_did_not_make(tmp_path):
    foreign = tmp_path / "a"
    (foreign / "nyuv2_test").mkdir(parents=True)  # e.g. the real NYUv2, prepared
    with pytest.raises(FileExistsError, match="nyuv2_test .*not made by prepare_standin_data"):
        prepare_standin_data(foreign)
    raw = tmp_path / "b" / "raw" / "hypersim"
    raw.mkdir(parents=True)
    (raw / "metadata_images_split_scene_v1.csv").write_text("real download\n")
    with pytest.raises(FileExistsError, match="did not write"):
        prepare_standin_data(tmp_path / "b")
    assert (raw / "metadata_images_split_scene_v1.csv").read_text() == "real download\n"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["raw"]


# ---------------------------------------------------------------------------------------------------------------
# arguments

@pytest.mark.parametrize("call, message", [
    (lambda p: write_hypersim_standin(p, n_train=0), r"write_hypersim_standin: `n_train` must be an int >= 1, got 0"),
    (lambda p: write_hypersim_standin(p, n_val=1.5), r"`n_val` must be an int >= 1, got 1\.5"),
    (lambda p: write_hypersim_standin(p, size=(4, 64)), r"`size` must be \(height, width\) with ints in \[8, 4096\], "
                                                        r"got \(4, 64\)"),
    (lambda p: write_hypersim_standin(p, size=96), r"`size` must be .*got 96"),
    (lambda p: write_hypersim_standin(p, seed=-1), r"`seed` must be an int >= 0, got -1"),
    (lambda p: write_hypersim_standin(None), r"`root` must be a folder path .*got None"),
    (lambda p: write_vkitti2_standin(p, n=True), r"write_vkitti2_standin: `n` must be an int >= 1, got True"),
    (lambda p: write_vkitti2_standin(p, seed="0"), r"`seed` must be an int >= 0, got '0'"),
    (lambda p: write_vkitti2_standin(""), r"`root` must be a folder path .*got ''"),
    (lambda p: write_nyuv2_standin(p, n_test=0), r"write_nyuv2_standin: `n_test` must be an int >= 1, got 0"),
    (lambda p: write_nyuv2_standin(p, n_train=-2), r"`n_train` must be an int >= 1, got -2"),
    (lambda p: write_nyuv2_standin(3), r"`folder` must be a folder path .*got 3"),
    (lambda p: prepare_standin_data(p, size=(48, 4096)), r"prepare_standin_data: `size` must be .*\[8, 2048\]"),
    (lambda p: prepare_standin_data(p, seed=None), r"`seed` must be an int >= 0, got None"),
    (lambda p: prepare_standin_data(p, overwrite="yes"), r"`overwrite` must be True or False, got 'yes'"),
    (lambda p: prepare_standin_data(1.0), r"`data_dir` must be a folder path .*got 1\.0"),
])
def test_bad_arguments_are_named(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "out")
    assert not (tmp_path / "out").exists()
