"""Tests of the Odoo sandbox."""
