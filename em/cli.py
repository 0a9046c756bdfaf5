"""Running a command-line tool's ``main()``: quiet on Ctrl-C and on a closed output pipe.

Every tool (``python -m em``, ``examples/*.py``) ends with
``if __name__ == "__main__": run_main(main)``, which exits with ``main()``'s return value and:

* Ctrl-C (KeyboardInterrupt, SIGINT): prints one line, ``interrupted``, on stderr (no
  traceback) and exits with status 130 (128 + SIGINT), as shells report an interrupted job.
  Python raises KeyboardInterrupt wherever the main thread happens to be; inside a weakref
  callback or a ``__del__`` it would be printed as "Exception ignored" and lost, and the tool
  would run on.  While ``main()`` runs, such a swallowed interrupt sends SIGINT again, so
  that it lands in ordinary code.
* stdout closed by its reader (``tool | head -1``: Python ignores SIGPIPE, so the write raises
  BrokenPipeError): prints nothing and exits with status 141 (128 + SIGPIPE), the status a
  shell reports for a C tool killed by SIGPIPE.  stdout is first pointed at /dev/null, so the
  interpreter's final flush of what is still buffered does not fail a second time.

Everything else passes through unchanged: the tools' own error handling (one ``error:`` line on
stderr, status 2), argparse's exits (``--help``, usage errors) and other exceptions.  (argparse
itself ignores a failed write of its messages, so ``--help | head -1`` exits quietly with 0.)
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Callable, NoReturn

INTERRUPTED = 130       # 128 + SIGINT
BROKEN_PIPE = 141       # 128 + SIGPIPE


def run_main(main: Callable[..., "int | None"], *args, **kwargs) -> NoReturn:
    """``sys.exit(main(*args, **kwargs))``, mapping Ctrl-C to 130 and a closed stdout to a
    quiet 141 (see the module docstring)."""
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _interrupt_again(previous_hook)
    try:
        try:
            status = main(*args, **kwargs)
        except SystemExit as exc:           # argparse (--help, usage errors): flush below too
            status = exc.code
        if sys.stdout is not None:
            sys.stdout.flush()              # a closed pipe shows here, not at interpreter exit
    except KeyboardInterrupt:
        status = INTERRUPTED
        _say("interrupted")
    except BrokenPipeError:
        status = BROKEN_PIPE
        _stdout_to_devnull()
    finally:
        sys.unraisablehook = previous_hook
    sys.exit(status)


def _interrupt_again(previous_hook):
    """An unraisable-exception hook that turns a swallowed KeyboardInterrupt back into SIGINT
    and passes the rest on.  The signal comes from a timer thread a moment later, when the main
    thread has left this hook: raised here, it would be swallowed again."""
    def hook(unraisable):
        try:
            if not isinstance(unraisable.exc_value, KeyboardInterrupt):
                previous_hook(unraisable)
            elif signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                _sigint_in(0.05)
        except KeyboardInterrupt:           # a Ctrl-C that landed in this hook itself
            _sigint_in(0.05)
    return hook


def _sigint_in(seconds: float) -> None:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):   # stderr closed or gone: stay quiet
        pass


def _stdout_to_devnull() -> None:
    """Point file descriptor 1 (what sys.stdout writes to) at /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):   # no real file descriptor: nothing to do
        pass
