"""Evaluation of the scene graph against external labels (KITTI depth, COCO boxes, VSR).

dataset.py reads a folder in the format of ../shared/eval, metrics.py scores one graph against
its labels, harness.py runs the real pipeline over a folder and writes the report; the command
is cli/evaluate.py (`make eval`).
"""
