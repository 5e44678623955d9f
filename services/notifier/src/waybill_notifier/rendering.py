"""Customer emails from templates: a subject line, a text body and an HTML body.

Templates are package data (``templates/<language>/<kind>.txt|.html``, plain
:class:`string.Template` with ``$name`` placeholders), so an operator can
read and change them without reading code. Optional lines (the tracking
link, where the parcel was last seen, the carrier's note) are small
fragments of their own, left out when there is nothing to say. Every value is
HTML-escaped before it goes into an HTML template.

Languages: subject lines exist for every language in ``subjects.json``;
bodies for every language folder, English otherwise. A customer's locale
``nl_NL`` tries ``nl_NL``, then ``nl``, then ``en``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache, lru_cache
from importlib import resources
from string import Template
from urllib.parse import urlsplit

import msgspec

from waybill_notifier.notifications import Notification, NotificationKind
from waybill_notifier.order_book import CustomerContact

__all__ = ["FALLBACK_LANGUAGE", "RenderedEmail", "language_candidates", "render_email"]

FALLBACK_LANGUAGE = "en"
_TEMPLATES = resources.files("waybill_notifier") / "templates"


class RenderedEmail(msgspec.Struct, frozen=True, kw_only=True):
    """An email ready to be put in an envelope."""

    subject: str
    text: str
    html: str
    language: str
    """The language of the subject line."""


def language_candidates(locale: str | None) -> list[str]:
    """``nl_NL`` → ``["nl_NL", "nl", "en"]``; unknown or absent → ``["en"]``."""
    found: list[str] = []
    if locale:
        normal = locale.strip().replace("-", "_")
        language = normal.split("_", 1)[0].lower()
        for candidate in (normal, language):
            if candidate and candidate not in found:
                found.append(candidate)
    if FALLBACK_LANGUAGE not in found:
        found.append(FALLBACK_LANGUAGE)
    return found


@cache
def _subjects() -> Mapping[str, Mapping[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(
        (_TEMPLATES / "subjects.json").read_text(encoding="utf-8")
    )
    return loaded


def _format_string(template: Template) -> str:
    """``template`` as a :meth:`str.format_map` string: the same text, each placeholder a field.

    Templates stay :class:`string.Template` files for whoever edits them;
    rendering them this way fills every placeholder in C instead of calling
    back into Python for each one, as :meth:`Template.substitute` does (a
    missing value raises KeyError all the same).
    """
    text = template.template
    parts: list[str] = []
    done = 0
    for match in template.pattern.finditer(text):
        parts.append(text[done : match.start()].replace("{", "{{").replace("}", "}}"))
        name = match.group("named") or match.group("braced")
        if name is not None:
            parts.append("{" + name + "}")
        elif match.group("escaped") is not None:
            parts.append("$")
        else:  # what substitute raises for it
            raise ValueError(f"invalid placeholder in template at character {match.start()}")
        done = match.end()
    parts.append(text[done:].replace("{", "{{").replace("}", "}}"))
    return "".join(parts)


@cache
def _template(language: str, name: str) -> str | None:
    resource = _TEMPLATES / language / name
    if not resource.is_file():
        return None
    return _format_string(Template(resource.read_text(encoding="utf-8")))


# Bounded: the locale comes from the customer's Odoo record.
@lru_cache(maxsize=256)
def _languages(locale: str | None) -> tuple[str, ...]:
    return tuple(language_candidates(locale))


@lru_cache(maxsize=1024)
def _body_template(languages: tuple[str, ...], name: str) -> tuple[str, str]:
    for language in languages:
        template = _template(language, name)
        if template is not None:
            return language, template
    raise LookupError(f"no template {name} for {languages}")  # en always exists


@lru_cache(maxsize=256)
def _subject(languages: tuple[str, ...], kind: NotificationKind) -> tuple[str, str]:
    subjects = _subjects()
    language = next((lang for lang in languages if lang in subjects), FALLBACK_LANGUAGE)
    return language, _format_string(Template(subjects[language][kind.value]))


def _safe_link(url: str | None) -> str | None:
    # Only web pages become links: a carrier's "javascript:" URL would not.
    if url and urlsplit(url).scheme in ("http", "https"):
        return url
    return None


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _values(notification: Notification, contact: CustomerContact) -> dict[str, str]:
    milestone = notification.milestone
    return {
        "customer_name": contact.name,
        "order": contact.order_label,
        "carrier": notification.carrier,
        "tracking_number": notification.tracking_number,
        "tracking_url": _safe_link(notification.tracking_url) or "",
        "occurred_at": _when(notification.occurred_at),
        "location": (milestone.location or "") if milestone else "",
        "description": (milestone.description or "") if milestone else "",
        "label_url": _safe_link(notification.label_url) or notification.label_url or "",
        "credit_note": notification.credit_note or "",
        "credited": notification.credited or "",
    }


# Fragment placeholder -> the value that decides whether the fragment shows, and its file.
_FRAGMENTS = {
    suffix: tuple(
        (fragment, needs, f"{fragment}.{suffix}")
        for fragment, needs in (
            ("tracking", "tracking_url"),
            ("location", "location"),
            ("note", "description"),
        )
    )
    for suffix in ("txt", "html")
}


def _render(
    languages: tuple[str, ...], kind: NotificationKind, suffix: str, values: Mapping[str, str]
) -> str:
    if suffix == "html":
        safe = {name: html.escape(value) for name, value in values.items()}
    else:
        safe = dict(values)
    for fragment, needs, name in _FRAGMENTS[suffix]:
        safe[fragment] = (
            _body_template(languages, name)[1].format_map(safe) if values[needs] else ""
        )
    return _body_template(languages, f"{kind.value}.{suffix}")[1].format_map(safe)


def render_email(notification: Notification, contact: CustomerContact) -> RenderedEmail:
    """The subject, text and HTML of ``notification`` for the customer ``contact``."""
    languages = _languages(contact.locale)
    values = _values(notification, contact)
    language, subject_format = _subject(languages, notification.kind)
    subject = subject_format.format_map(values)
    text = _render(languages, notification.kind, "txt", values)
    content = _render(languages, notification.kind, "html", values)
    layout_language, layout = _body_template(languages, "layout.html")
    page = layout.format_map(
        {"lang": html.escape(layout_language), "subject": html.escape(subject), "content": content}
    )
    return RenderedEmail(subject=subject, text=text, html=page, language=language)
