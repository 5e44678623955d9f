"""Waybill message contracts."""
