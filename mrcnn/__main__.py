"""``python -m mrcnn``: the mrcnn command line (see mrcnn.cli)."""
from mrcnn.cli import console_main

if __name__ == "__main__":
    console_main()
