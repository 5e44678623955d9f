"""Waybill service runtime."""
