"""Speaker diarization: who spoke when, by agglomerative GMM/BIC clustering.

    python examples/cluster.py                    # reads diarizer.cfg
    python examples/cluster.py -c my_config.cfg --plot timeline.png
"""
from __future__ import annotations

import argparse
import sys

from em.diarization.config import ConfigError, describe, read_config
from em.diarization.pipeline import DiarizerError, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Speaker diarization with em: features -> RTTM (+ DER with a reference).",
        epilog=describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default="diarizer.cfg",
                        help="configuration file (default: diarizer.cfg)")
    parser.add_argument("--plot", metavar="PNG", help="draw hypothesis vs reference timeline")
    args = parser.parse_args(argv)
    try:
        run(read_config(args.config), plot=args.plot)
    except (ConfigError, DiarizerError, ValueError, OSError) as exc:
        print(f"cluster.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
