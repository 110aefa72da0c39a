"""Pure Sustainability-Index maths, statistics, graders and evaluation sets.

Nothing in this package performs network or GPU I/O; it is fed :class:`RequestRecord`s.
"""
