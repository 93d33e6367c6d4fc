"""canon: keep Co-op Cloud recipe canonicals current, and prove it."""

from __future__ import annotations

__version__ = "0.1.0"
