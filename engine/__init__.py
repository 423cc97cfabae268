"""Video Engine core: frame interpolation in plain torch/numpy/OpenCV (no ComfyUI imports)."""
import logging
import os
import signal
import sys

logging.getLogger(__name__).addHandler(logging.NullHandler())


def _interrupted_during_start_up(signum, frame):
    # Exit at once: an exception raised here lands inside whatever is importing (numpy's C extension
    # turned one into "cannot load module more than once" with a traceback), and nothing is written yet.
    sys.stderr.write("error: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


# `python -m engine.cli` (or `-m engine`) imports this package while argv[0] is still "-m": a Ctrl-C
# while torch & co are importing exits with 130 and one line, not a traceback. engine.cli.main takes
# over SIGINT once it runs. Imported as a library (ComfyUI), nothing is changed.
if sys.argv[:1] == ["-m"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_during_start_up)
