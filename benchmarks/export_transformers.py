#!/usr/bin/env python3
"""Exports BERT-base, GPT-2 small and ViT-base to ONNX for the benchmarks.

The models are built from the default ``transformers`` configurations of those architectures
with **random weights** (transformers' initialization, then N(0, 0.02) noise added to every
parameter so that no bias is all-zero and no norm is all-one; seeded; nothing is downloaded), in
eval mode, and exported with
``torch.onnx.export``:

* ``--exporter dynamo`` (the default of torch 2.13): ``torch.onnx.export(..., dynamo=True)``,
  the torch.export-based exporter (onnxscript); if it fails on a model the script says so and
  falls back to the legacy exporter for that model;
* ``--exporter legacy``: ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter;
* ``--exporter both``: both, the legacy one written as ``<name>_legacy.onnx``.

Which exporter produced each file is printed and written next to it (``<name>.onnx.json``).
The attention is exported as transformers runs it by default (``attn_implementation="sdpa"``,
``torch.nn.functional.scaled_dot_product_attention``), with the dims of ``SHAPES`` fixed except
the batch (named ``batch``).

torch and transformers are *not* dependencies of openatc: run this script with a Python that has
them, e.g. ``python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch==2.13.0
transformers==4.57.6 onnx onnxscript``. ``bench_latency.py`` / ``bench_optimizer.py`` then read
the files from their cache (``benchmarks/.cache/models/``, git-ignored)::

    /work/venv-torch/bin/python benchmarks/export_transformers.py [--models bert_base,gpt2,vit_base]
        [--exporter dynamo|legacy|both] [--out benchmarks/.cache/models]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / ".cache" / "models"
OPSET = 18

#: name -> (input name -> shape). Batch 1; BERT and GPT-2 on 128 tokens, ViT on one 224x224 image.
SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "bert_base": {"input_ids": (1, 128), "attention_mask": (1, 128)},
    "gpt2": {"input_ids": (1, 128)},
    "vit_base": {"pixel_values": (1, 3, 224, 224)},
}


def _build_model(name: str, tf: Any) -> Any:
    if name == "bert_base":
        return tf.BertModel(tf.BertConfig(), add_pooling_layer=True)
    if name == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config())
    if name == "vit_base":
        return tf.ViTModel(tf.ViTConfig(), add_pooling_layer=True)
    raise SystemExit(f"unknown model '{name}'; known: {', '.join(SHAPES)}")


def build(name: str) -> tuple[Any, tuple[Any, ...], list[str], list[str]]:
    """(module, example args, input names, output names) for ``name``, random weights, eval mode."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    shapes = SHAPES[name]
    model = _build_model(name, tf)
    with torch.no_grad():  # transformers initializes biases to 0 and norms to 1: make every weight real
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    if name == "bert_base":
        ids = torch.randint(0, 30522, shapes["input_ids"])
        mask = torch.ones(shapes["attention_mask"], dtype=torch.int64)

        class Bert(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
                return out.last_hidden_state, out.pooler_output

        return Bert().eval(), (ids, mask), ["input_ids", "attention_mask"], ["last_hidden_state", "pooler_output"]
    if name == "gpt2":
        ids = torch.randint(0, 50257, shapes["input_ids"])

        class Gpt2(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
                return self.model(input_ids=input_ids, use_cache=False, return_dict=True).logits

        return Gpt2().eval(), (ids,), ["input_ids"], ["logits"]
    if name == "vit_base":
        pixels = torch.rand(shapes["pixel_values"]) * 2 - 1

        class Vit(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
                out = self.model(pixel_values=pixel_values, return_dict=True)
                return out.last_hidden_state, out.pooler_output

        return Vit().eval(), (pixels,), ["pixel_values"], ["last_hidden_state", "pooler_output"]
    raise SystemExit(f"unknown model '{name}'; known: {', '.join(SHAPES)}")


def export(name: str, exporter: str, path: Path) -> str:
    """Exports ``name`` to ``path`` (atomically); returns the exporter that produced the file."""
    import onnx
    import torch

    module, args, inputs, outputs = build(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staging = Path(tmp) / path.name
        used = exporter
        with torch.no_grad():
            if exporter == "dynamo":
                try:
                    batch = torch.export.Dim("batch", min=1, max=64)
                    shapes = {k: {0: batch} for k in inputs}
                    program = torch.onnx.export(
                        module,
                        args,
                        dynamo=True,
                        input_names=inputs,
                        output_names=outputs,
                        dynamic_shapes=shapes,
                        opset_version=OPSET,
                        optimize=True,
                    )
                    program.save(str(staging), external_data=False)
                except Exception as exc:  # noqa: BLE001 - the documented fallback
                    print(f"{name}: dynamo exporter failed ({type(exc).__name__}: {exc}); using the legacy one")
                    used = "legacy (dynamo failed)"
                    exporter = "legacy"
            if exporter == "legacy":
                torch.onnx.export(
                    module,
                    args,
                    str(staging),
                    dynamo=False,
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_axes={k: {0: "batch"} for k in inputs + outputs},
                    opset_version=OPSET,
                    do_constant_folding=True,
                )
        model = onnx.load(str(staging))
        onnx.checker.check_model(model)
        onnx.save(model, str(staging))  # one self-contained file (weights inline, < 2 GB)
        staging.replace(path)
    return used


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(SHAPES))
    parser.add_argument("--exporter", choices=("dynamo", "legacy", "both"), default="dynamo")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="export again even if the file exists")
    args = parser.parse_args(argv)
    import torch
    import transformers

    failures = 0
    jobs = [("dynamo", ""), ("legacy", "_legacy")] if args.exporter == "both" else [(args.exporter, "")]
    for name in args.models.split(","):
        for exporter, suffix in jobs:
            path = args.out / f"{name}{suffix}.onnx"
            if path.exists() and not args.force:
                print(f"{name}: {path} exists (use --force to export again)")
                continue
            start = time.perf_counter()
            try:
                used = export(name, exporter, path)
            except Exception as exc:  # noqa: BLE001 - report it, go on with the next export
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                print(f"{name}: the {exporter} exporter failed: {type(exc).__name__}: {first}")
                failures += 1
                continue
            info = {
                "model": name,
                "exporter": used,
                "opset": OPSET,
                "input_shapes": {k: list(v) for k, v in SHAPES[name].items()},
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "weights": "random: transformers' init plus N(0, 0.02) on every parameter (seed 0), default config",
            }
            path.with_suffix(".onnx.json").write_text(json.dumps(info, indent=1))
            size = path.stat().st_size / 1e6
            print(f"{name}: {used} exporter -> {path} ({size:.0f} MB, {time.perf_counter() - start:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
