"""End to end: an NV12 frame from a real photo, through a classifier .om built with AIPP.

The photo is scikit-image's ``chelsea.png`` (shipped in its wheel); OpenCV resizes it and makes the
NV12 frame. The .om (AIPP + classifier) gets the raw NV12 bytes; the reference is OpenCV's own
NV12 -> BGR/RGB conversion, numpy normalization and the original ONNX model on ONNX Runtime.
OpenCV converts with more fractional bits and rounds; AIPP keeps ATC's 8-bit matrix and floors,
so pixels differ by a few LSB: the tolerance is cosine >= 0.999 on the logits and equal top-1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import openatc

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

DATA = Path(__file__).resolve().parents[1] / "data" / "aipp"
SIZE = 224
CLASSES = 10
IMAGENET = (
    "aipp_op {\n aipp_mode : static\n input_format : YUV420SP_U8\n csc_switch : true\n rbuv_swap_switch : false\n"
    # spec 2.4: YUV420SP -> RGB, BT.601 narrow (OpenCV's NV12 range); normalization of spec 2.12 (4)
    " matrix_r0c0 : 298\n matrix_r0c1 : 0\n matrix_r0c2 : 409\n matrix_r1c0 : 298\n matrix_r1c1 : -100\n"
    " matrix_r1c2 : -208\n matrix_r2c0 : 298\n matrix_r2c1 : 516\n matrix_r2c2 : 0\n"
    " input_bias_0 : 16\n input_bias_1 : 128\n input_bias_2 : 128\n"
    " min_chn_0 : 123.675\n min_chn_1 : 116.28\n min_chn_2 : 103.53\n"
    " var_reci_chn_0 : 0.0171247538316637\n var_reci_chn_1 : 0.0175070028011204\n var_reci_chn_2 : 0.0174291938997821\n"
    f" src_image_size_w : {SIZE}\n src_image_size_h : {SIZE}\n}}\n"
)


def classifier(path: Path) -> Path:
    """Conv(3->16, s2) - Relu - Conv(16->32, s2) - Relu - GlobalAveragePool - Flatten - Gemm(32->10)."""
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.2,
        "b1": rng.standard_normal(16).astype(np.float32) * 0.1,
        "w2": rng.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.1,
        "b2": rng.standard_normal(32).astype(np.float32) * 0.1,
        "w3": rng.standard_normal((CLASSES, 32)).astype(np.float32) * 0.3,
        "b3": rng.standard_normal(CLASSES).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def nv12_frame() -> tuple[np.ndarray, np.ndarray]:
    """A real photo resized by OpenCV to SIZE x SIZE: (BGR image, NV12 bytes of shape (SIZE*3/2, SIZE))."""
    bgr = cv2.resize(
        cv2.cvtColor(skimage_data.chelsea(), cv2.COLOR_RGB2BGR), (SIZE, SIZE), interpolation=cv2.INTER_AREA
    )
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)  # Y plane, U plane, V plane
    quarter = SIZE * SIZE // 4
    chroma = i420[SIZE:].reshape(-1)
    uv = np.stack([chroma[:quarter], chroma[quarter:]], axis=-1).reshape(SIZE // 2, SIZE)  # NV12: U,V interleaved
    return bgr, np.concatenate([i420[:SIZE], uv], axis=0)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _host_reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("config", ["samples_vdec_resnet50_aipp.cfg", "imagenet_rgb"])
def test_nv12_photo_through_the_classifier(tmp_path: Path, config: str) -> None:
    model = classifier(tmp_path / "classifier.onnx")
    conf = tmp_path / "aipp.cfg"
    if config == "imagenet_rgb":
        conf.write_text(IMAGENET)
        code, mean, scale = cv2.COLOR_YUV2RGB_NV12, (123.675, 116.28, 103.53), (1 / 58.395, 1 / 57.12, 1 / 57.375)
    else:  # the real config of spec 2.12 (1): default matrix = YUV -> BGR, min_chn 123, 117, 104 on B, G, R
        shutil.copy(DATA / config, conf)
        code, mean, scale = cv2.COLOR_YUV2BGR_NV12, (123.0, 117.0, 104.0), (1.0, 1.0, 1.0)
    _, nv12 = nv12_frame()
    om = openatc.build(
        model=str(model), framework=5, output=str(tmp_path / "c"), soc_version="cpu", insert_op_conf=str(conf)
    )
    with openatc.Session(om) as sess:
        got = sess.run({"x": nv12[None, :, :, None]})["logits"]
    pixels = cv2.cvtColor(nv12, code).astype(np.float32)  # OpenCV's own conversion
    x = ((pixels - np.array(mean, np.float32)) * np.array(scale, np.float32)).transpose(2, 0, 1)[None]
    want = _host_reference(model, np.ascontiguousarray(x))
    assert _cosine(got, want) >= 0.999
    assert int(got.argmax()) == int(want.argmax())


def test_aipp_pixels_against_opencv(tmp_path: Path) -> None:
    """The colour conversion alone: AIPP (BT.601 narrow, 8-bit, floor) vs OpenCV's NV12 -> RGB."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 3, SIZE, SIZE])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "id.onnx")
    conf = tmp_path / "aipp.cfg"
    conf.write_text(IMAGENET)
    om = openatc.build(
        model=str(tmp_path / "id.onnx"),
        framework=5,
        output=str(tmp_path / "id"),
        soc_version="cpu",
        insert_op_conf=str(conf),
    )
    _, nv12 = nv12_frame()
    with openatc.Session(om) as sess:
        got = sess.run({"x": nv12[None, :, :, None]})["y"][0].transpose(1, 2, 0).astype(np.int16)
    diff = np.abs(got - cv2.cvtColor(nv12, cv2.COLOR_YUV2RGB_NV12).astype(np.int16))
    assert diff.max() <= 1 and diff.mean() < 0.6, (diff.max(), diff.mean())  # measured: 1 and 0.47
