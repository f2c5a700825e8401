"""`python -m pilothouse.apps.support`: run the support desk's scripted batch."""

import sys

from .batch import main

sys.exit(main())
