"""Data maintenance: quality checks (suspect masks, duplicates, shapes), dataset versions.

Sits above `engine` (it reads the project store and re-asks the served model) and below
the command line; nothing here is imported by `engine` or `server`.
"""
