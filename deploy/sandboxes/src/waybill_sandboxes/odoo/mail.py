"""Chatter, activities, the user context and external ids.

``message_post`` and ``activity_schedule`` are what an integration uses to
leave a trace on an order or picking for the people working in Odoo.
``context_get`` and ``check_object_reference`` are what odoorpc calls at
login and for ``env.ref``.
"""

from __future__ import annotations

import html
import re
from datetime import date
from typing import Any

from waybill_sandboxes.odoo.env import Records, xmlid_to_record
from waybill_sandboxes.odoo.exceptions import value_error


def message_post(
    self: Records,
    *,
    body: str = "",
    subject: str | None = None,
    message_type: str = "notification",
    subtype_xmlid: str | None = None,
    subtype_id: int | bool = False,
    partner_ids: list[int] | None = None,
    author_id: int | bool = False,
    body_is_html: bool | None = None,
    **kwargs: Any,
) -> int:
    """Post a message in the record's chatter; returns the new ``mail.message`` id.

    Keyword arguments only, as in Odoo. Without a subtype it is an internal note.
    """
    record_id = self.ensure_one()
    registry = self.env.registry
    registry.ensure_exist(self.model, [record_id], self.env.uid)
    if not registry.version.escapes_plain_bodies:
        if body_is_html is not None:
            # 16.0 has no such parameter: extra keywords end up as mail.message values.
            raise value_error("Invalid field 'body_is_html' on model 'mail.message'")
    elif not body_is_html:
        # 17.0+ addons/mail/models/mail_thread.py: a str body is escaped unless
        # body_is_html=True (RPC cannot send Markup), so tags show as text.
        body = html.escape(body)
    body = sanitize_html(body)
    if not subtype_id:
        _model, subtype_id = xmlid_to_record(registry, subtype_xmlid or "mail.mt_note")
    if not author_id:
        author_id = registry.value("res.users", self.env.uid, "partner_id")
    [message_id] = registry.create(
        "mail.message",
        [
            {
                "model": self.model,
                "res_id": record_id,
                "body": body,
                "subject": subject or False,
                "message_type": message_type,
                "subtype_id": subtype_id,
                "author_id": author_id,
                "partner_ids": [(6, 0, list(partner_ids or []))],
                "date": registry.now(),
            }
        ],
        uid=self.env.uid,
    )
    return message_id


_QUOTE_ENTITIES = re.compile(r"&(quot|#34|#x22|#39|#x27|apos);")
_TAG_OR_TEXT = re.compile(r"(<[^>]*>)")


def sanitize_html(body: str) -> str:
    """What odoo/tools/mail.py ``html_sanitize`` (lxml) does to entities in text: quotes
    are written as plain characters, ``& < >`` stay escaped (tags are left alone)."""
    parts = _TAG_OR_TEXT.split(body)
    return "".join(
        part if part.startswith("<") else _QUOTE_ENTITIES.sub(
            lambda m: '"' if m.group(1) in ("quot", "#34", "#x22") else "'", part)
        for part in parts
    )  # fmt: skip


def activity_schedule(
    self: Records,
    act_type_xmlid: str = "",
    date_deadline: str | None = None,
    summary: str = "",
    note: str = "",
    **act_values: Any,
) -> Records:
    """Schedule an activity (a to-do) on each record; returns the activity id(s).

    ``user_id`` in ``act_values`` assigns it (default: the caller). An unknown
    activity type falls back to To-Do, as Odoo does.
    """
    registry = self.env.registry
    registry.ensure_exist(self.model, list(self.ids), self.env.uid)
    activity_type: int | bool = False
    if act_type_xmlid:
        try:
            _model, activity_type = xmlid_to_record(registry, act_type_xmlid)
        except Exception:
            activity_type = False
    if not activity_type:
        _model, activity_type = xmlid_to_record(registry, "mail.mail_activity_data_todo")
    unknown = set(act_values) - {"user_id", "activity_type_id"}
    if unknown:
        raise value_error(f"Invalid field {sorted(unknown)[0]!r} on model 'mail.activity'")
    deadline = date_deadline or registry.today()
    if isinstance(deadline, date):
        deadline = deadline.isoformat()
    ids = registry.create(
        "mail.activity",
        [
            {
                "res_model": self.model,
                "res_id": record_id,
                "activity_type_id": act_values.get("activity_type_id") or activity_type,
                "summary": summary,
                "note": note,
                "date_deadline": deadline,
                "user_id": act_values.get("user_id") or self.env.uid,
            }
            for record_id in self.ids
        ],
        uid=self.env.uid,
    )
    # A recordset, as Odoo returns; the RPC layer decides how it travels (methods.py).
    return Records(self.env, "mail.activity", tuple(ids))


def context_get(self: Records) -> dict[str, Any]:
    """``res.users.context_get``: the caller's language, timezone and uid."""
    registry = self.env.registry
    return {
        "lang": registry.value("res.users", self.env.uid, "lang") or "en_US",
        "tz": registry.value("res.users", self.env.uid, "tz") or False,
        "uid": self.env.uid,
    }


def check_object_reference(
    self: Records, module: str, xml_id: str, raise_on_access_error: bool = False
) -> list[Any]:
    """``ir.model.data.check_object_reference``: ``[model, res_id]`` of an external id."""
    model, res_id = xmlid_to_record(self.env.registry, f"{module}.{xml_id}")
    return [model, res_id]
