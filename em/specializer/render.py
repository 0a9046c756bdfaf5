"""Render a kernel template from an explicit parameter dict.

``render('c', 'gmm', {'cvtype': 'diag', 'M': 64, 'D': 39, 'dtype': 'float32',
'variants': [...]})`` returns the source text that is compiled; ``python -m em render`` prints it.
Templates live in ``em/templates/<backend>/<name>.mako``; undefined names are errors.
"""
from __future__ import annotations

import hashlib
import shutil
import warnings
from functools import lru_cache
from pathlib import Path

from mako.lookup import TemplateLookup

from em.specializer.cache import subdir

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"


def templates_hash() -> str:
    """A hash of every template's text: the folder of their compiled modules.  (Mako checks a
    compiled module against its template's mtime only; an upgrade from a wheel, or a second
    checkout, can bring templates older than the modules compiled from other ones.)"""
    h = hashlib.sha256()
    for path in sorted(TEMPLATE_DIR.glob("*/*.mako")):
        h.update(path.relative_to(TEMPLATE_DIR).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


PACKAGE_DIR = TEMPLATE_DIR.parent


@lru_cache(maxsize=None)
def code_stamp() -> str:
    """A hash of the name, size and modification time of every template and Python file of em:
    what a rendered source depends on besides its parameters.  Any edit, upgrade or other
    checkout changes it (it can only miss, never match stale code); costs ~1 ms, no reading."""
    h = hashlib.sha256()
    for path in sorted([*PACKAGE_DIR.rglob("*.py"), *TEMPLATE_DIR.rglob("*.mako")]):
        st = path.stat()
        h.update(f"{path.relative_to(PACKAGE_DIR).as_posix()}:{st.st_size}:{st.st_mtime_ns}\0"
                 .encode())
    return h.hexdigest()[:16]


@lru_cache(maxsize=None)
def _lookup(cached: bool = True) -> TemplateLookup:
    # Mako's compiled templates are kept beside the kernels, so a new process skips parsing
    modules = None
    if cached:
        try:
            modules = str(subdir("mako") / templates_hash())
        except OSError:                   # unusable cache: parse templates every time
            pass
    return TemplateLookup(directories=[str(TEMPLATE_DIR)], strict_undefined=True,
                          module_directory=modules)


def render(backend: str, name: str, params: dict) -> str:
    """Source text of template ``<backend>/<name>.mako`` rendered with ``params``.  Damaged
    compiled templates in the cache are removed (one warning) and the templates parsed again."""
    uri = f"{backend}/{name}.mako"
    lookup = _lookup()
    if lookup.module_directory is None:
        return lookup.get_template(uri).render(**params)
    try:
        return lookup.get_template(uri).render(**params)
    except (SyntaxError, ImportError, EOFError, ValueError, AttributeError) as exc:
        text = _lookup(False).get_template(uri).render(**params)   # raises if ours is wrong
        warnings.warn(f"em: compiled templates in {lookup.module_directory} are damaged "
                      f"({type(exc).__name__}); removing them", RuntimeWarning, stacklevel=3)
        shutil.rmtree(lookup.module_directory, ignore_errors=True)
        _lookup.cache_clear()
        return text


def templates() -> list[str]:
    """Every template, as ``backend/name``."""
    return sorted(str(p.relative_to(TEMPLATE_DIR).with_suffix(""))
                  for p in TEMPLATE_DIR.glob("*/*.mako"))
