# PYTHON_ARGCOMPLETE_OK: `python -m study` completes too (argcomplete's global completion)
import sys

from ._cli import main

sys.exit(main())
