"""Inputs: decoding and validating images, file/video frame sources, JSON serialisation."""
