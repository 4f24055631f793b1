"""``python -m metaspin_snn.cli`` = the ``metaspin`` command."""
from . import main

raise SystemExit(main())
