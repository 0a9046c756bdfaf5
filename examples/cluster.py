"""Speaker diarization: who spoke when.

    python examples/cluster.py                    # reads diarizer.cfg
    python examples/cluster.py -c my_config.cfg --plot timeline.png
    python examples/cluster.py --speakers 2       # or --min-speakers 2 --max-speakers 4

Errors are one 'cluster.py: error: ...' line on stderr and exit status 2; nothing is written.
"""
from __future__ import annotations

import argparse
import sys

from em.diarization.config import describe, parse_value, read_config
from em.diarization.pipeline import run
from em.diarization.settings import COUNT_KEYS


class Parser(argparse.ArgumentParser):
    def error(self, message):                       # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _flag_value(key):
    def parse(raw):
        try:
            return parse_value(key, raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def main(argv=None) -> int:
    parser = Parser(
        description="Speaker diarization with em: features -> RTTM (+ DER with a reference).",
        epilog=describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="diarizer.cfg",
                        help="configuration file (default: diarizer.cfg)")
    parser.add_argument("--plot", metavar="PNG",
                        help="draw hypothesis vs reference timeline into a .png file")
    for key in COUNT_KEYS:
        parser.add_argument("--" + key.replace("_", "-"), metavar="N", type=_flag_value(key),
                            help=f"overrides the key {key} (below)")
    args = parser.parse_args(argv)
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        parser.error(f"--plot {args.plot!r}: the timeline is a PNG picture; name a .png file")
    try:
        flags = {key: getattr(args, key) for key in COUNT_KEYS if getattr(args, key) is not None}
        run(read_config(args.config).with_keys(**flags), plot=args.plot)
    except (ValueError, OSError, ImportError) as exc:   # ConfigError, DiarizerError, HTKError..
        hint = " (pip install -e '.[diarizer]')" if isinstance(exc, ImportError) else ""
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}{hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from em.cli import run_main
    run_main(main)     # Ctrl-C: status 130; closed stdout: quiet, 141
