import sys

from critic.cli import main

sys.exit(main())
