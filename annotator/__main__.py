"""`python -m annotator` runs the command line."""

from annotator.main import main

main()
