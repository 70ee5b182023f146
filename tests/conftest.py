"""Test-suite settings.

Property tests draw the same examples on every run (``derandomize``): CI on a loaded machine
must pass or fail on the code alone, never on which random examples a run happened to draw.
A property is still checked on every example each test asks for; to explore new ones, run
with ``--hypothesis-profile explore``.
"""

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")
