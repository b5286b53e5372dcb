"""``python -m retrainer_launcher``: see :mod:`retrainer_launcher.commands`."""

import sys

from retrainer_launcher.commands import main

sys.exit(main())
