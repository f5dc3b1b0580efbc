"""``python -m convscope``: the same as the ``convscope`` command."""
import sys

from convscope.main import main

sys.exit(main())
