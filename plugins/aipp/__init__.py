"""Built-in AIPP input formats (hook family 4): one record per ATC ``input_format``.

Each record only turns the raw bytes of its format into pixels ``[N, H, W, C]`` (uint8, in the
order the bytes hold them); the host (:mod:`openatc.aipp`) does the rest in ATC's order. Chroma of
subsampled YUV formats is replicated to full resolution (nearest neighbour). The RAW and
``NC1HWC0DI`` formats of ATC's proto have no record, so configurations naming them fail with
"not supported" (a vendor plugin may add them).
"""

from __future__ import annotations

from openatc.hookspecs import hookimpl
from openatc.plugins.aipp.formats import FORMATS

__all__ = ["openatc_aipp_formats"]


@hookimpl
def openatc_aipp_formats():  # type: ignore[no-untyped-def]
    return FORMATS
