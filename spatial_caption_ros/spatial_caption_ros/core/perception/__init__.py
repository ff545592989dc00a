"""Perception: the per-frame pipeline (detection, tracking, depth) and its model backends."""
