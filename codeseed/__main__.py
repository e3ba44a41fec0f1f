import sys

from codeseed.cli import main

sys.exit(main())
