"""``python -m vcstream.train ...``: the same as ``vcstream train ...``."""

import sys

from vcstream.train import main

raise SystemExit(main(sys.argv[1:]))
