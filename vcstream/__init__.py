"""vcstream: a real-time voice-cloning daemon."""

__version__ = "0.1.0"
