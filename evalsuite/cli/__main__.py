"""`python -m evalsuite.cli`: the `evalsuite` command."""

import sys

from evalsuite.cli.main import main

sys.exit(main())
