"""annotator: build image datasets by labelling in the terminal, reviewing in FiftyOne and
exporting training sets. This package root holds only the version; nothing heavy is imported."""

__version__ = "0.1.0"
