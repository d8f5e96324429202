"""``python -m minitl``: the same command as the ``minitl`` console script."""
import sys

from .cli import main

sys.exit(main())
