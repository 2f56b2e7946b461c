"""Session.run's fast path (feeds whose names, dtypes and shapes are exactly a gear's go straight to
the backend) gives the same outputs as the fully checked path and as ONNX Runtime on the original
model, and leaves every other feed to the full checks and their E-codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import openatc
from openatc.testing import make_tiny_onnx, run_onnx_reference


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("fast")
    src = make_tiny_onnx(tmp, batch="N")
    om = openatc.build(
        model=str(src),
        framework=5,
        output=str(tmp / "m"),
        soc_version="cpu",
        input_shape="x:-1,16",
        dynamic_batch_size="1,4",
        log="null",
    )
    return src, Path(om)


@pytest.mark.parametrize("batch", [1, 4])
def test_fast_path_matches_checked_path_and_reference(built: tuple[Path, Path], batch: int) -> None:
    src, om = built
    x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)
    with openatc.Session(om) as sess:
        assert sess._fast is not None
        fast = sess.run({"x": x})
        checked = sess.run({"x": x}, output_names=["y"])  # an explicit output list takes the full path
        strided = sess.run({"x": np.asfortranarray(x)})
    expected = run_onnx_reference(src, {"x": x})
    np.testing.assert_array_equal(fast["y"], checked["y"])
    np.testing.assert_array_equal(fast["y"], strided["y"])
    np.testing.assert_allclose(fast["y"], next(iter(expected.values())), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"x": np.zeros((1, 16), np.float64)}, "expects dtype float32"),
        ({"x": np.zeros((2, 16), np.float32)}, "match no gear"),
        ({"x": [[0.0] * 16]}, "must be a numpy array"),
        ({"z": np.zeros((1, 16), np.float32)}, "unknown input"),
    ],
)
def test_other_feeds_get_the_full_checks(built: tuple[Path, Path], feeds: dict, message: str) -> None:
    with openatc.Session(built[1]) as sess, pytest.raises(openatc.OpenATCError, match=message) as info:
        sess.run(feeds)
    assert info.value.code == "E40010"
