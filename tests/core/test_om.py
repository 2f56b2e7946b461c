"""The .om container: layout, zero-copy weights, integrity checks, atomic writes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from openatc import OpenATCError
from openatc.om import ALIGN, HEADER_SIZE, OmFile, write_om


def _sections() -> dict[str, object]:
    weights = [np.arange(10, dtype=np.float32), np.ones((3, 5), np.float16), np.arange(7, dtype=np.int64)]
    return {"manifest": b'{"weights": {"entries": []}}', "gear0/graph": b"graph-bytes", "weights": weights}


def test_round_trip_and_alignment(tmp_path: Path) -> None:
    path = tmp_path / "a.om"
    size = write_om(path, _sections())
    assert path.stat().st_size == size
    om = OmFile(path)
    try:
        assert list(om.sections) == ["manifest", "gear0/graph", "weights"]
        assert bytes(om.section("gear0/graph")) == b"graph-bytes"
        for section in om.sections.values():
            assert section.offset % ALIGN == 0
    finally:
        om.close()


def test_weights_are_read_only_views_of_the_mapping(tmp_path: Path) -> None:
    manifest = (
        b'{"weights": {"entries": [{"id": "w0", "dtype": "float32", "shape": [2, 5], "offset": 0},'
        b' {"id": "w1", "dtype": "float16", "shape": [3, 5], "offset": 64}]}}'
    )
    arrays = [np.arange(10, dtype=np.float32), np.ones((3, 5), np.float16)]
    path = tmp_path / "w.om"
    write_om(path, {"manifest": manifest, "weights": arrays})
    om = OmFile(path)
    weights = om.weights()
    np.testing.assert_array_equal(weights["w0"], np.arange(10, dtype=np.float32).reshape(2, 5))
    np.testing.assert_array_equal(weights["w1"], np.ones((3, 5), np.float16))
    mapping_start = np.frombuffer(om._mm, np.uint8).ctypes.data
    section_start = mapping_start + om.sections["weights"].offset
    for wid, offset in (("w0", 0), ("w1", 64)):
        array = weights[wid]
        assert not array.flags.writeable
        # zero copy: the array's memory is the mapped file's, at the entry's offset
        assert array.ctypes.data == section_start + offset
        assert array.ctypes.data % ALIGN == 0
    del weights, array
    om.close()


def test_identical_sections_give_identical_bytes(tmp_path: Path) -> None:
    write_om(tmp_path / "a.om", _sections())
    write_om(tmp_path / "b.om", _sections())
    assert (tmp_path / "a.om").read_bytes() == (tmp_path / "b.om").read_bytes()


@pytest.mark.parametrize("where", ["header_end", "middle", "last"])
def test_flipped_byte_fails_checksum(tmp_path: Path, where: str) -> None:
    path = tmp_path / "c.om"
    write_om(path, _sections())
    data = bytearray(path.read_bytes())
    index = {"header_end": HEADER_SIZE + 1, "middle": len(data) // 2, "last": len(data) - 1}[where]
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(OpenATCError) as err:
        OmFile(path)
    assert err.value.code == "E50002"
    assert str(path) in err.value.message


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "t.om"
    write_om(path, _sections())
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(OpenATCError) as err:
        OmFile(path)
    assert err.value.code == "E50002"


def test_newer_major_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.om"
    write_om(path, _sections())
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, 8, 2)
    path.write_bytes(bytes(data))
    with pytest.raises(OpenATCError) as err:
        OmFile(path)
    assert err.value.code == "E50003"
    assert "2.0" in err.value.message


def test_not_an_om(tmp_path: Path) -> None:
    path = tmp_path / "n.om"
    path.write_bytes(b"\x08\x07" + bytes(300))
    with pytest.raises(OpenATCError) as err:
        OmFile(path)
    assert err.value.code == "E50001"


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    class Boom:
        nbytes = 8

        def __len__(self) -> int:
            return 8

        def __buffer__(self, flags: int) -> memoryview:
            raise RuntimeError("disk on fire")

    with pytest.raises(Exception):  # noqa: B017 - whatever the writer raises, nothing may remain
        write_om(tmp_path / "f.om", {"manifest": b"{}", "gear0/graph": Boom()})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []
