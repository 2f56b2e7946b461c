"""Writes the prototxt files of this folder (the public deploy definitions, reduced input sizes).

Run ``python tests/data/caffe/make_nets.py`` to regenerate them. Layer names, types and parameters
follow the published deploy prototxts (BVLC AlexNet in the V1 ``layers`` format, BVLC GoogLeNet,
VGG-16 (ILSVRC-2014), ResNet-50 (KaimingHe), SqueezeNet v1.1, MobileNet v1/v2 (shicai) and
MobileNet-SSD (chuanqi305)); only the input size is reduced where the architecture allows it.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


class Net:
    def __init__(self, name: str, shape: tuple[int, ...], v1: bool = False) -> None:
        self.v1 = v1
        dims = " ".join(f"dim: {d}" for d in shape)
        self.lines = [f'name: "{name}"', 'input: "data"', f"input_shape {{ {dims} }}"]

    def add(self, name: str, type_: str, bottom: str | list[str], top: str | list[str], params: str = "") -> str:
        bottoms = [bottom] if isinstance(bottom, str) else bottom
        tops = [top] if isinstance(top, str) else top
        io = " ".join(f'bottom: "{b}"' for b in bottoms) + " " + " ".join(f'top: "{t}"' for t in tops)
        kind = type_ if self.v1 else f'"{type_}"'
        block = "layers" if self.v1 else "layer"
        self.lines.append(f'{block} {{ name: "{name}" type: {kind} {io} {params}}}'.replace("  ", " "))
        return tops[0]

    def conv(
        self,
        name: str,
        bottom: str,
        n: int,
        k: int,
        s: int = 1,
        p: int = 0,
        g: int = 1,
        bias: bool = True,
        top: str | None = None,
    ) -> str:
        extra = (f" stride: {s}" if s != 1 else "") + (f" pad: {p}" if p else "") + (f" group: {g}" if g != 1 else "")
        extra += "" if bias else " bias_term: false"
        t = "CONVOLUTION" if self.v1 else "Convolution"
        return self.add(
            name, t, bottom, top or name, f"convolution_param {{ num_output: {n} kernel_size: {k}{extra} }} "
        )

    def relu(self, name: str, blob: str) -> str:
        return self.add(name, "RELU" if self.v1 else "ReLU", blob, blob)

    def pool(self, name: str, bottom: str, kind: str, k: int = 0, s: int = 1, p: int = 0, glob: bool = False) -> str:
        body = (
            f"pool: {kind}"
            + (" global_pooling: true" if glob else f" kernel_size: {k} stride: {s}")
            + (f" pad: {p}" if p else "")
        )
        return self.add(name, "POOLING" if self.v1 else "Pooling", bottom, name, f"pooling_param {{ {body} }} ")

    def bn_scale(self, prefix: str, blob: str, bn: str, scale: str) -> str:
        self.add(bn, "BatchNorm", blob, blob, "batch_norm_param { use_global_stats: true } ")
        return self.add(scale, "Scale", blob, blob, "scale_param { bias_term: true } ")

    def lrn(self, name: str, bottom: str) -> str:
        return self.add(name, "LRN", bottom, name, "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } ")

    def fc(self, name: str, bottom: str, n: int) -> str:
        t = "INNER_PRODUCT" if self.v1 else "InnerProduct"
        return self.add(name, t, bottom, name, f"inner_product_param {{ num_output: {n} }} ")

    def write(self, file: str) -> None:
        (HERE / file).write_text("\n".join(self.lines) + "\n", encoding="utf-8")


def alexnet() -> None:
    n = Net("AlexNet", (1, 3, 67, 67), v1=True)
    x = n.conv("conv1", "data", 96, 11, s=4)
    n.relu("relu1", x)
    x = n.pool("pool1", n.lrn("norm1", x), "MAX", 3, 2)
    x = n.conv("conv2", x, 256, 5, p=2, g=2)
    n.relu("relu2", x)
    x = n.pool("pool2", n.lrn("norm2", x), "MAX", 3, 2)
    x = n.conv("conv3", x, 384, 3, p=1)
    n.relu("relu3", x)
    x = n.conv("conv4", x, 384, 3, p=1, g=2)
    n.relu("relu4", x)
    x = n.conv("conv5", x, 256, 3, p=1, g=2)
    n.relu("relu5", x)
    x = n.pool("pool5", x, "MAX", 3, 2)
    for i in (6, 7):
        x = n.fc(f"fc{i}", x, 4096)
        n.relu(f"relu{i}", x)
        n.add(f"drop{i}", "DROPOUT", x, x, "dropout_param { dropout_ratio: 0.5 } ")
    x = n.fc("fc8", x, 1000)
    n.add("prob", "SOFTMAX", x, "prob")
    n.write("alexnet_v1.prototxt")


def vgg16() -> None:
    n = Net("VGG_ILSVRC_16_layers", (1, 3, 32, 32))
    x = "data"
    for stage, (width, count) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, count + 1):
            x = n.conv(f"conv{stage}_{i}", x, width, 3, p=1)
            n.relu(f"relu{stage}_{i}", x)
        x = n.pool(f"pool{stage}", x, "MAX", 2, 2)
    for i in (6, 7):
        x = n.fc(f"fc{i}", x, 4096)
        n.relu(f"relu{i}", x)
        n.add(f"drop{i}", "Dropout", x, x, "dropout_param { dropout_ratio: 0.5 } ")
    n.add("prob", "Softmax", n.fc("fc8", x, 1000), "prob")
    n.write("vgg16.prototxt")


def googlenet() -> None:
    n = Net("GoogleNet", (1, 3, 224, 224))
    x = n.conv("conv1/7x7_s2", "data", 64, 7, s=2, p=3)
    n.relu("conv1/relu_7x7", x)
    x = n.lrn("pool1/norm1", n.pool("pool1/3x3_s2", x, "MAX", 3, 2))
    x = n.conv("conv2/3x3_reduce", x, 64, 1)
    n.relu("conv2/relu_3x3_reduce", x)
    x = n.conv("conv2/3x3", x, 192, 3, p=1)
    n.relu("conv2/relu_3x3", x)
    x = n.pool("pool2/3x3_s2", n.lrn("conv2/norm2", x), "MAX", 3, 2)

    def inception(name: str, x: str, c1: int, r3: int, c3: int, r5: int, c5: int, pp: int) -> str:
        outs = []
        b = n.conv(f"{name}/1x1", x, c1, 1)
        n.relu(f"{name}/relu_1x1", b)
        outs.append(b)
        b = n.conv(f"{name}/3x3_reduce", x, r3, 1)
        n.relu(f"{name}/relu_3x3_reduce", b)
        b = n.conv(f"{name}/3x3", b, c3, 3, p=1)
        n.relu(f"{name}/relu_3x3", b)
        outs.append(b)
        b = n.conv(f"{name}/5x5_reduce", x, r5, 1)
        n.relu(f"{name}/relu_5x5_reduce", b)
        b = n.conv(f"{name}/5x5", b, c5, 5, p=2)
        n.relu(f"{name}/relu_5x5", b)
        outs.append(b)
        b = n.pool(f"{name}/pool", x, "MAX", 3, 1, p=1)
        b = n.conv(f"{name}/pool_proj", b, pp, 1)
        n.relu(f"{name}/relu_pool_proj", b)
        outs.append(b)
        return n.add(f"{name}/output", "Concat", outs, f"{name}/output")

    x = inception("inception_3a", x, 64, 96, 128, 16, 32, 32)
    x = inception("inception_3b", x, 128, 128, 192, 32, 96, 64)
    x = n.pool("pool3/3x3_s2", x, "MAX", 3, 2)
    for name, cfg in [
        ("4a", (192, 96, 208, 16, 48, 64)),
        ("4b", (160, 112, 224, 24, 64, 64)),
        ("4c", (128, 128, 256, 24, 64, 64)),
        ("4d", (112, 144, 288, 32, 64, 64)),
        ("4e", (256, 160, 320, 32, 128, 128)),
    ]:
        x = inception(f"inception_{name}", x, *cfg)
    x = n.pool("pool4/3x3_s2", x, "MAX", 3, 2)
    x = inception("inception_5a", x, 256, 160, 320, 32, 128, 128)
    x = inception("inception_5b", x, 384, 192, 384, 48, 128, 128)
    x = n.pool("pool5/7x7_s1", x, "AVE", 7, 1)
    n.add("pool5/drop_7x7_s1", "Dropout", x, x, "dropout_param { dropout_ratio: 0.4 } ")
    n.add("prob", "Softmax", n.fc("loss3/classifier", x, 1000), "prob")
    n.write("googlenet.prototxt")


def resnet50() -> None:
    n = Net("ResNet-50", (1, 3, 224, 224))
    x = n.conv("conv1", "data", 64, 7, s=2, p=3, bias=True)
    n.bn_scale("conv1", x, "bn_conv1", "scale_conv1")
    n.relu("conv1_relu", x)
    x = n.pool("pool1", x, "MAX", 3, 2)
    for stage, (width, blocks) in zip("2345", [(64, 3), (128, 4), (256, 6), (512, 3)], strict=True):
        for i in range(blocks):
            b = f"{stage}{chr(ord('a') + i)}"
            stride = 2 if i == 0 and stage != "2" else 1
            if i == 0:
                short = n.conv(f"res{b}_branch1", x, width * 4, 1, s=stride, bias=False)
                n.bn_scale(b, short, f"bn{b}_branch1", f"scale{b}_branch1")
            else:
                short = x
            y = n.conv(f"res{b}_branch2a", x, width, 1, s=stride, bias=False)
            n.bn_scale(b, y, f"bn{b}_branch2a", f"scale{b}_branch2a")
            n.relu(f"res{b}_branch2a_relu", y)
            y = n.conv(f"res{b}_branch2b", y, width, 3, p=1, bias=False)
            n.bn_scale(b, y, f"bn{b}_branch2b", f"scale{b}_branch2b")
            n.relu(f"res{b}_branch2b_relu", y)
            y = n.conv(f"res{b}_branch2c", y, width * 4, 1, bias=False)
            n.bn_scale(b, y, f"bn{b}_branch2c", f"scale{b}_branch2c")
            x = n.add(f"res{b}", "Eltwise", [short, y], f"res{b}")
            n.relu(f"res{b}_relu", x)
    x = n.pool("pool5", x, "AVE", 7, 1)
    n.add("prob", "Softmax", n.fc("fc1000", x, 1000), "prob")
    n.write("resnet50.prototxt")


def squeezenet() -> None:
    n = Net("SqueezeNet_v1.1", (1, 3, 113, 113))
    x = n.conv("conv1", "data", 64, 3, s=2)
    n.relu("relu_conv1", x)
    x = n.pool("pool1", x, "MAX", 3, 2)

    def fire(i: int, x: str, s: int, e: int) -> str:
        q = n.conv(f"fire{i}/squeeze1x1", x, s, 1)
        n.relu(f"fire{i}/relu_squeeze1x1", q)
        a = n.conv(f"fire{i}/expand1x1", q, e, 1)
        n.relu(f"fire{i}/relu_expand1x1", a)
        b = n.conv(f"fire{i}/expand3x3", q, e, 3, p=1)
        n.relu(f"fire{i}/relu_expand3x3", b)
        return n.add(f"fire{i}/concat", "Concat", [a, b], f"fire{i}/concat")

    x = fire(3, fire(2, x, 16, 64), 16, 64)
    x = n.pool("pool3", x, "MAX", 3, 2)
    x = fire(5, fire(4, x, 32, 128), 32, 128)
    x = n.pool("pool5", x, "MAX", 3, 2)
    x = fire(9, fire(8, fire(7, fire(6, x, 48, 192), 48, 192), 64, 256), 64, 256)
    n.add("drop9", "Dropout", x, x, "dropout_param { dropout_ratio: 0.5 } ")
    x = n.conv("conv10", x, 1000, 1)
    n.relu("relu_conv10", x)
    n.add("prob", "Softmax", n.pool("pool10", x, "AVE", glob=True), "prob")
    n.write("squeezenet_v1.1.prototxt")


def _dw_sep(n: Net, name: str, x: str, c_in: int, c_out: int, stride: int, relu: str) -> str:
    y = n.conv(f"{name}/dw", x, c_in, 3, s=stride, p=1, g=c_in, bias=False)
    n.bn_scale(name, y, f"{name}/dw/bn", f"{name}/dw/scale")
    n.relu(f"{relu}/dw", y)
    y = n.conv(f"{name}/sep", y, c_out, 1, bias=False)
    n.bn_scale(name, y, f"{name}/sep/bn", f"{name}/sep/scale")
    n.relu(f"{relu}/sep", y)
    return y


def mobilenet_v1() -> None:
    n = Net("MOBILENET", (1, 3, 128, 128))
    x = n.conv("conv1", "data", 32, 3, s=2, p=1, bias=False)
    n.bn_scale("conv1", x, "conv1/bn", "conv1/scale")
    n.relu("relu1", x)
    c = 32
    for name, out, stride in [
        ("conv2_1", 64, 1), ("conv2_2", 128, 2), ("conv3_1", 128, 1), ("conv3_2", 256, 2),
        ("conv4_1", 256, 1), ("conv4_2", 512, 2), ("conv5_1", 512, 1), ("conv5_2", 512, 1),
        ("conv5_3", 512, 1), ("conv5_4", 512, 1), ("conv5_5", 512, 1), ("conv5_6", 1024, 2), ("conv6", 1024, 1),
    ]:  # fmt: skip
        x = _dw_sep(n, name, x, c, out, stride, "relu" + name[4:])
        c = out
    x = n.pool("pool6", x, "AVE", glob=True)
    x = n.conv("fc7", x, 1000, 1)
    n.add("prob", "Softmax", x, "prob")
    n.write("mobilenet_v1.prototxt")


def mobilenet_v2() -> None:
    n = Net("MOBILENET_V2", (1, 3, 128, 128))
    x = n.conv("conv1", "data", 32, 3, s=2, p=1, bias=False)
    n.bn_scale("conv1", x, "conv1/bn", "conv1/scale")
    n.relu("relu1", x)
    c, stage = 32, 2
    for t, out, repeat, stride in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(repeat):
            name = f"conv{stage}_{i + 1}"
            s = stride if i == 0 else 1
            y = n.conv(f"{name}/expand", x, c * t, 1, bias=False)
            n.bn_scale(name, y, f"{name}/expand/bn", f"{name}/expand/scale")
            n.relu(f"relu{stage}_{i + 1}/expand", y)
            y = n.conv(f"{name}/dwise", y, c * t, 3, s=s, p=1, g=c * t, bias=False)
            n.bn_scale(name, y, f"{name}/dwise/bn", f"{name}/dwise/scale")
            n.relu(f"relu{stage}_{i + 1}/dwise", y)
            y = n.conv(f"{name}/linear", y, out, 1, bias=False)
            n.bn_scale(name, y, f"{name}/linear/bn", f"{name}/linear/scale")
            x = (
                n.add(f"block_{stage}_{i + 1}", "Eltwise", [x, y], f"block_{stage}_{i + 1}")
                if s == 1 and c == out
                else y
            )
            c = out
        stage += 1
    x = n.conv("conv6_4", x, 1280, 1, bias=False)
    n.bn_scale("conv6_4", x, "conv6_4/bn", "conv6_4/scale")
    n.relu("relu6_4", x)
    x = n.pool("pool6", x, "AVE", glob=True)
    x = n.conv("fc7", x, 1000, 1)
    n.add("prob", "Softmax", x, "prob")
    n.write("mobilenet_v2.prototxt")


def mobilenet_ssd() -> None:
    n = Net("MobileNet-SSD", (1, 3, 300, 300))
    x = n.conv("conv0", "data", 32, 3, s=2, p=1, bias=False)
    n.bn_scale("conv0", x, "conv0/bn", "conv0/scale")
    n.relu("conv0/relu", x)
    c = 32
    feats = {}
    for i, (out, stride) in enumerate(
        [
            (64, 1),
            (128, 2),
            (128, 1),
            (256, 2),
            (256, 1),
            (512, 2),
            (512, 1),
            (512, 1),
            (512, 1),
            (512, 1),
            (512, 1),
            (1024, 2),
            (1024, 1),
        ],
        start=1,
    ):
        y = n.conv(f"conv{i}/dw", x, c, 3, s=stride, p=1, g=c, bias=False)
        n.bn_scale(f"conv{i}", y, f"conv{i}/dw/bn", f"conv{i}/dw/scale")
        n.relu(f"conv{i}/dw/relu", y)
        x = n.conv(f"conv{i}", y, out, 1, bias=False)
        n.bn_scale(f"conv{i}", x, f"conv{i}/bn", f"conv{i}/scale")
        n.relu(f"conv{i}/relu", x)
        feats[f"conv{i}"] = x
        c = out
    for i, (mid, out) in zip((14, 15, 16, 17), [(256, 512), (128, 256), (128, 256), (64, 128)], strict=True):
        y = n.conv(f"conv{i}_1", x, mid, 1, bias=False)
        n.bn_scale(f"conv{i}_1", y, f"conv{i}_1/bn", f"conv{i}_1/scale")
        n.relu(f"conv{i}_1/relu", y)
        x = n.conv(f"conv{i}_2", y, out, 3, s=2, p=1, bias=False)
        n.bn_scale(f"conv{i}_2", x, f"conv{i}_2/bn", f"conv{i}_2/scale")
        n.relu(f"conv{i}_2/relu", x)
        feats[f"conv{i}_2"] = x
    heads = [
        ("conv11", 60, None, [2.0], 3),
        ("conv13", 105, 150, [2.0, 3.0], 6),
        ("conv14_2", 150, 195, [2.0, 3.0], 6),
        ("conv15_2", 195, 240, [2.0, 3.0], 6),
        ("conv16_2", 240, 285, [2.0, 3.0], 6),
        ("conv17_2", 285, 300, [2.0, 3.0], 6),
    ]
    locs, confs, priors = [], [], []
    for name, min_size, max_size, ratios, k in heads:
        f = feats[name]
        for kind, width, acc in (("loc", 4, locs), ("conf", 21, confs)):
            y = n.conv(f"{name}_mbox_{kind}", f, k * width, 1)
            y = n.add(
                f"{name}_mbox_{kind}_perm",
                "Permute",
                y,
                f"{name}_mbox_{kind}_perm",
                "permute_param { order: 0 order: 2 order: 3 order: 1 } ",
            )
            acc.append(
                n.add(
                    f"{name}_mbox_{kind}_flat", "Flatten", y, f"{name}_mbox_{kind}_flat", "flatten_param { axis: 1 } "
                )
            )
        body = f"min_size: {min_size}" + (f" max_size: {max_size}" if max_size else "")
        body += "".join(f" aspect_ratio: {r}" for r in ratios) + " flip: true clip: false"
        body += " variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 offset: 0.5"
        priors.append(
            n.add(
                f"{name}_mbox_priorbox",
                "PriorBox",
                [f, "data"],
                f"{name}_mbox_priorbox",
                f"prior_box_param {{ {body} }} ",
            )
        )
    n.add("mbox_loc", "Concat", locs, "mbox_loc", "concat_param { axis: 1 } ")
    n.add("mbox_conf", "Concat", confs, "mbox_conf", "concat_param { axis: 1 } ")
    n.add("mbox_priorbox", "Concat", priors, "mbox_priorbox", "concat_param { axis: 2 } ")
    n.add(
        "mbox_conf_reshape",
        "Reshape",
        "mbox_conf",
        "mbox_conf_reshape",
        "reshape_param { shape { dim: 0 dim: -1 dim: 21 } } ",
    )
    n.add("mbox_conf_softmax", "Softmax", "mbox_conf_reshape", "mbox_conf_softmax", "softmax_param { axis: 2 } ")
    n.add("mbox_conf_flatten", "Flatten", "mbox_conf_softmax", "mbox_conf_flatten", "flatten_param { axis: 1 } ")
    n.add(
        "detection_out",
        "DetectionOutput",
        ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
        "detection_out",
        "detection_output_param { num_classes: 21 share_location: true background_label_id: 0 "
        "nms_param { nms_threshold: 0.45 top_k: 100 } code_type: CENTER_SIZE keep_top_k: 100 "
        "confidence_threshold: 0.25 } ",
    )
    n.write("mobilenet_ssd.prototxt")


if __name__ == "__main__":
    for make in (alexnet, vgg16, googlenet, resnet50, squeezenet, mobilenet_v1, mobilenet_v2, mobilenet_ssd):
        make()
