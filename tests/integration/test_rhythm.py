"""10 s rhythm strips end to end: ``prepare --strips`` keeps them in the store; models for ``--input rhythm`` and
``both`` train, predict on files, export to ONNX and explain like median-beat models; a bundle that reads strips
refuses a store without them."""

import json

import numpy as np
import pytest

from aiecg.cli import main as aiecg
from aiecg.data.store import Store, StoreError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def strip_store(synth_cohort, tmp_path_factory):
    """The session's synthetic cohort prepared again with ``--strips`` (250 Hz) into a store of its own."""
    store = tmp_path_factory.mktemp("strips") / "store"
    assert aiecg(["-q", "prepare", "--cohort", str(synth_cohort / "cohort.yaml"), "--out", str(store), "--strips",
                  "--no-beats", "--workers", "2"]) == 0
    return store


def test_prepare_strips_keeps_memory_mapped_strips_and_records_them_in_the_manifest(synth_cohort, strip_store):
    manifest = json.loads((strip_store / "manifest.json").read_text())
    assert manifest["strips"] == {"file": "strips.npy", "fs": 250.0, "seconds": 10.0, "samples": 2500,
                                  "leads": ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"],
                                  "dtype": "float32"}
    store = Store.open(strip_store)
    assert isinstance(store.strips, np.memmap) and store.strips.shape == (len(store.index), 12, 2500)
    ids = sorted(store.usable_ids)[:3]
    strips = store.strips_of(ids, ["V5", "I"])
    assert strips.shape == (3, 2, 2500) and np.abs(strips).max() > 0.3
    # the same medians as the store prepared without strips
    plain = Store.open(synth_cohort / "store")
    assert "strips" not in plain.manifest and not (synth_cohort / "store" / "strips.npy").exists()
    np.testing.assert_array_equal(store.medians(ids, ["I", "V5"]), plain.medians(ids, ["I", "V5"]))
    with pytest.raises(StoreError, match=r"holds no rhythm strips; prepare the cohort with `aiecg prepare --strips`"):
        plain.strips_of(ids, ["I"])
