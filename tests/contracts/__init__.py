"""Tests of the waybill-contracts package and the `waybill contracts` commands."""
