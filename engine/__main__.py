"""`python -m engine` is the same as `python -m engine.cli`."""
import sys

from .cli import main

sys.exit(main())
