"""`python -m waybill_runtime` is the `waybill` command."""

from waybill_runtime.cli import main

main()
