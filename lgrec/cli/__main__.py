"""``python -m lgrec.cli``: the ``lgrec`` command."""

import sys

from . import main

sys.exit(main())
