"""Synthesisers: phonemes plus a speaker conditioning in, a stream of mel frames out."""
