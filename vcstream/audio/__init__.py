"""Audio conventions: float32 mono in [-1, 1]; WAV I/O, resampling and mel features."""
