"""Deliberate breakages of what smelt claims, and the tests that must catch each one.

`make mutants` (`python -m tests.mutants`) copies the working tree to a temporary directory once
per mutant, applies one breakage there (a textual patch kept as data in `catalog.py`), runs only
the tests named for it against the copy, and fails when any mutant leaves its tests green: a
test named for a behaviour must fail when that behaviour breaks.
"""
