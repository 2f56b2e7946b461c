"""openatc.gears: parsing the shape flags and expanding gears (no model needed)."""

from __future__ import annotations

import pytest

from openatc.errors import OpenATCError
from openatc.gears import Dynamic, InputShape, gear_shapes, max_gears, parse_dynamic, parse_input_shape


def _parse(fmt: str = "ND", **given: str) -> tuple[tuple[InputShape, ...], Dynamic | None, tuple[str, ...]]:
    return parse_dynamic(given, parse_input_shape(given.get("input_shape", "")), fmt)


def test_input_shape_dims_and_ranges() -> None:
    (x, y) = parse_input_shape("x:1,-1,3~8;y:")
    assert x == InputShape("x", (1, -1, -1), ((1, 1), (0, -1), (3, 8)))
    assert x.dynamic_axes == (1, 2)
    assert x.text() == "x:1,-1,3~8"
    assert y == InputShape("y", ())
    assert parse_input_shape("x:2,4") == (InputShape("x", (2, 4)),)  # static: no ranges
    assert parse_input_shape("x:1,4~-1")[0].ranges[1] == (4, -1)


def test_dims_across_inputs_in_order() -> None:
    shapes, dynamic, notes = _parse(input_shape="ids:1,-1;mask:1,-1;pos:-1", dynamic_dims="8,8,2;16,16,4")
    assert dynamic == Dynamic("dynamic_dims", ((8, 8, 2), (16, 16, 4)))
    assert notes == ()
    gears = gear_shapes(shapes, dynamic, "ND")
    assert [[s.dims for s in g] for g in gears] == [[(1, 8), (1, 8), (2,)], [(1, 16), (1, 16), (4,)]]


def test_comma_form_needs_exactly_one_minus_one() -> None:
    _, dynamic, notes = _parse(input_shape="ids:1,-1", dynamic_dims="64, 128 ,256")
    assert dynamic is not None and dynamic.gears == ((64,), (128,), (256,))
    assert "each number is one gear" in notes[0]
    with pytest.raises(OpenATCError) as info:  # two -1 dims: "64,128" is one gear of two values
        _parse(input_shape="ids:1,-1;mask:1,-1", dynamic_dims="64,128")
    assert info.value.code == "E10035"


def test_batch_applies_to_every_batch_dim() -> None:
    shapes, dynamic, _ = _parse("NCHW", input_shape="a:-1,3,8,8;b:-1,4;c:2", dynamic_batch_size="1, 4,")
    assert dynamic == Dynamic("dynamic_batch_size", ((1,), (4,)))
    gears = gear_shapes(shapes, dynamic, "NCHW")
    assert [[s.dims for s in g] for g in gears] == [[(1, 3, 8, 8), (1, 4), (2,)], [(4, 3, 8, 8), (4, 4), (2,)]]


@pytest.mark.parametrize(
    ("fmt", "shape", "want"), [("NCHW", "x:1,3,-1,-1", (1, 3, 20, 30)), ("NHWC", "x:1,-1,-1,3", (1, 20, 30, 3))]
)
def test_image_size_follows_the_format(fmt: str, shape: str, want: tuple[int, ...]) -> None:
    shapes, dynamic, _ = _parse(fmt, input_shape=shape, dynamic_image_size="20,30;40,60")
    assert gear_shapes(shapes, dynamic, fmt)[0][0].dims == want


def test_minus_one_alone_is_a_range_compile() -> None:
    shapes, dynamic, _ = _parse(input_shape="x:1,-1")
    assert dynamic == Dynamic("shape_range")
    assert gear_shapes(shapes, dynamic, "ND") == [shapes]
    shapes, dynamic, _ = _parse(input_shape_range="x:[1~4,16]")
    assert dynamic == Dynamic("shape_range") and shapes[0].ranges == ((1, 4), (16, 16))


def test_static_shapes_have_no_dynamic() -> None:
    shapes, dynamic, notes = _parse(input_shape="x:1,4")
    assert dynamic is None and notes == () and gear_shapes(shapes, dynamic, "ND") == [shapes]


def test_gear_count_limit_follows_the_soc() -> None:
    shapes = parse_input_shape("x:-1,3,8,8")
    many = ",".join(str(i) for i in range(1, 102))  # 101 gears
    with pytest.raises(OpenATCError) as info:
        parse_dynamic({"dynamic_batch_size": many}, shapes, "NCHW", "cpu")
    assert info.value.code == "E10036" and "maximum 100" in str(info.value)
    # The Ascend 950 chips allow 256 gears (spec 1.4.2), not one more.
    _, dynamic, _ = parse_dynamic({"dynamic_batch_size": many}, shapes, "NCHW", "Ascend950PR")
    assert dynamic is not None and len(dynamic.gears) == 101
    too_many = ",".join(str(i) for i in range(1, 258))
    with pytest.raises(OpenATCError) as info:
        parse_dynamic({"dynamic_batch_size": too_many}, shapes, "NCHW", "Ascend950DT")
    assert info.value.code == "E10036" and "maximum 256 for --soc_version=Ascend950DT" in str(info.value)
    assert max_gears("cpu") == 100 and max_gears("Ascend910B1") == 100 and max_gears("ascend950pr") == 256


def test_dynamic_dims_rank_at_most_four() -> None:
    _, dynamic, _ = _parse(input_shape="x:1,-1,2,3", dynamic_dims="4;8")
    assert dynamic is not None and dynamic.gears == ((4,), (8,))
    for text in ("x:1,-1,2,3,4", "x:1,-1;y:1,1,1,1,1"):
        with pytest.raises(OpenATCError) as info:
            _parse(input_shape=text, dynamic_dims="4;8")
        assert info.value.code == "E10001" and "1 to 4 dims" in str(info.value)
