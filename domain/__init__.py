"""The pure domain model: the Job aggregate, its events and the policies.

Nothing here performs I/O, reads the clock or the environment, or touches a
global random generator: commands receive time and randomness as arguments and
record their outcome in events.
"""
