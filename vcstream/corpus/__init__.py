"""Training corpus: sentences, voices that speak them, speaker variants, and the builder.

``vcstream corpus build`` (``vcstream.corpus.build.main``) renders many sentences with every
voice installable from the package registries and writes an LJSpeech-style corpus with our
features (mel, pitch, GE2E embedding, phonemes) beside it.
"""
