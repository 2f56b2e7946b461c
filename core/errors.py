"""Errors a user can cause, with stable codes in ATC's style.

Code ranges (see docs/errors.md): ``E10xxx`` flags and input files, ``E13xxx`` paths, ``E2xxxx``
frontends, ``E3xxxx`` optimization/precision/quantization, ``E4xxxx`` backends and runtime,
``E5xxxx`` the .om file.  Every error names its culprit (flag, file, node, op type) and carries a
hint that says what to do.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["CATALOGUE", "ErrorInfo", "OpenATCError"]


@dataclass(frozen=True)
class ErrorInfo:
    """One catalogue entry: a short title and the default possible cause and solution."""

    title: str
    cause: str
    solution: str


CATALOGUE: dict[str, ErrorInfo] = {
    "E10001": ErrorInfo(
        "Invalid_Argument",
        "A flag was given a value it does not accept.",
        "Check the flag's allowed values with 'openatc --help'.",
    ),
    "E10002": ErrorInfo(
        "Invalid_Argument_Input_Shape",
        '--input_shape is not of the form "name1:d0,d1;name2:d0,d1".',
        "Write each input as name:dims, dims as comma-separated integers, inputs separated by ';', "
        "and quote the whole value.",
    ),
    "E10004": ErrorInfo("Empty_Argument", "A flag was given without a value.", "Give the flag a value."),
    "E10007": ErrorInfo(
        "Missing_Argument", "A required flag is missing.", "Add the flag; 'openatc --help' lists its values."
    ),
    "E10008": ErrorInfo(
        "Missing_Weight",
        "--framework=0 (Caffe) needs the weights: --weight is missing.",
        "Give the .caffemodel with --weight (and the .prototxt with --model).",
    ),
    "E10009": ErrorInfo(
        "Dynamic_Flags_Exclusive",
        "More than one of --dynamic_batch_size, --dynamic_image_size, --dynamic_dims, --input_shape_range was given.",
        "Keep one of them.",
    ),
    "E10010": ErrorInfo(
        "Invalid_Log_Level", "--log has an unknown level.", "Use one of debug, info, warning, error, null."
    ),
    "E10011": ErrorInfo(
        "Invalid_Input_Shape_Value",
        "--input_shape holds a value that is not a positive integer.",
        "Give every dimension as a positive integer.",
    ),
    "E10012": ErrorInfo(
        "Dynamic_Batch_Rank",
        "--dynamic_batch_size is given but a dynamic input in --input_shape has no dimensions.",
        "Give the input its dims with -1 as dim 0, e.g. x:-1,3,224,224.",
    ),
    "E10016": ErrorInfo(
        "Unknown_Node_Name",
        "A name given in a flag does not exist in the model.",
        "Check the name against the model's inputs/outputs (openatc --mode=1 lists them).",
    ),
    "E10018": ErrorInfo(
        "Dynamic_Batch_Axis",
        "With --dynamic_batch_size only the batch size N (dim 0) may be -1 in --input_shape.",
        "Fix the other dims, or use --dynamic_dims with --input_format=ND for other dynamic axes.",
    ),
    "E10019": ErrorInfo(
        "Dynamic_Image_Size_Axis",
        "With --dynamic_image_size only height and width of a 4-D NCHW/NHWC input may be -1 in --input_shape.",
        'Write H and W as -1, e.g. --input_shape="x:1,3,-1,-1".',
    ),
    "E10020": ErrorInfo(
        "Invalid_Dynamic_Image_Size",
        "--dynamic_image_size is not a list of height,width pairs separated by ';'.",
        'Give "h1,w1;h2,w2", e.g. --dynamic_image_size="224,224;448,448"; each gear has exactly two numbers.',
    ),
    "E10022": ErrorInfo(
        "Invalid_Output_Path",
        "The output path has no file name.",
        "Give a path with a file name, e.g. --output=out/model.",
    ),
    "E10031": ErrorInfo(
        "Dynamic_Batch_No_Minus_One",
        "--dynamic_batch_size is given, but no input in --input_shape has -1 as its batch size.",
        'Write the batch dim as -1 (e.g. --input_shape="x:-1,3,224,224"), or remove --dynamic_batch_size.',
    ),
    "E10035": ErrorInfo(
        "Too_Few_Gears",
        "--dynamic_batch_size, --dynamic_image_size or --dynamic_dims has fewer than 2 gears.",
        "Give at least 2 gears; for one shape, give it in --input_shape without gear flags.",
    ),
    "E10036": ErrorInfo(
        "Too_Many_Gears",
        "--dynamic_batch_size, --dynamic_image_size or --dynamic_dims has more than 100 gears "
        "(256 with --soc_version=Ascend950*).",
        "Give at most 100 gears (256 on the 950 chips), or compile a dynamic-shape graph with a range (a~b) "
        "in --input_shape.",
    ),
    "E10037": ErrorInfo(
        "Inconsistent_Gears",
        "The gears of --dynamic_image_size or --dynamic_dims have different numbers of values.",
        "Give every gear the same number of values.",
    ),
    "E10038": ErrorInfo(
        "Invalid_Gear_Value",
        "A gear value is 0 or negative.",
        "Give positive gear values.",
    ),
    "E10039": ErrorInfo(
        "Duplicate_Gears",
        "The same gear is given twice.",
        "Remove the duplicate gear.",
    ),
    "E10040": ErrorInfo(
        "Gears_Need_Minus_One",
        "A gear flag is given but --input_shape has no -1 dimension, or it contains a range ('~').",
        "Write the dims that vary as -1 (no '~'), or remove the gear flag; ranges compile without gear flags.",
    ),
    "E10045": ErrorInfo(
        "Dynamic_Dims_Too_Few_Values",
        "--input_shape has more -1 dimensions than each --dynamic_dims gear has values.",
        "Give one value per -1 dimension of --input_shape (all inputs, in order) in every gear.",
    ),
    "E10046": ErrorInfo(
        "Dynamic_Dims_Too_Many_Values",
        "Each --dynamic_dims gear has more values than --input_shape has -1 dimensions.",
        "Give one value per -1 dimension of --input_shape (all inputs, in order) in every gear.",
    ),
    "E10048": ErrorInfo(
        "Invalid_Input_Shape_Range",
        '--input_shape_range is not of the form "name1:[n1~n2,c,h,w];name2:[...]".',
        "Put each input's dims in [], ranges as low~high (high -1 = unbounded), inputs separated by ';'.",
    ),
    "E10049": ErrorInfo(
        "Input_Shape_Rank_Mismatch",
        "--input_shape gives a rank different from the model input's rank.",
        "Give as many dimensions as the input has.",
    ),
    "E10034": ErrorInfo(
        "Aipp_Input_Fp16_Conflict",
        "An input fed through AIPP is also listed in --input_fp16_nodes (an AIPP input is uint8).",
        "Remove the input from --input_fp16_nodes or its aipp_op block from --insert_op_conf.",
    ),
    "E10052": ErrorInfo(
        "Invalid_Aipp_Config",
        "The AIPP configuration (--insert_op_conf) parses but is not valid: a field out of range, misaligned, "
        "repeated, or sizes that do not add up to the model input.",
        "Fix the field named in the message; docs/aipp.md lists every field, its default and range.",
    ),
    "E10054": ErrorInfo(
        "Required_Argument_Empty",
        "A required flag is missing or empty (an unquoted value containing ';' is cut by the shell).",
        "Give the flag and quote values that contain ';'.",
    ),
    "E10055": ErrorInfo(
        "Not_Supported_Yet",
        "The flag or mode is recognised but this version of openatc does not implement it.",
        "Remove the flag, or install a plugin or version that provides it.",
    ),
    "E10056": ErrorInfo(
        "Conflicting_Arguments",
        "Two flags give the same thing (e.g. one input in both --input_shape and --input_shape_range).",
        "Give it in one of them.",
    ),
    "E10060": ErrorInfo(
        "Calibration_Config_Invalid",
        "The INT8 calibration config (--calibration_config or --compression_optimize_conf) has a syntax "
        "error, an unknown key or a value out of range.",
        "Fix the entry named in the message; docs/precision.md (INT8) lists every key.",
    ),
    "E10061": ErrorInfo(
        "Calibration_Data_Invalid",
        "The calibration samples cannot feed the model: a folder is empty or missing, a file has the wrong "
        "dtype or shape for its input, the inputs have different sample counts, or fewer samples than "
        "num_samples were found.",
        "Save one sample per .npy (or raw samples per .bin) with each input's dtype and shape; the message "
        "names the file, what was expected and what it holds.",
    ),
    "E10062": ErrorInfo(
        "Unknown_Calibration_Algorithm",
        "The calibration config names an algorithm no installed quantizer plugin provides.",
        "Use one of the algorithms the message lists (minmax, percentile, entropy, mse built in), or install "
        "the plugin that provides it.",
    ),
    "E10410": ErrorInfo(
        "File_Not_Found",
        "A file named by a flag does not exist or cannot be read.",
        "Check the path and its permissions.",
    ),
    "E13002": ErrorInfo(
        "Output_Not_Writable",
        "The output directory does not exist or is not writable.",
        "Create the directory or choose a writable one.",
    ),
    "E20001": ErrorInfo(
        "Model_Parse_Failed",
        "The model file cannot be parsed by the frontend chosen with --framework.",
        "Check that the file is complete and that --framework matches its format.",
    ),
    "E20002": ErrorInfo(
        "Framework_Mismatch",
        "The model file belongs to another framework than --framework says.",
        "Give the --framework that matches the file (0 Caffe, 3 TensorFlow, 5 ONNX).",
    ),
    "E20003": ErrorInfo(
        "Unsupported_Operators",
        "The model uses operators that openatc cannot convert.",
        "Replace the operators, or install a plugin that supports them.",
    ),
    "E20004": ErrorInfo(
        "Invalid_Model",
        "The model violates its framework's rules.",
        "Fix the model with its framework's tools and export it again.",
    ),
    "E21001": ErrorInfo(
        "Caffe_Prototxt_Syntax_Error",
        "The Caffe network definition (--model) is not valid prototxt text: a syntax error or an unknown field.",
        "Fix the prototxt at the line and column named in the message (field names follow Caffe's caffe.proto).",
    ),
    "E21002": ErrorInfo(
        "Caffe_Weights_Unreadable",
        "The --weight file is not a binary Caffe caffemodel (NetParameter).",
        "Give the .caffemodel written by Caffe for this prototxt.",
    ),
    "E21003": ErrorInfo(
        "Caffe_Weights_Mismatch",
        "The caffemodel does not match the prototxt: layers (matched by name) or blobs are missing or mis-shaped.",
        "Give the caffemodel trained with this prototxt; the message names each missing or mis-shaped blob.",
    ),
    "E21004": ErrorInfo(
        "Caffe_Invalid_Net",
        "The Caffe net is inconsistent: a bottom blob no layer produces, or a layer whose parameters do not fit "
        "its input shapes.",
        "Fix the layer named in the message.",
    ),
    "E22001": ErrorInfo(
        "TF_Not_A_GraphDef",
        "The --model file is not a TensorFlow GraphDef (.pb, binary or text) or SavedModel directory.",
        "Give a frozen graph (.pb) written by TensorFlow; --framework=3 reads frozen GraphDefs.",
    ),
    "E22002": ErrorInfo(
        "TF_Graph_Not_Frozen",
        "The TensorFlow graph still holds variables: it was saved without freezing.",
        "Freeze it first (convert_variables_to_constants_v2 / freeze_graph) so weights become constants.",
    ),
    "E22003": ErrorInfo(
        "TF_Conversion_Failed",
        "tf2onnx could not convert the TensorFlow graph.",
        "Check the node named in the message; run with --log=debug for tf2onnx's own report.",
    ),
    "E22004": ErrorInfo(
        "TF_Not_Installed",
        "--framework=3 needs TensorFlow and tf2onnx, which are not installed.",
        "pip install 'openatc[tensorflow]'.",
    ),
    "E30001": ErrorInfo(
        "Optimization_Failed",
        "A graph optimization pass failed.",
        "Turn the pass off with --fusion_switch_file, and report the model.",
    ),
    "E30002": ErrorInfo(
        "Gear_Shape_Inference_Failed",
        "The model's shape inference fails at the dims of one gear (a node cannot take them).",
        "Remove that gear, or check which sizes the node named in the message accepts.",
    ),
    "E30010": ErrorInfo(
        "Quantization_Failed",
        "ONNX Runtime's QDQ quantizer could not quantize the graph, or the INT8 graph does not run.",
        "Keep the layer named in the message float (skip_layers / skip_op_types), and report the model.",
    ),
    "E40001": ErrorInfo(
        "Unknown_Soc_Version",
        "No installed backend plugin serves the given --soc_version.",
        "Use one of the listed targets, or install the vendor's openatc plugin.",
    ),
    "E40002": ErrorInfo(
        "Backend_Compile_Failed",
        "The backend could not compile the optimized graph.",
        "Check the operator named in the message; run with --log=debug for details.",
    ),
    "E40003": ErrorInfo(
        "Backend_Load_Failed",
        "The backend could not load the compiled model.",
        "Rebuild the .om with this openatc and backend version.",
    ),
    "E40010": ErrorInfo(
        "Invalid_Run_Input",
        "The inputs given to run do not match the model's inputs.",
        "Feed every model input by name with the dtype and shape the model states (Session.inputs lists them).",
    ),
    "E40011": ErrorInfo(
        "Run_Failed",
        "The backend failed while executing the model.",
        "Check the inputs' values; run with --log=debug for details.",
    ),
    "E40012": ErrorInfo(
        "Invalid_Dynamic_Aipp_Params",
        "The dynamic AIPP parameters given at run time are missing, out of range, or do not match the image.",
        "Pass an AippParams per dynamic-AIPP input (Session.run(feeds, aipp={name: AippParams(...)})) "
        "within the ranges of docs/aipp.md.",
    ),
    "E40005": ErrorInfo(
        "Unsupported_By_Target",
        "The pre-check found operators the chosen --soc_version cannot run.",
        "See the check report for each operator and the reason; choose another target or replace the operators.",
    ),
    "E50001": ErrorInfo(
        "Not_An_Om_File",
        "The file is not an openatc .om file.",
        "Give a file written by openatc (mode 0).",
    ),
    "E50002": ErrorInfo(
        "Om_File_Corrupted",
        "The .om file is truncated or corrupted (checksum mismatch).",
        "Copy the file again or rebuild it.",
    ),
    "E50003": ErrorInfo(
        "Om_Version_Unsupported",
        "The .om file was written in a newer format version.",
        "Upgrade openatc, or rebuild the model with this version.",
    ),
    "E50004": ErrorInfo(
        "Om_Write_Failed",
        "The .om file could not be written.",
        "Check free disk space and permissions of the output directory.",
    ),
    "E13018": ErrorInfo(
        "Parse_Text_Format_Failed",
        "A protobuf text-format file (e.g. the AIPP configuration) has a syntax error or an unknown field.",
        "Fix the line and column named in the message; check field names against the documentation.",
    ),
    "E19001": ErrorInfo(
        "Plugin_Conflict",
        "Two installed plugins contribute the same name.",
        "Uninstall one of them or block it with OPENATC_BLOCK_PLUGINS.",
    ),
    "E19999": ErrorInfo(
        "Inner_Error",
        "An internal error occurred.",
        "Run with --log=debug and report the traceback.",
    ),
}


class OpenATCError(Exception):
    """A failure the user can act on.

    Attributes:
        code: Stable error code (``E10016``, ...), a key of :data:`CATALOGUE`.
        message: What is wrong, naming the culprit (flag, file, node, op type).
        hint: What to do; defaults to the catalogue's solution.
        details: Structured culprits for tools (the pre-check lists unsupported operators from it).
    """

    def __init__(
        self, code: str, message: str, hint: str | None = None, details: list[dict[str, object]] | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.details = details or []  # structured culprits, e.g. unsupported operators (name, type, count)
        info = CATALOGUE.get(code, CATALOGUE["E19999"])
        self.hint = hint if hint is not None else info.solution
        super().__init__(f"{code}: {message}")

    @property
    def info(self) -> ErrorInfo:
        return CATALOGUE.get(self.code, CATALOGUE["E19999"])

    def report(self) -> str:
        """The console block ATC prints after its failure line."""
        now = time.time()
        stamp = time.strftime("%Y-%m-%d-%H:%M:%S", time.localtime(now))
        micro = int((now % 1) * 1_000_000)
        return (
            f"{self.code}: [PID: {os.getpid()}] {stamp}.{micro // 1000:03d}.{micro % 1000:03d} {self.message}\n"
            f"        Possible Cause: {self.info.cause}\n"
            f"        Solution: {self.hint}"
        )


def errors_markdown() -> str:
    """docs/errors.md: the error catalogue."""
    lines = [
        "# openatc error codes",
        "",
        "Generated from `openatc/errors.py` (a test keeps this file in sync). Ranges: `E10xxx` flags and",
        "input files, `E13xxx` paths, `E2xxxx` frontends, `E3xxxx` optimization, precision and quantization,",
        "`E4xxxx` backends and runtime, `E5xxxx` the .om file, `E19999` internal errors. The command line",
        "prints the failure line, then `CODE: [PID: n] time message`, the possible cause and the solution,",
        "and exits with status 1 (2 for command-line syntax errors).",
        "",
        "| code | title | possible cause | solution |",
        "|---|---|---|---|",
    ]
    for code, info in sorted(CATALOGUE.items()):
        lines.append(f"| {code} | {info.title} | {info.cause} | {info.solution} |")
    return "\n".join(lines) + "\n"
