"""Runtime plumbing shared by the stages.

Latest-only hand-off, counters, text sanitising, shipped files.
"""
