"""Real photographs offline: scikit-image's sample photos and Middlebury's motorcycle with its measured depth."""
from __future__ import annotations

import numpy as np
import pytest

from genpercept_lessons.real_photos import MOTORCYCLE_CALIBRATION, PHOTOS, load_motorcycle, load_photo, save_photos


@pytest.mark.parametrize("name", list(PHOTOS))
def test_every_photo_loads_as_uint8_rgb(name):
    image = load_photo(name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 300
    assert image.std() > 20  # a picture, not a blank


def test_the_motorcycle_depth_follows_the_benchmark_calibration():
    import skimage.data

    row = load_motorcycle()
    left, _, disparity = skimage.data.stereo_motorcycle()
    assert np.array_equal(row["image"], left) and row["depth"].shape == row["mask"].shape == left.shape[:2]
    assert 0.9 < row["mask"].mean() < 0.95 and np.array_equal(row["mask"], np.isfinite(disparity))
    c = MOTORCYCLE_CALIBRATION
    y, x = np.argwhere(row["mask"])[1234]
    assert row["depth"][y, x] == pytest.approx(c["focal_px"] * c["baseline_m"] / (disparity[y, x] + c["doffs_px"]), rel=1e-5)
    valid = row["depth"][row["mask"]]
    assert 2.0 < valid.min() and valid.max() < 5.1  # a garage a few metres deep
    assert (row["depth"][~row["mask"]] == 0).all()
    # the floor at the bottom of the picture is nearer than the shelves at the top
    assert np.median(row["depth"][-50:][row["mask"][-50:]]) < np.median(row["depth"][:50][row["mask"][:50]])
    assert row["K"][0, 0] == pytest.approx(c["focal_px"]) and row["K"][2, 2] == 1


def test_save_photos_writes_pngs_and_their_licences(tmp_path):
    from PIL import Image

    written = save_photos(tmp_path / "photos", ["coffee", "motorcycle"])
    assert [p.name for p in written] == ["coffee.png", "motorcycle.png"]
    assert np.array_equal(np.asarray(Image.open(written[0])), load_photo("coffee"))
    licences = (tmp_path / "photos" / "LICENSES.txt").read_text()
    assert "CC0, Rachel Michetti" in licences and "Middlebury 2014" in licences


@pytest.mark.parametrize("call, match", [
    (lambda: load_photo("kitten"), "`name` must be one of"),
    (lambda: save_photos("/tmp/x", ["kitten"]), "`names` must be among"),
    (lambda: save_photos("/tmp/x", []), "`names` must be among"),
])
def test_bad_names_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cli_photos(tmp_path, capsys):
    from genpercept_lessons.cli.main import main

    assert main(["photos", "chelsea", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "chelsea.png").is_file() and "predict" in capsys.readouterr().out
    assert main(["photos", "kitten", "--out", str(tmp_path)]) == 1
    assert "choose among: motorcycle" in capsys.readouterr().err
