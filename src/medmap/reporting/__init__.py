"""What a run and a set of runs report: the run directory's files, map plots, publication
figures, Tables 1-3 and the interactive explorer page."""
