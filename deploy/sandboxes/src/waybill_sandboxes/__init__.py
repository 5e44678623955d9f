"""Partner sandboxes for Waybill."""
