"""MiniScenes as a datasets.Dataset: schema, splits, building on demand into the cache."""
from __future__ import annotations

import numpy as np
import pytest

from genpercept_lessons.mini.miniscenes import COLUMNS, load_miniscenes
from genpercept_lessons.mini.scenes import render_scene

SMALL = {"version": 1, "seed": 5, "n_train": 6, "n_test": 3, "height": 32, "width": 48}


def test_schema_and_on_demand_build(tmp_cache):
    train = load_miniscenes("train", settings=SMALL)
    test = load_miniscenes("test", settings=SMALL)
    assert len(train) == 6 and len(test) == 3
    assert set(train.column_names) == set(COLUMNS)
    row = train[0]
    assert row["image"].shape == (32, 48, 3) and row["image"].dtype == np.uint8
    assert row["depth"].dtype == np.float32 and row["normals"].shape == (32, 48, 3)
    assert row["mask"].dtype == bool and row["label"].dtype == np.uint8 and row["K"].shape == (3, 3)
    # the stored rows are exactly the renderer's, and test scenes differ from train scenes
    ref = render_scene(5, 0, 32, 48)
    assert np.array_equal(row["image"], ref.image) and np.array_equal(row["depth"], ref.depth)
    assert not any(np.array_equal(test[0]["image"], r) for r in train["image"])


def test_bad_split(tmp_cache):
    with pytest.raises(ValueError, match="split"):
        load_miniscenes("validation", settings=SMALL)
