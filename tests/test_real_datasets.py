"""Real-dataset readers and prepare_* on small stand-in files written in the real formats (HDF5, 16-bit PNG, v7.3 .mat)."""
from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

from genpercept_lessons.mini.miniscenes import miniscenes_features
from genpercept_lessons.real_data import prepare
from genpercept_lessons.real_data.geometry import planar_depth_to_distance
from genpercept_lessons.real_data.hypersim import hypersim_frames, read_hypersim_frame, tone_map_hypersim
from genpercept_lessons.real_data.nyuv2 import NYUV2_K, nyuv2_rows, nyuv2_split_indices
from genpercept_lessons.real_data.prepare import SETTINGS_FILE, prepare_hypersim, prepare_nyuv2, prepare_vkitti2
from genpercept_lessons.real_data.vkitti2 import kitti_benchmark_crop, read_vkitti2_frame, vkitti2_frames


def _load(out):
    from datasets import load_from_disk

    return load_from_disk(str(out)).with_format("numpy", dtype=None)


def _assert_schema(ds, h, w):
    assert ds.features == miniscenes_features(h, w)
    row = ds[0]
    assert row["image"].dtype == np.uint8 and row["image"].shape == (h, w, 3)
    assert row["depth"].dtype == np.float32 and row["normals"].dtype == np.float32 and row["normals"].shape == (h, w, 3)
    assert row["mask"].dtype == bool and row["label"].dtype == np.uint8 and (row["label"] == 255).all()
    assert row["K"].shape == (3, 3)


def _leftovers(parent, name):
    return sorted(p.name for p in parent.iterdir() if p.name != name and p.name.startswith((name, f".{name}")))


# ---------------------------------------------------------------------------------------------------------------
# Hypersim: HDF5 files with key "dataset" at 96x128 (the real frames are 768x1024) + the split CSV

HS_H, HS_W = 96, 128
HS_F = 886.81 * HS_W / 1024


def _h5(path, arr):
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("dataset", data=arr)


def _hs_planar(frame: int) -> np.ndarray:
    rows, cols = np.mgrid[0:HS_H, 0:HS_W]
    d = 3.0 + frame + 0.01 * rows + 0.001 * cols  # recognisable, smooth (no discontinuities)
    d[:8, :8] = 70.0  # beyond Hypersim's 65 m cap
    return d


@pytest.fixture
def hypersim_root(tmp_path):
    root = tmp_path / "hypersim"
    scene, cam = "ai_001_001", "cam_00"
    images = root / scene / "images"
    geo, final = images / f"scene_{cam}_geometry_hdf5", images / f"scene_{cam}_final_hdf5"
    for frame in range(4):
        rows, cols = np.mgrid[0:HS_H, 0:HS_W]
        rgb = np.stack([0.02 * cols / HS_W, 0.02 * rows / HS_H, np.full((HS_H, HS_W), 0.01 * (frame + 1))], -1)
        _h5(final / f"frame.{frame:04d}.color.hdf5", rgb.astype(np.float16))
        distance = planar_depth_to_distance(_hs_planar(frame), HS_F)
        distance[40:44, 60:70] = np.nan  # no geometry
        _h5(geo / f"frame.{frame:04d}.depth_meters.hdf5", distance.astype(np.float16 if frame else np.float32))
    # frame 0: camera-space normals, half of them stored back-facing
    n = np.tile(np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0]), (HS_H, HS_W, 1))
    n[HS_H // 2:] *= -1
    n[40:44, 60:70] = np.nan
    _h5(geo / "frame.0000.normal_cam.hdf5", n.astype(np.float16))
    # frame 1: render_entity_id with a -1 (no geometry) patch
    entity = np.ones((HS_H, HS_W), np.int32)
    entity[70:80, 100:110] = -1
    _h5(geo / "frame.0001.render_entity_id.hdf5", entity)
    with open(root / "metadata_images_split_scene_v1.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scene_name", "camera_name", "frame_id", "included_in_public_release", "split_partition_name"])
        w.writerows([[scene, cam, 0, "True", "train"], [scene, cam, 1, "True", "train"],
                     [scene, cam, 2, "False", "train"], [scene, cam, 3, "True", "val"]])
    return root


def test_hypersim_split_list(hypersim_root):
    csv_path = hypersim_root / "metadata_images_split_scene_v1.csv"
    assert hypersim_frames(csv_path, "train") == [("ai_001_001", "cam_00", 0), ("ai_001_001", "cam_00", 1)]
    assert hypersim_frames(csv_path, "val") == [("ai_001_001", "cam_00", 3)]


def test_hypersim_frame_values(hypersim_root):
    r = read_hypersim_frame(hypersim_root, "ai_001_001", "cam_00", 0, size=(HS_H, HS_W))
    planar = _hs_planar(0)
    ok = r["mask"]
    assert not ok[:8, :8].any() and not ok[40:44, 60:70].any() and ok.sum() == HS_H * HS_W - 64 - 40
    np.testing.assert_allclose(r["depth"][ok], planar[ok], rtol=1e-5)  # distance → planar depth, exactly
    assert (r["depth"][~ok] == 0).all() and (r["normals"][~ok] == 0).all()
    # normal_cam is already x right / y up / z toward the viewer; back-facing ones are turned to face the camera
    expected = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])
    np.testing.assert_allclose(r["normals"][ok], np.tile(expected, (ok.sum(), 1)), atol=2e-3)
    np.testing.assert_allclose(r["K"], [[HS_F, 0, 64], [0, HS_F, 48], [0, 0, 1]], rtol=1e-6)
    # tone mapping of the HDR colour over the valid (finite-distance) pixels, as Hypersim's reference operator
    import h5py

    with h5py.File(hypersim_root / "ai_001_001/images/scene_cam_00_final_hdf5/frame.0000.color.hdf5") as f:
        hdr = f["dataset"][()]
    geometry = np.ones((HS_H, HS_W), bool)
    geometry[40:44, 60:70] = False
    assert np.array_equal(r["image"], tone_map_hypersim(hdr, geometry))


def test_hypersim_resize_entity_and_depth_normals(hypersim_root):
    r = read_hypersim_frame(hypersim_root, "ai_001_001", "cam_00", 1, size=(48, 64))
    assert r["image"].shape == (48, 64, 3) and r["depth"].shape == (48, 64)
    planar = _hs_planar(1)
    # nearest = pixel-centre sampling: output (i, j) takes input (2i+1, 2j+1)
    ok = r["mask"]
    np.testing.assert_allclose(r["depth"][ok], planar[1::2, 1::2][ok], rtol=2e-3)  # stored as float16 distances
    assert not ok[35:40, 50:55].any()  # render_entity_id == -1 → invalid
    f = 886.81 * 64 / 1024
    np.testing.assert_allclose(r["K"], [[f, 0, 32], [0, f, 24], [0, 0, 1]], rtol=1e-6)
    # no normal_cam file: normals from depth, unit and facing the camera (+z dominates for this near-frontal ramp)
    valid = np.linalg.norm(r["normals"], axis=-1) > 0
    assert valid.sum() > 0.8 * ok.sum() and not (valid & ~ok).any()
    np.testing.assert_allclose(np.linalg.norm(r["normals"][valid], axis=-1), 1, atol=1e-5)
    assert (r["normals"][valid][:, 2] > 0.5).all()


def test_hypersim_back_faces_turn_toward_the_camera_off_centre(tmp_path):
    """Ceiling, floor and side walls seen off the image centre, every other one stored back-facing: each must come
    out facing the camera, which depends on the x and y of the pixel's ray, not only on its z."""
    scene, cam = "ai_002_002", "cam_00"
    images = tmp_path / scene / "images"
    _h5(images / f"scene_{cam}_final_hdf5" / "frame.0000.color.hdf5", np.full((HS_H, HS_W, 3), 0.5, np.float32))
    _h5(images / f"scene_{cam}_geometry_hdf5" / "frame.0000.depth_meters.hdf5", np.full((HS_H, HS_W), 4.0, np.float32))
    rows, cols = np.mgrid[0:HS_H, 0:HS_W]
    want = np.tile(np.array([0.0, 0.0, 1.0]), (HS_H, HS_W, 1))  # the back wall, straight ahead
    top, bottom = rows < 24, rows >= HS_H - 24
    want[top] = [0, -1, 0]  # the ceiling (above the centre) faces down
    want[bottom] = [0, 1, 0]  # the floor (below the centre) faces up
    want[(cols < 24) & ~top & ~bottom] = [1, 0, 0]  # the left wall faces right
    want[(cols >= HS_W - 24) & ~top & ~bottom] = [-1, 0, 0]  # the right wall faces left
    stored = np.where(((rows + cols) % 2 == 1)[..., None], -want, want)  # a checkerboard of back faces
    _h5(images / f"scene_{cam}_geometry_hdf5" / "frame.0000.normal_cam.hdf5", stored.astype(np.float32))
    r = read_hypersim_frame(tmp_path, scene, cam, 0, size=(HS_H, HS_W))
    assert r["mask"].all()
    np.testing.assert_allclose(r["normals"], want, atol=1e-6)


def test_tone_map_constant_image_reaches_0_8():
    out = tone_map_hypersim(np.full((4, 4, 3), 0.37), np.ones((4, 4), bool))
    assert (out == round(0.8 * 255)).all()
    dark = tone_map_hypersim(np.zeros((4, 4, 3)), np.zeros((4, 4), bool))
    assert (dark == 0).all()


def test_prepare_hypersim_schema_overwrite_and_atomicity(hypersim_root, tmp_path, monkeypatch):
    out = tmp_path / "prepared" / "hypersim_train"
    prepare_hypersim(hypersim_root, out, split="train", size=(48, 64))
    ds = _load(out)
    assert len(ds) == 2
    _assert_schema(ds, 48, 64)
    assert (out / SETTINGS_FILE).is_file() and _leftovers(out.parent, out.name) == []
    first = ds[0]["depth"].copy()

    with pytest.raises(FileExistsError, match="overwrite"):
        prepare_hypersim(hypersim_root, out, split="train", size=(48, 64))

    calls = {"n": 0}
    real_reader = prepare.read_hypersim_frame

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real_reader(*args, **kwargs)

    monkeypatch.setattr(prepare, "read_hypersim_frame", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        prepare_hypersim(hypersim_root, out, split="train", size=(48, 64), overwrite=True)
    assert calls["n"] == 2
    kept = _load(out)  # the previous good output is untouched, and nothing half-written is left
    assert len(kept) == 2 and np.array_equal(kept[0]["depth"], first)
    assert _leftovers(out.parent, out.name) == []
    monkeypatch.undo()

    prepare_hypersim(hypersim_root, out, split="train", size=(48, 64), limit=1, overwrite=True)
    assert len(_load(out)) == 1 and _leftovers(out.parent, out.name) == []

    fresh = tmp_path / "prepared" / "never"
    monkeypatch.setattr(prepare, "read_hypersim_frame", flaky)
    calls["n"] = 0
    with pytest.raises(RuntimeError):
        prepare_hypersim(hypersim_root, fresh, split="train", size=(48, 64))
    assert not fresh.exists() and _leftovers(fresh.parent, fresh.name) == []


def test_prepare_hypersim_missing_files(hypersim_root, tmp_path):
    (hypersim_root / "ai_001_001/images/scene_cam_00_geometry_hdf5/frame.0001.depth_meters.hdf5").unlink()
    with pytest.raises(FileNotFoundError, match="frame.0001.*skip_missing"):
        prepare_hypersim(hypersim_root, tmp_path / "a", size=(48, 64))
    with pytest.warns(UserWarning, match="skipping 1"):
        prepare_hypersim(hypersim_root, tmp_path / "b", size=(48, 64), skip_missing=True)
    assert len(_load(tmp_path / "b")) == 1
    with pytest.raises(FileNotFoundError, match="depth_meters.hdf5.*dataset_download_images"):
        read_hypersim_frame(hypersim_root, "ai_001_001", "cam_00", 1)
    with pytest.raises(FileNotFoundError, match="metadata_images_split_scene_v1.csv"):
        prepare_hypersim(hypersim_root, tmp_path / "c", split_csv=tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="split"):
        prepare_hypersim(hypersim_root, tmp_path / "d", split="training")
    with pytest.raises(ValueError, match="limit"):
        prepare_hypersim(hypersim_root, tmp_path / "e", limit=0)
    with pytest.raises(ValueError, match="size"):
        prepare_hypersim(hypersim_root, tmp_path / "f", size=480)


# ---------------------------------------------------------------------------------------------------------------
# Virtual KITTI 2: jpg + 16-bit PNG (cm) at the real 375x1242

VK_H, VK_W = 375, 1242


def _vk_raw() -> np.ndarray:
    rows, cols = np.mgrid[0:VK_H, 0:VK_W]
    raw = (1000 + cols + 2 * rows).astype(np.uint16)  # 10-30 m, recognisable
    raw[100:120, 300:320] = 65535  # sky / far
    raw[200:210, 600:610] = 9000  # 90 m: beyond the 80 m cap
    raw[300:305, 700:705] = 0
    return raw


def _vk_frame(root, scene, variation, camera, idx, raw=None, size=(VK_H, VK_W)):
    from PIL import Image

    frames = root / scene / variation / "frames"
    (frames / "rgb" / camera).mkdir(parents=True, exist_ok=True)
    (frames / "depth" / camera).mkdir(parents=True, exist_ok=True)
    img = np.zeros(size + (3,), np.uint8)
    img[size[0] - 352:, (size[1] - 1216) // 2:(size[1] - 1216) // 2 + 1216] = 200  # exactly the benchmark crop
    Image.fromarray(img).save(frames / "rgb" / camera / f"rgb_{idx:05d}.jpg", quality=95)
    raw = _vk_raw() if raw is None else raw
    Image.fromarray(raw).save(frames / "depth" / camera / f"depth_{idx:05d}.png")
    return frames / "rgb" / camera / f"rgb_{idx:05d}.jpg", frames / "depth" / camera / f"depth_{idx:05d}.png"


@pytest.fixture
def vkitti_root(tmp_path):
    root = tmp_path / "vkitti2"
    _vk_frame(root, "Scene01", "morning", "Camera_0", 0)
    _vk_frame(root, "Scene01", "morning", "Camera_0", 1)
    _vk_frame(root, "Scene02", "fog", "Camera_1", 0)
    return root


def test_vkitti2_frame_values(vkitti_root):
    from PIL import Image

    rgb, depth = vkitti_root / "Scene01/morning/frames/rgb/Camera_0/rgb_00000.jpg", \
        vkitti_root / "Scene01/morning/frames/depth/Camera_0/depth_00000.png"
    assert Image.open(depth).mode == "I;16"  # the stand-in really is a 16-bit PNG
    r = read_vkitti2_frame(rgb, depth)
    assert kitti_benchmark_crop(VK_H, VK_W) == (23, 13)
    raw = _vk_raw()[23:, 13:13 + 1216]
    ok = r["mask"]
    assert r["depth"].shape == (352, 1216) and r["image"].shape == (352, 1216, 3)
    np.testing.assert_allclose(r["depth"][ok], raw[ok] / 100.0, rtol=1e-6)  # cm → m, crop offsets (23, 13)
    assert np.isclose(r["depth"][0, 0], (1000 + 13 + 2 * 23) / 100)
    assert not ok[100 - 23:120 - 23, 300 - 13:320 - 13].any()  # 65535 = sky
    assert not ok[200 - 23:210 - 23, 600 - 13:610 - 13].any()  # 90 m > 80 m
    assert not ok[300 - 23:305 - 23, 700 - 13:705 - 13].any() and ok.sum() == 352 * 1216 - 400 - 100 - 25
    assert (r["depth"][~ok] == 0).all()
    assert abs(float(r["image"][5:-5, 5:-5].mean()) - 200) < 3 and r["image"][:3].mean() > 150  # no black rim
    np.testing.assert_allclose(r["K"], [[725.0087, 0, 608], [0, 725.0087, 164.5], [0, 0, 1]], rtol=1e-6)
    n = np.linalg.norm(r["normals"], axis=-1)
    assert (n[~ok] == 0).all() and (n > 0).mean() > 0.95
    np.testing.assert_allclose(n[n > 0], 1, atol=1e-5)


def test_vkitti2_frames_and_prepare(vkitti_root, tmp_path):
    with pytest.warns(UserWarning, match="missing combination"):
        pairs = vkitti2_frames(vkitti_root, scenes=["01", 2], variations=["morning", "fog"], cameras=[0, 1])
    assert [p[0].name for p in pairs] == ["rgb_00000.jpg", "rgb_00001.jpg", "rgb_00000.jpg"]
    out = tmp_path / "vk"
    with pytest.warns(UserWarning):  # the default list names many combinations this stand-in lacks
        prepare_vkitti2(vkitti_root, out, limit=2)
    ds = _load(out)
    assert len(ds) == 2
    _assert_schema(ds, 352, 1216)
    with pytest.raises(FileNotFoundError, match="no frames found.*vkitti_2.0.3"):
        vkitti2_frames(vkitti_root, scenes=["Scene18"])
    with pytest.raises(FileExistsError):
        prepare_vkitti2(vkitti_root, out)


def test_vkitti2_bad_files(tmp_path):
    from PIL import Image

    root = tmp_path / "vk"
    rgb, depth = _vk_frame(root, "Scene01", "morning", "Camera_0", 0)
    Image.fromarray((_vk_raw() // 256).astype(np.uint8)).save(depth)  # an 8-bit PNG
    with pytest.raises(ValueError, match="16-bit.*'L'"):
        read_vkitti2_frame(rgb, depth)
    small_rgb, small_depth = _vk_frame(root, "Scene02", "fog", "Camera_0", 0, raw=np.full((300, 1000), 500, np.uint16),
                                       size=(300, 1000))
    with pytest.raises(ValueError, match="at least 352x1216"):
        read_vkitti2_frame(small_rgb, small_depth)
    depth.unlink()
    with pytest.raises(FileNotFoundError, match="depth_00000.png.*vkitti_2.0.3_depth.tar"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vkitti2_frames(root, scenes=["Scene01"])
    with pytest.raises(FileNotFoundError, match="vkitti_2.0.3"):
        vkitti2_frames(tmp_path / "absent")


# ---------------------------------------------------------------------------------------------------------------
# NYUv2: a v7.3-style .mat (HDF5 with a 512-byte user block) at the real 640x480, and a v5 splits.mat

def _nyu_truth(n: int = 3):
    rows, cols = np.mgrid[0:480, 0:640]
    images = np.stack([np.stack([np.full((480, 640), 100 * k), cols % 256, (rows + 2 * cols) % 256], -1)
                       for k in range(n)]).astype(np.uint8)
    raw = np.stack([1.0 + k + rows / 1000 + cols / 1e5 for k in range(n)]).astype(np.float32)
    raw[:, :10, :] = 0  # no Kinect return
    filled = np.where(raw > 0, raw, 5.0).astype(np.float32)
    return images, raw, filled


def _write_nyu(path, keys=("images", "depths", "rawDepths")):
    import h5py

    images, raw, filled = _nyu_truth()
    with h5py.File(path, "w", userblock_size=512) as f:  # MATLAB v7.3 files carry a 512-byte header
        data = {"images": images.transpose(0, 3, 2, 1), "depths": filled.transpose(0, 2, 1),
                "rawDepths": raw.transpose(0, 2, 1)}
        for k in keys:
            f.create_dataset(k, data=data[k])
    return path


@pytest.fixture
def nyu_files(tmp_path):
    from scipy.io import savemat

    mat = _write_nyu(tmp_path / "nyu_depth_v2_labeled.mat")
    savemat(tmp_path / "splits.mat", {"trainNdxs": np.array([[1], [3]]), "testNdxs": np.array([[2]])})
    return mat


def test_nyuv2_indices_and_orientation(nyu_files):
    import h5py

    with h5py.File(nyu_files) as f:
        assert f["images"].shape == (3, 3, 640, 480) and f["rawDepths"].shape == (3, 640, 480)
    assert nyuv2_split_indices(nyu_files.with_name("splits.mat"), "test").tolist() == [1]  # MATLAB 2 → frame 1
    assert nyuv2_split_indices(nyu_files.with_name("splits.mat"), "train").tolist() == [0, 2]
    images, raw, filled = _nyu_truth()
    rows = list(nyuv2_rows(nyu_files, [1, 2]))
    assert rows[0]["image"].shape == (480, 640, 3) and rows[0]["image"][0, 0, 0] == 100
    assert np.array_equal(rows[0]["image"], images[1]) and np.array_equal(rows[1]["image"], images[2])
    assert np.array_equal(rows[0]["depth"], raw[1]) and np.array_equal(rows[0]["mask"], raw[1] > 0)
    assert not rows[0]["mask"][:10].any() and rows[0]["mask"][10:].all()
    assert (rows[0]["normals"] == 0).all() and np.array_equal(rows[0]["K"], NYUV2_K)
    assert np.array_equal(next(nyuv2_rows(nyu_files, [0], depth="filled"))["depth"], filled[0])


def test_prepare_nyuv2(nyu_files, tmp_path):
    out = tmp_path / "nyu_test"
    prepare_nyuv2(nyu_files, out, split="test")
    ds = _load(out)
    assert len(ds) == 1
    _assert_schema(ds, 480, 640)
    assert ds[0]["image"][0, 0, 0] == 100 and ds[0]["depth"][240, 320] == np.float32(2.0 + 240 / 1000 + 320 / 1e5)
    prepare_nyuv2(nyu_files, tmp_path / "nyu_train", split="train", limit=1)
    assert _load(tmp_path / "nyu_train")[0]["image"][0, 0, 0] == 0


def test_nyuv2_clear_errors(nyu_files, tmp_path):
    from scipy.io import savemat

    v5 = tmp_path / "old.mat"
    savemat(v5, {"images": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="not an HDF5 file.*v7.3"):
        list(nyuv2_rows(v5, [0]))
    with pytest.raises(ValueError, match="not an HDF5"):
        prepare_nyuv2(v5, tmp_path / "out", splits_mat=nyu_files.with_name("splits.mat"))
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path, "out") == []
    no_raw = _write_nyu(tmp_path / "no_raw.mat", keys=("images", "depths"))
    with pytest.raises(KeyError, match="rawDepths"):
        list(nyuv2_rows(no_raw, [0]))
    with pytest.raises(FileNotFoundError, match="nyu_depth_v2_labeled.mat"):
        list(nyuv2_rows(tmp_path / "missing.mat", [0]))
    with pytest.raises(FileNotFoundError, match="splits.mat"):
        prepare_nyuv2(nyu_files, tmp_path / "x", splits_mat=tmp_path / "nope" / "splits.mat")
    savemat(tmp_path / "zero_based.mat", {"testNdxs": np.array([[0], [1]])})
    with pytest.raises(ValueError, match="1-based"):
        nyuv2_split_indices(tmp_path / "zero_based.mat", "test")
    with pytest.raises(KeyError, match="trainNdxs"):
        nyuv2_split_indices(tmp_path / "zero_based.mat", "train")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        list(nyuv2_rows(nyu_files, [3]))
    with pytest.raises(ValueError, match="depth"):
        list(nyuv2_rows(nyu_files, [0], depth="inpainted"))


def test_save_rows_rejects_wrong_rows(tmp_path):
    bad = {"image": np.zeros((4, 4, 3), np.uint8), "depth": np.zeros((4, 5), np.float32),
           "normals": np.zeros((4, 4, 3), np.float32), "mask": np.zeros((4, 4), bool),
           "label": np.zeros((4, 4), np.uint8), "K": np.eye(3, dtype=np.float32)}
    with pytest.raises(ValueError, match="'depth' must be \\(4, 4\\)"):
        prepare.save_rows_atomically([bad], tmp_path / "o", (4, 4))
    with pytest.raises(ValueError, match="no rows"):
        prepare.save_rows_atomically([], tmp_path / "o", (4, 4))
    assert _leftovers(tmp_path, "o") == [] and not (tmp_path / "o").exists()


def test_cli_prepare_nyuv2(nyu_files, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "data_scripts" / "prepare_nyuv2.py"
    spec = importlib.util.spec_from_file_location("prepare_nyuv2_cli", script)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / "cli_out"
    cli.main(["--mat", str(nyu_files), "--out", str(out), "--split", "train", "--limit", "2"])
    assert "written to" in capsys.readouterr().out and len(_load(out)) == 2
    with pytest.raises(FileExistsError):
        cli.main(["--mat", str(nyu_files), "--out", str(out)])
    cli.main(["--mat", str(nyu_files), "--out", str(out), "--overwrite", "--depth", "filled"])
    assert len(_load(out)) == 1 and _load(out)[0]["mask"].all()  # test split, in-painted depth


def _tiny_x8_depth_pipeline(folder):
    """A random depth pipeline with a ×8 VAE like Stable Diffusion's, so that the VAE's mid-block attention stays small
    on 352×1216 Virtual KITTI 2 crops (a ×2 VAE would attend over 107k latent pixels)."""
    from genpercept_lessons.course.full_standins import tiny_marigold

    tiny_marigold("depth", tokenizer_dir=folder / "tok").save_pretrained(folder / "depth")
    return folder / "depth"


def test_full_profile_training_path_on_stand_ins(hypersim_root, vkitti_root, nyu_files, tmp_path, monkeypatch):
    """The full profile's route end to end on stand-ins: prepare_* -> $GENPERCEPT_DATA -> the training CLI with the
    90/10 mix of two resolutions -> NYUv2 evaluation under the Eigen-crop protocol -> a saved trailing pipeline."""
    import json

    import torch
    from diffusers import MarigoldDepthPipeline

    from genpercept_lessons.cli import train

    data = tmp_path / "data"
    monkeypatch.setenv("GENPERCEPT_DATA", str(data))
    prepare_hypersim(hypersim_root, data / "hypersim_train", split="train", size=(48, 64))
    prepare_vkitti2(vkitti_root, data / "vkitti2", scenes=("01",), variations=("morning",), cameras=(0,))
    prepare_nyuv2(nyu_files, data / "nyuv2_test", split="test")
    from genpercept_lessons.runtime import step_generator

    def first_draw(seed, step):  # which dataset step `step` draws: training_batch's first use of the generator
        return int(torch.multinomial(torch.tensor([0.9, 0.1], dtype=torch.float64), 1,
                                     generator=step_generator(seed, 0, step)))

    # a seed whose two steps draw one Hypersim batch (48×64) and one Virtual KITTI 2 batch (352×1216)
    seed = next(s for s in range(200) if [first_draw(s, 0), first_draw(s, 1)] == [0, 1])
    out = tmp_path / "run" / "model"
    code = train.main(["--profile", "full", "--model", str(_tiny_x8_depth_pipeline(tmp_path)), "--steps", "2",
                       "--batch-size", "1", "--grad-accumulation", "1", "--eval-scenes", "1", "--seed", str(seed),
                       "--eval-data", "$GENPERCEPT_DATA/nyuv2_test", "--workdir", str(tmp_path / "run"),
                       "--out", str(out)])
    assert code == 0
    record = json.loads((out / "genpercept_finetune.json").read_text())
    assert record["config"]["eval_protocol"] == "nyuv2" and record["config"]["batch_size"] == 1
    (step, metrics), = record["evals"]
    assert step == 2 and 0 <= metrics["abs_rel"] < 10
    pipe = MarigoldDepthPipeline.from_pretrained(out)
    assert pipe.scheduler.config.timestep_spacing == "trailing"


def test_training_cli_reports_missing_data(tmp_path, monkeypatch, capsys, tiny_pipeline_dirs):
    from genpercept_lessons.cli import train

    monkeypatch.setenv("GENPERCEPT_DATA", str(tmp_path / "nothing"))
    code = train.main(["--profile", "full", "--model", str(_tiny_x8_depth_pipeline(tmp_path)), "--steps", "2",
                       "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and "hypersim_train" in err and "prepare_" in err
