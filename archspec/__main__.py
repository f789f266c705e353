"""`python -m archspec ...`: the same program as the `archspec` command, for when the venv's bin is not on PATH."""

import sys

from archspec.cli import main

sys.exit(main())
