"""openatc compare with a Caffe golden (prototxt + caffemodel through the Caffe frontend)."""

from __future__ import annotations

import csv
from pathlib import Path

import openatc
from openatc.cli import main
from openatc.frontends.caffe.writer import write_caffemodel

PROTOTXT = """
name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 16 dim: 16 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "relu1" }
layer { name: "pool1" type: "Pooling" bottom: "relu1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool1" top: "fc1" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc1" top: "prob" }
"""


def test_compare_a_caffe_om_with_its_prototxt(tmp_path: Path) -> None:
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(PROTOTXT)
    weights = tmp_path / "tiny.caffemodel"
    write_caffemodel(prototxt, weights, seed=1)
    om = openatc.build(
        model=prototxt, weight=weights, framework=0, output=tmp_path / "tiny", soc_version="cpu", output_type="FP16"
    )
    argv = ["compare", "--golden", str(prototxt), "--framework", "0", "--weight", str(weights), "--om", str(om)]
    assert main([*argv, "-o", str(tmp_path / "r")]) == 0
    rows = list(csv.DictReader((tmp_path / "r" / "compare.csv").open()))
    compared = {r["tensor"]: float(r["cosine_similarity"]) for r in rows if r["cosine_similarity"]}
    assert "prob" in compared and "fc1" in compared  # the FP16 output and the layer before it
    assert min(compared.values()) > 0.999, compared
