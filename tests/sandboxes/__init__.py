"""Tests of the partner sandboxes."""
