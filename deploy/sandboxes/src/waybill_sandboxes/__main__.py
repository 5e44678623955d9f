"""``python -m waybill_sandboxes <sandbox>``: the same as ``waybill sandbox <sandbox>``."""

import sys

from waybill_sandboxes.cli import main

sys.exit(main(sys.argv[1:], prog="python -m waybill_sandboxes"))
