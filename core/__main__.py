"""``python -m openatc`` is the ``openatc`` command."""

from openatc.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
