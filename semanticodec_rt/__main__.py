"""``python -m semanticodec_rt``: the command line of :mod:`semanticodec_rt.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
