"""Scene graph: object attributes and spatial relations.

Also k-NN salience, commonsense knowledge and checks of untrusted input.
"""
