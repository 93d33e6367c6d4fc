from __future__ import annotations

import sys

from canonlib.cli.main import main

sys.exit(main())
