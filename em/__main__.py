"""Command line of the specializer.

``python -m em info``    backends available here (and why others are not), the target (ISA, vector
                         width, registers), compiler, cache, tuning
``python -m em render --backend c|cuda --D 39 --cvtype full --dtype float32
   [--vector-bytes 32] [--variant NAME]``
                         print the generated source of a kernel family (any M)
"""
from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

from em.models.covariance import CVTYPES
from em.specializer.target import WIDTHS


def _info(_args) -> int:
    from em import __version__, backends
    print(f"em {__version__}  python {platform.python_version()}  numpy {np.__version__}  "
          f"({platform.machine()}, {platform.system()})")
    env = backends.ENV_VAR
    print(f"backends in preference order ('auto' takes the first that loads; env {env} overrides):")
    for name, reason in backends.status().items():
        print(f"  {name:8s} {'available' if reason is None else 'unavailable: ' + reason}")
    print(f"auto -> {backends.get_backend('auto').name}")
    from em.specializer import cache, compile as cc, target, tuning
    try:
        print(f"C++ compiler: {cc.compiler_version()}")
        print(f"  flags: {' '.join(cc.cflags())}")
        print(f"target: {target.detect().describe()}  (env {target.WIDTH_VAR}, "
              f"{target.MARCH_VAR} override)")
    except (cc.CompileError, ValueError) as exc:
        print(f"C++ compiler: none ({exc})")
    print(f"kernel cache: {cache.kernel_dir()} "
          f"({sum(1 for _ in cache.kernel_dir().glob('*/kernel.so'))} compiled kernels; "
          f"env {cache.ENV_VAR} moves it)")
    table = tuning.read()
    print(f"tuning file: {cache.tuning_file()} ({len(table)} problems; "
          f"autotuning {'on' if tuning.enabled() else 'off'}, env {tuning.ENV_VAR})")
    for key, record in sorted(table.items()):
        times = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in record.get("times_s", {}).items())
        print(f"  {key}: {record.get('variant')}  ({times})")
    return 0


def _render(args) -> int:
    from em.specializer.render import render
    if args.backend == "c":
        from em.backends.c_backend import render_params, units
        from em.specializer import compile as cc, target
        try:
            params = render_params(args.D, args.cvtype, args.dtype,
                                   target.detect(args.vector_bytes))
        except (cc.CompileError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        from em.backends.cuda_backend import render_params
        params = render_params(args.D, args.cvtype, args.dtype)
    if args.variant:
        params["variants"] = [v for v in params["variants"] if v.name == args.variant]
        if not params["variants"]:
            print(f"no variant {args.variant!r} for this problem", file=sys.stderr)
            return 2
    if args.backend == "c":
        print(cc.joined(units(params)))          # what is compiled (translation units)
    else:
        print(render(args.backend, "gmm", params))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m em", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print available backends and why others are not").set_defaults(
        func=_info)
    r = sub.add_parser("render", help="print the generated source of a kernel")
    r.add_argument("--backend", default="c", choices=["c", "cuda"])
    r.add_argument("--D", type=int, required=True, help="dimension (any M is served)")
    r.add_argument("--cvtype", choices=CVTYPES, default="diag")
    r.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    r.add_argument("--variant", help="only this code variant")
    r.add_argument("--vector-bytes", type=int, choices=WIDTHS,
                   help="C: vector width (default: EM_VECTOR_BYTES, else the target's)")
    r.set_defaults(func=_render)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    from em.cli import run_main
    run_main(main)     # Ctrl-C: status 130; closed stdout: quiet, 141
