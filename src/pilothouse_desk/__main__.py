"""`python -m pilothouse_desk`: run the support desk's scripted batch."""

import sys

from .batch import main

sys.exit(main())
