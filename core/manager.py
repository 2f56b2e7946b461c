"""The plugin manager: built-ins first, then the ``openatc`` entry-point group, then checks.

Nothing loads at import time: :func:`get_plugin_manager` is a factory (cached for the process by
:func:`default_plugin_manager`). Set ``OPENATC_DISABLE_PLUGIN_AUTOLOAD=1`` to skip entry points and
``OPENATC_BLOCK_PLUGINS=name1,name2`` to skip named ones.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import pluggy

from openatc import hookspecs
from openatc.errors import OpenATCError
from openatc.types import AippFormat, Backend, Frontend, PassSpec, Quantizer

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "OpenATCPluginManager",
    "PluginInfo",
    "default_plugin_manager",
    "get_plugin_manager",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "openatc"

#: Built-in plugins, registered exactly as an external plugin would be.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "openatc.frontends.onnx",
    "openatc.frontends.caffe",
    "openatc.frontends.tensorflow",
    "openatc.plugins.passes",
    "openatc.plugins.backends.cpu",
    "openatc.plugins.backends.reference",
    "openatc.plugins.aipp",
    "openatc.plugins.quantizers",
)

R = TypeVar("R")


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, for ``openatc plugins``."""

    name: str
    origin: str  # "built-in" or the distribution name
    version: str
    module: str


class OpenATCPluginManager(pluggy.PluginManager):
    """A pluggy manager with typed accessors for each contribute-hook."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self._origins: dict[str, tuple[str, str]] = {}
        self._cache: dict[str, Any] = {}
        self._origin_of: dict[tuple[str, str], str] = {}

    # -- registration -------------------------------------------------------------------------
    def register(self, plugin: object, name: str | None = None) -> str | None:
        self._cache.clear()
        return super().register(plugin, name)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        self._cache.clear()
        return super().unregister(plugin, name)

    def register_builtin(self, module_name: str) -> None:
        from openatc import __version__

        module = importlib.import_module(module_name)
        self.register(module, name=module_name)
        self._origins[module_name] = ("built-in", __version__)

    def load_entrypoints(self) -> int:
        """Registers plugins of the ``openatc`` entry-point group; returns how many."""
        blocked = {n.strip() for n in os.environ.get("OPENATC_BLOCK_PLUGINS", "").split(",") if n.strip()}
        count = 0
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or self.get_plugin(ep.name) is not None or self.is_blocked(ep.name):
                continue
            plugin = ep.load()
            self.register(plugin, name=ep.name)
            dist = ep.dist
            self._origins[ep.name] = (dist.name if dist else "?", dist.version if dist else "?")
            count += 1
        return count

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.list_name_plugin():
            origin, version = self._origins.get(name, ("registered", "?"))
            module = getattr(plugin, "__name__", type(plugin).__name__)
            infos.append(PluginInfo(name, origin, version, module))
        return sorted(infos, key=lambda i: (i.origin != "built-in", i.name))

    # -- records ------------------------------------------------------------------------------
    def _collect(self, hook_name: str, key: Callable[[R], Iterable[str]], kind: str) -> dict[str, R]:
        """Calls every implementation of a contribute-hook, rejecting duplicate keys (per ``kind``)."""
        cache_key = f"{hook_name}/{kind}"
        if cache_key in self._cache:
            return self._cache[cache_key]
        seen: dict[str, tuple[R, str]] = {}
        hook = getattr(self.hook, hook_name)
        for impl in hook.get_hookimpls():
            records = impl.function() or ()
            for record in records:
                for k in key(record):
                    if k in seen:
                        raise OpenATCError(
                            "E19001",
                            f"two plugins contribute the {kind} '{k}': '{seen[k][1]}' and '{impl.plugin_name}'",
                            hint="Uninstall one of them or block it with OPENATC_BLOCK_PLUGINS.",
                        )
                    seen[k] = (record, impl.plugin_name)
        result = {k: v[0] for k, v in seen.items()}
        self._cache[cache_key] = result
        self._origin_of.update({(hook_name, k): v[1] for k, v in seen.items()})
        self._origin_of.update({(hook_name, getattr(v[0], "name", k)): v[1] for k, v in seen.items()})
        return result

    def origin_of(self, hook_name: str, key: str) -> str:
        """The plugin that contributed record ``key`` of ``hook_name`` (after it was collected)."""
        return self._origin_of.get((hook_name, key), "?")

    def frontends(self) -> dict[str, Frontend]:
        """Frontends by framework id (as a string)."""
        return self._collect("openatc_frontends", lambda f: [str(i) for i in f.framework_ids], "framework id")

    def passes(self) -> dict[str, PassSpec]:
        return self._collect("openatc_passes", lambda p: [p.name], "pass")

    def quantizers(self) -> dict[str, Quantizer]:
        return self._collect("openatc_quantizers", lambda q: [q.name], "quantizer")

    def aipp_formats(self) -> dict[str, AippFormat]:
        return self._collect("openatc_aipp_formats", lambda a: [a.name], "AIPP input_format")

    def backends(self) -> dict[str, Backend]:
        """Backends by name."""
        return self._collect("openatc_backends", lambda b: [b.name], "backend")

    def backends_by_soc(self) -> dict[str, Backend]:
        """Backends by lower-cased ``--soc_version``; two backends may not serve the same one."""
        return self._collect("openatc_backends", lambda b: [s.lower() for s in b.soc_versions], "--soc_version")

    def backend_for_soc(self, soc_version: str) -> Backend:
        """The backend serving ``soc_version`` (case-insensitive); E40001 lists the known ones."""
        found = self.backends_by_soc().get(soc_version.lower())
        if found is None:
            backends = self.backends()
            served = ", ".join(
                f"{soc} ({name}, plugin {self.origin_of('openatc_backends', name)})"
                for name, b in sorted(backends.items())
                for soc in b.soc_versions
            )
            raise OpenATCError(
                "E40001",
                f"--soc_version={soc_version} is not served by any installed backend plugin; "
                f"installed targets: {served or 'none'}",
            )
        return found

    def backend_named(self, name: str) -> Backend:
        backend = self.backends().get(name)
        if backend is None:
            raise OpenATCError(
                "E40003",
                f"the .om was compiled for backend '{name}', which is not installed "
                f"(installed: {', '.join(sorted(self.backends())) or 'none'})",
                hint=f"Install the openatc plugin that provides backend '{name}'.",
            )
        return backend


def get_plugin_manager(*, load_entrypoints: bool | None = None) -> OpenATCPluginManager:
    """Creates a fresh manager: built-ins, then entry points (unless disabled), then ``check_pending``."""
    pm = OpenATCPluginManager()
    for module_name in BUILTIN_PLUGINS:
        pm.register_builtin(module_name)
    if load_entrypoints is None:
        load_entrypoints = os.environ.get("OPENATC_DISABLE_PLUGIN_AUTOLOAD", "") not in ("1", "true", "yes")
    if load_entrypoints:
        pm.load_entrypoints()
    pm.check_pending()
    return pm


@functools.cache
def default_plugin_manager() -> OpenATCPluginManager:
    """The process-wide manager used when callers pass none."""
    return get_plugin_manager()
