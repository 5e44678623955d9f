"""Test helpers for Waybill and for services built on it (a pytest plugin)."""
