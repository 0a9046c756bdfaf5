"""Speaker diarization: who spoke when.

    python examples/cluster.py                    # reads diarizer.cfg
    python examples/cluster.py -c my_config.cfg --plot timeline.png

Errors are one 'cluster.py: error: ...' line on stderr and exit status 2; nothing is written.
"""
from __future__ import annotations

import argparse
import sys

from em.diarization.config import describe, read_config
from em.diarization.pipeline import run


class Parser(argparse.ArgumentParser):
    def error(self, message):                       # one line, no usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv=None) -> int:
    parser = Parser(
        description="Speaker diarization with em: features -> RTTM (+ DER with a reference).",
        epilog=describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="diarizer.cfg",
                        help="configuration file (default: diarizer.cfg)")
    parser.add_argument("--plot", metavar="PNG",
                        help="draw hypothesis vs reference timeline into a .png file")
    args = parser.parse_args(argv)
    if args.plot is not None and not args.plot.lower().endswith(".png"):
        parser.error(f"--plot {args.plot!r}: the timeline is a PNG picture; name a .png file")
    try:
        run(read_config(args.config), plot=args.plot)
    except (ValueError, OSError, ImportError) as exc:   # ConfigError, DiarizerError, HTKError..
        hint = " (pip install -e '.[diarizer]')" if isinstance(exc, ImportError) else ""
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}{hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from em.cli import run_main
    run_main(main)     # Ctrl-C: status 130; closed stdout: quiet, 141
