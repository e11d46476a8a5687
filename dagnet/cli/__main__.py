"""`python -m dagnet.cli ...` runs the `dagnet` command."""
import sys

from dagnet.cli.main import main

sys.exit(main())
