import sys

from graft_hf_cli import main

sys.exit(main())
