"""`python -m curate`: the command line (what studies and eval fan-outs start as child processes)."""
from curate.cli import main

main()
