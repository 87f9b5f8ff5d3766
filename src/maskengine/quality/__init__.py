"""Data maintenance: quality checks (suspect masks, duplicates, shapes), dataset versions,
statistics, drift, evaluation sets.

Sits above `engine` (it reads the project store and re-asks the served model) and below
the command line; `engine` and `server` import nothing of it at module level (a round
reads its evaluation set through a deferred import of `evalsets`).
"""
