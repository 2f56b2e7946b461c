"""Small graph helpers shared by the passes of this package."""

from __future__ import annotations

import abc

import numpy as np
import onnx_ir as ir

from openatc.graph import walk_nodes

ONNX_DOMAINS = ("", "ai.onnx")


def is_op(node: ir.Node | None, op_type: str | tuple[str, ...]) -> bool:
    """``node`` is a standard ONNX op of that type (or one of those types)."""
    if node is None or node.domain not in ONNX_DOMAINS:
        return False
    return node.op_type == op_type if isinstance(op_type, str) else node.op_type in op_type


def op_types(graph: ir.Graph) -> set[str]:
    """Op types of the nodes of ``graph`` and of its subgraphs."""
    return {node.op_type for node in walk_nodes(graph)}


def static_type(value: ir.Value) -> bool:
    """``value`` has a tensor type with a known element type and a shape of fixed dims (old
    exporters' ``-1`` for "dynamic" is an int to onnx_ir, not a fixed dim)."""
    shape = value.shape
    return (
        isinstance(value.type, ir.TensorType)
        and value.dtype is not None
        and shape is not None
        and all(isinstance(dim, int) and dim >= 0 for dim in shape)
    )


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant content (initializer or Constant node), or None."""
    if value is None:
        return None
    tensor = value.const_value
    if tensor is None:
        producer = value.producer()
        if is_op(producer, "Constant") and "value" in producer.attributes:
            attr = producer.attributes["value"]
            # as_tensor() checks the value against a runtime protocol: slower than the rest together
            tensor = attr.value if attr.type == ir.AttributeType.TENSOR else attr.as_tensor()
    if tensor is None:
        return None
    try:
        return tensor.numpy()
    except Exception:  # noqa: BLE001 - packed/odd tensor types are simply not constants to us
        return None


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    if value is None or value.shape is None or not value.shape.is_static():
        return None
    return tuple(int(d) for d in value.shape)


def attr_int(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    return default if attr is None else attr.as_int()


def attr_ints(node: ir.Node, name: str) -> tuple[int, ...] | None:
    attr = node.attributes.get(name)
    return None if attr is None else tuple(attr.as_ints())


def single_use(value: ir.Value) -> bool:
    """Used by exactly one node input and not a graph output."""
    return len(value.uses()) == 1 and not value.is_graph_output()


def bypass(node: ir.Node, source: ir.Value) -> bool:
    """Removes ``node``, whose first output equals ``source``; False (nothing done) when unsafe.

    Other outputs must be unused. When the output is a graph output, ``source`` takes over its
    name, unless ``source`` is a graph input, an initializer or a value of another graph.
    """
    graph = node.graph
    if graph is None or not node.outputs:
        return False
    y = node.outputs[0]
    if any(out.uses() or out.is_graph_output() for out in node.outputs[1:]):
        return False
    if y.is_graph_output():
        producer = source.producer()
        local = producer is not None and producer.graph is graph
        if not local or source.is_graph_output() or source.is_graph_input() or source.is_initializer():
            return False
        if source.dtype != y.dtype:
            return False
        name = y.name
        y.replace_all_uses_with(source, replace_graph_outputs=True)
        graph.remove(node, safe=True)
        source.name = name
        return True
    y.replace_all_uses_with(source)
    graph.remove(node, safe=True)
    return True


def remove_if_unused(node: ir.Node) -> None:
    """Removes ``node`` when none of its outputs is used any more."""
    if node.graph is not None and not any(o.uses() or o.is_graph_output() for o in node.outputs):
        node.graph.remove(node, safe=True)


def take_over(old: ir.Value, new: ir.Value) -> None:
    """``new`` replaces ``old`` everywhere (graph outputs too) and takes its name, shape and type."""
    new.shape, new.type = old.shape, old.type
    name = old.name
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    old.name = None
    new.name = name


class NodeRewritePass(ir.passes.InPlacePass):
    """Tries :meth:`rewrite` on every main-graph node of ``op_type``; counts hits per rule name."""

    op_type: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    @abc.abstractmethod
    def rewrite(self, node: ir.Node) -> str | None:
        """Rewrites ``node`` in place and returns the rule's name, or returns None."""

    def enabled(self) -> bool:
        return True

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.hits = {}
        if self.enabled():
            for node in list(model.graph):
                rule = self.rewrite(node) if is_op(node, self.op_type) and node.graph is not None else None
                if rule:
                    self.hits[rule] = self.hits.get(rule, 0) + 1
        return ir.passes.PassResult(model, modified=bool(self.hits))


def new_initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """Registers ``array`` as an initializer of ``graph`` under ``name`` (``_`` appended until the
    name is free) with its dtype and shape set; returns its value."""
    while name in graph.initializers:
        name += "_"
    value = ir.Value(name=name, const_value=ir.Tensor(np.ascontiguousarray(array), name=name))
    value.shape, value.dtype = ir.Shape(array.shape), ir.DataType.from_numpy(array.dtype)
    graph.register_initializer(value)
    return value
