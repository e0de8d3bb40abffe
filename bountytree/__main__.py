import sys

from bountytree.cli import main

sys.exit(main())
