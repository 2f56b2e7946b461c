"""Every ATC flag openatc recognises, declared once as data.

``status`` says what openatc does with a flag:

* ``done``: implemented.
* ``todo``: recognised, not implemented yet: giving it fails with E10055 (never silently ignored),
  unless the value equals ATC's default, which is also openatc's behaviour (``accept``).
* ``noop``: tunes Ascend hardware or ATC's own tooling and has no meaning for openatc's targets:
  accepted with a warning that it has no effect.

The CLI builds its options from this table (each flag under its ATC spelling and the dashed
form), BuildOptions validates them, and ``docs/flags.md`` is checked against it by a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FLAGS", "FLAGS_BY_NAME", "PANELS", "Flag"]

Status = Literal["done", "todo", "noop"]

PANELS = (
    "General",
    "Input",
    "Output",
    "Target",
    "Feature",
    "Model Tuning",
    "Operator Tuning",
    "Debug",
)


@dataclass(frozen=True)
class Flag:
    name: str
    panel: str
    status: Status
    help: str
    accept: tuple[str, ...] = ()  # values of a "todo" flag that equal openatc's behaviour
    metavar: str = "TEXT"


def _f(name: str, panel: str, status: Status, help: str, *accept: str, metavar: str = "TEXT") -> Flag:
    return Flag(name, panel, status, help, tuple(accept), metavar)


FLAGS: tuple[Flag, ...] = (
    # General
    _f(
        "mode",
        "General",
        "done",
        "Run mode: 0 build an .om (default), 1 to JSON (.om or original model), 3 pre-check, 6 .om info.",
        metavar="INT",
    ),
    _f("raw_ge_options", "General", "noop", "Raw GE options (Ascend only)."),
    _f("raw_ge_options_ignore_unsupported", "General", "noop", "Raw GE options (Ascend only)."),
    # Input
    _f("model", "Input", "done", "Original model file."),
    _f("weight", "Input", "done", "Weight file (Caffe .caffemodel); ignored with a warning for other frameworks."),
    _f("framework", "Input", "done", "0 Caffe, 3 TensorFlow, 5 ONNX.", metavar="INT"),
    _f("om", "Input", "done", "The .om file (or original model) for --mode=1."),
    _f("input_format", "Input", "done", "Input layout: NCHW, NHWC, ND, NCDHW, NDHWC."),
    _f(
        "input_shape",
        "Input",
        "done",
        'Input shapes, e.g. "input_ids:1,64;mask:1,64"; -1 marks a dynamic dim (gears, or a range compile), '
        "a~b a range.",
    ),
    _f("input_shape_range", "Input", "done", 'Deprecated range form of --input_shape: "x:[1~8,3,224,224]".'),
    _f("input_hint_shape", "Input", "todo", "Shape hints for dynamic inputs."),
    _f("dynamic_batch_size", "Input", "done", 'Batch gears, e.g. "1,2,4,8" (dim 0 of --input_shape is -1).'),
    _f("dynamic_image_size", "Input", "done", 'Image size gears, e.g. "224,224;448,448" (H, W are -1).'),
    _f("dynamic_dims", "Input", "done", 'ND gears, e.g. "64;128;256": one value per -1 of --input_shape.'),
    _f("singleop", "Input", "todo", "Single-operator description JSON."),
    # Output
    _f("output", "Output", "done", "Output path without suffix; '.om' is appended."),
    _f("output_type", "Output", "done", 'Output dtype: FP32, FP16, INT8, ... or "node:idx:TYPE;...".'),
    _f("out_nodes", "Output", "done", 'Graph outputs: "name1;name2" or "node:0;node:1".'),
    _f("json", "Output", "done", "JSON file written by --mode=1."),
    _f("check_report", "Output", "done", "Pre-check report path (--mode=3), default check_result.json."),
    _f("host_env_os", "Output", "noop", "OS of the run environment (Ascend cross-compilation)."),
    _f("host_env_cpu", "Output", "noop", "CPU of the run environment (Ascend cross-compilation)."),
    # Target
    _f("soc_version", "Target", "done", "Target: cpu, reference, or a vendor plugin's soc name."),
    _f("core_type", "Target", "noop", "AiCore or VectorCore (Ascend only)."),
    _f("aicore_num", "Target", "noop", "AI core count (Ascend only)."),
    _f("virtual_type", "Target", "noop", "Run on virtual NPUs (Ascend only)."),
    # Feature
    _f("insert_op_conf", "Feature", "done", "AIPP configuration file (image pre-processing compiled into the model)."),
    _f("input_fp16_nodes", "Feature", "done", 'Inputs fed as FP16, "node1;node2".'),
    _f("is_input_adjust_hw_layout", "Feature", "todo", "NC1HWC0 layout for FP16 inputs.", "false"),
    _f("is_output_adjust_hw_layout", "Feature", "todo", "NC1HWC0 layout for FP16 outputs.", "false"),
    _f("op_name_map", "Feature", "todo", "Custom op-name mapping file."),
    _f("external_weight", "Feature", "todo", "0 weights inside the .om (default), 1/2 external files.", "0"),
    # Model tuning
    _f("fusion_switch_file", "Model Tuning", "done", "File turning fusion passes off (or on)."),
    _f("enable_small_channel", "Model Tuning", "noop", "Small-channel convolution optimization (Ascend)."),
    _f("buffer_optimize", "Model Tuning", "noop", "L1/L2 buffer optimization (Ascend)."),
    _f(
        "compression_optimize_conf",
        "Model Tuning",
        "done",
        "INT8 post-training quantization: ATC's calibration { input_data_dir, input_shape, config_file, infer_soc }.",
    ),
    _f(
        "calibration_config",
        "Model Tuning",
        "done",
        "INT8 post-training quantization from a JSON calibration config (openatc's form; docs/precision.md).",
    ),
    _f("disable_reuse_memory", "Model Tuning", "todo", "1 disables memory reuse.", "0"),
    _f("enable_single_stream", "Model Tuning", "noop", "Single-stream execution (Ascend)."),
    _f("enable_scope_fusion_passes", "Model Tuning", "todo", "TensorFlow scope fusion passes."),
    _f("enable_compress_weight", "Model Tuning", "todo", "Weight compression.", "false"),
    _f("compress_weight_conf", "Model Tuning", "todo", "Weight compression node list."),
    _f("enable_attr_compression", "Model Tuning", "noop", "Compress attributes in the saved model."),
    _f("sparsity", "Model Tuning", "todo", "1 enables structured sparsity.", "0"),
    _f("ac_parallel_enable", "Model Tuning", "noop", "AICPU parallelism (Ascend)."),
    _f("tiling_schedule_optimize", "Model Tuning", "noop", "Tiling sink optimization (Ascend)."),
    _f("quant_dumpable", "Model Tuning", "todo", "Keep quantized ops' tensors dumpable.", "0"),
    _f("mdl_bank_path", "Model Tuning", "noop", "Model tuning knowledge bank (Ascend AOE)."),
    _f("oo_level", "Model Tuning", "todo", "O1 basic optimizations only, O3 all.", "O3"),
    _f("oo_constant_folding", "Model Tuning", "todo", "Constant folding switch."),
    _f("oo_dead_code_elimination", "Model Tuning", "todo", "Dead code elimination switch."),
    _f("topo_sorting_mode", "Model Tuning", "noop", "Topological sorting mode (Ascend)."),
    _f("static_model_ops_lower_limit", "Model Tuning", "noop", "Static sub-model threshold (Ascend)."),
    _f("optimization_switch", "Model Tuning", "noop", "Ascend optimization switches."),
    _f("h2d_overlapped_with_compute", "Model Tuning", "noop", "Host-to-device overlap (Ascend)."),
    _f("cluster_config", "Model Tuning", "noop", "Cluster configuration (Ascend)."),
    _f("hccl_sub_comm_config", "Model Tuning", "noop", "HCCL configuration (Ascend)."),
    # Operator tuning
    _f(
        "precision_mode",
        "Operator Tuning",
        "done",
        "force_fp16, allow_fp32_to_fp16, must_keep_origin_dtype, allow_mix_precision, force_fp32 "
        "(default: the backend's; cpu: must_keep_origin_dtype).",
    ),
    _f("precision_mode_v2", "Operator Tuning", "done", "fp16, origin, cube_fp16in_fp32out, mixed_float16."),
    _f("modify_mixlist", "Operator Tuning", "done", "JSON edits of the mixed-precision lists."),
    _f("keep_dtype", "Operator Tuning", "done", "File of ops kept in their original dtype."),
    _f("customize_dtypes", "Operator Tuning", "todo", "File of per-op dtypes."),
    _f("op_select_implmode", "Operator Tuning", "todo", "high_performance or high_precision."),
    _f("optypelist_for_implmode", "Operator Tuning", "todo", "Op types taking --op_select_implmode."),
    _f("op_precision_mode", "Operator Tuning", "todo", "Per-op precision .ini file."),
    _f("allow_hf32", "Operator Tuning", "noop", "HF32 computation (Ascend)."),
    _f("is_weight_clip", "Operator Tuning", "todo", "Clip non-finite weights (1) or not (0)."),
    _f("jit_compile", "Operator Tuning", "noop", "Online op compilation (Ascend)."),
    _f("op_bank_path", "Operator Tuning", "noop", "Operator tuning knowledge bank (Ascend AOE)."),
    _f("auto_tune_mode", "Operator Tuning", "noop", "Legacy auto tuning (Ascend)."),
    # Debug
    _f("log", "Debug", "done", "Log level: debug, info, warning, error, null (default)."),
    _f("dump_mode", "Debug", "todo", "1 adds shapes to --mode=1 JSON of original models.", "0"),
    _f("display_model_info", "Debug", "todo", "1 prints model resource info after building.", "0"),
    _f("op_debug_level", "Debug", "noop", "Operator debug artefacts (Ascend)."),
    _f("debug_dir", "Debug", "noop", "Operator debug directory (Ascend)."),
    _f("op_compiler_cache_mode", "Debug", "noop", "Operator compile cache (Ascend)."),
    _f("op_compiler_cache_dir", "Debug", "noop", "Operator compile cache directory (Ascend)."),
    _f("status_check", "Debug", "noop", "Overflow detection code (Ascend)."),
    _f("op_debug_config", "Debug", "noop", "Operator memory check configuration (Ascend)."),
    _f("deterministic", "Debug", "noop", "Deterministic computation (openatc's targets always are)."),
    _f("deterministic_level", "Debug", "noop", "Deterministic level (Ascend)."),
    _f("atomic_clean_policy", "Debug", "noop", "Atomic memory clean policy (Ascend)."),
    _f("shape_generalized_build_mode", "Debug", "noop", "Shape generalization (Ascend)."),
    _f("save_original_model", "Debug", "todo", "Also save the unoptimized graph.", "false"),
    _f("export_compile_stat", "Debug", "noop", "fusion_result.json export (Ascend)."),
    _f("device_id", "Debug", "noop", "Device used by tuning/calibration (Ascend)."),
    # Legacy / hidden
    _f("cal_conf", "Debug", "todo", "Legacy calibration configuration."),
    _f("target", "Debug", "noop", "Legacy target ('mini')."),
    _f("build_config", "Debug", "todo", "Legacy build configuration."),
)

FLAGS_BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}


_STATUS_TEXT = {"done": "supported", "todo": "not supported yet (E10055)", "noop": "accepted, no effect (warning)"}


def flags_markdown() -> str:
    """docs/flags.md: every recognised flag, its group and what openatc does with it."""
    lines = [
        "# ATC flags recognised by openatc",
        "",
        "Generated from `openatc/flags.py` (a test keeps this file in sync). Each flag is accepted as",
        "`--flag=value`, `--flag value`, with dashes or underscores, and with one leading dash as ATC does.",
        'A "not supported yet" flag fails with E10055 unless its value equals ATC\'s default, which is also',
        "openatc's behaviour (listed as accepted values).",
        "",
        "| flag | group | status | accepted values | meaning |",
        "|---|---|---|---|---|",
    ]
    for flag in FLAGS:
        accept = ", ".join(f"`{a}`" for a in flag.accept)
        lines.append(f"| `--{flag.name}` | {flag.panel} | {_STATUS_TEXT[flag.status]} | {accept} | {flag.help} |")
    return "\n".join(lines) + "\n"
