"""What Waybill is deployed with, generated from the service declarations.

:mod:`.chart_values` turns each declaration into the part of its Helm chart's
values that must follow the code (port, partners, secrets, durables),
:mod:`.chart_schema` into the chart's ``values.schema.json``, and
:mod:`.charts` writes and checks the files under ``helm/`` (`waybill helm values`).
"""

from waybill_runtime.deploy.chart_values import DeclaredValues, declared_values
from waybill_runtime.deploy.charts import ChartFile, chart_files, stale_chart_files

__all__ = [
    "ChartFile",
    "DeclaredValues",
    "chart_files",
    "declared_values",
    "stale_chart_files",
]
