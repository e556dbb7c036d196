import sys

from parley.appliance.cli import main

sys.exit(main())
