"""``python -m consentry``: the same command line as ``consentry``."""

from consentry.cli import main

if __name__ == "__main__":
    main()
