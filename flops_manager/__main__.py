"""``python -m flops_manager``: run the manager."""

import sys

from flops_manager.server import main

sys.exit(main())
