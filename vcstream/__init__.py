"""vcstream: a real-time voice-cloning daemon."""

import os

# Set before torch loads OpenMP: idle OpenMP threads otherwise spin and steal the cores the
# other pipeline thread needs (measured on 2 cores: vocoder RTF 2.4 spinning, 1.0 passive).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
