"""Render a kernel template from an explicit parameter dict.

``render('c', 'gmm', {'cvtype': 'diag', 'M': 64, 'D': 39, 'dtype': 'float32',
'variants': [...]})`` returns the source text that is compiled; ``python -m em render`` prints it.
Templates live in ``em/templates/<backend>/<name>.mako``; undefined names are errors.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from mako.lookup import TemplateLookup

from em.specializer.cache import cache_dir

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=None)
def _lookup() -> TemplateLookup:
    # Mako's compiled templates are kept beside the kernels, so a new process skips parsing
    try:
        modules = cache_dir() / "mako"
        modules.mkdir(exist_ok=True)
    except OSError:                       # unwritable cache: parse templates every time
        modules = None
    return TemplateLookup(directories=[str(TEMPLATE_DIR)], strict_undefined=True,
                          module_directory=None if modules is None else str(modules))


def render(backend: str, name: str, params: dict) -> str:
    """Source text of template ``<backend>/<name>.mako`` rendered with ``params``."""
    return _lookup().get_template(f"{backend}/{name}.mako").render(**params)


def templates() -> list[str]:
    """Every template, as ``backend/name``."""
    return sorted(str(p.relative_to(TEMPLATE_DIR).with_suffix(""))
                  for p in TEMPLATE_DIR.glob("*/*.mako"))
