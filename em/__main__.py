"""Command line of the specializer.

``python -m em info``    backends available here (and why others are not)
"""
from __future__ import annotations

import argparse
import platform
import sys

import numpy as np


def _info(_args) -> int:
    from em import __version__, backends
    print(f"em {__version__}  python {platform.python_version()}  numpy {np.__version__}  "
          f"({platform.machine()}, {platform.system()})")
    env = backends.ENV_VAR
    print(f"backends in preference order ('auto' takes the first that loads; env {env} overrides):")
    for name, reason in backends.status().items():
        print(f"  {name:8s} {'available' if reason is None else 'unavailable: ' + reason}")
    print(f"auto -> {backends.get_backend('auto').name}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m em", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print available backends and why others are not").set_defaults(
        func=_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
