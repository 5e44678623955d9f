"""Label files: small fake PDF and ZPL documents that carry the tracking number."""

from __future__ import annotations

import enum

__all__ = ["LabelFormat", "fake_label"]


class LabelFormat(enum.StrEnum):
    PDF = "PDF"
    ZPL = "ZPL"

    @property
    def content_type(self) -> str:
        return "application/pdf" if self is LabelFormat.PDF else "application/zpl"


def fake_label(tracking_number: str, label_format: LabelFormat, carrier: str) -> bytes:
    """A tiny document in the requested format, readable enough to eyeball in a test."""
    if label_format is LabelFormat.ZPL:
        return (
            "^XA^CF0,40^FO40,40^FD" + carrier + "^FS"
            "^BY3^FO40,120^BCN,120,Y,N,N^FD" + tracking_number + "^FS^XZ"
        ).encode()
    text = f"({carrier} {tracking_number}) Tj"
    stream = f"BT /F1 18 Tf 36 300 Td {text} ET"
    return (
        "%PDF-1.4\n"
        "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        "2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] /Contents 4 0 R >> endobj\n"
        f"4 0 obj << /Length {len(stream)} >> stream\n{stream}\nendstream endobj\n"
        "trailer << /Root 1 0 R >>\n%%EOF\n"
    ).encode()
