import sys

from m5ops.cli.main import main

sys.exit(main())
