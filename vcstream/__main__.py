import sys

from vcstream.cli import main

sys.exit(main())
