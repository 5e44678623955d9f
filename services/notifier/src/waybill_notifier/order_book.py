"""What the notifier remembers per order and per shipment, in KV buckets whose entries expire.

Shipment events carry no customer: who to tell (name, email, language) and
the order's sales channel come from the order released earlier, kept in the
``contacts`` bucket under ``notifier.customer.<order>``. Only what
notifications need is kept (no address, no phone), and only for the
contracts' ``contacts`` TTL: it is personal data. A carrier's tracking page,
known from the booking, is kept in the ``tracking`` bucket under
``notifier.tracking.<shipment>`` for the milestone emails.

Up to contracts 1.0 both lived in the ``workflow`` bucket, which never
expires. An entry still found there is moved to its bucket the first time it
is read, so orders released before the upgrade are still notified.

A shipment's tracking page never changes once booked, so the most recent ones
written or read are also kept in memory: each milestone email of a shipment
handled by the replica that saw its booking costs no read. A contact may
change (a later release of the order, on another replica), so one written or
read here is taken as current for :data:`CONTACT_FRESH_FOR_S` seconds only,
as the endpoint registry does with disabled endpoints: an order's
notifications that come close together (a booking and its milestones in a
burst, a backlog replayed after an outage) read it once, or not at all on the
replica that handled the release, and a re-release handled by another replica
is seen within those seconds. Contacts older than that are dropped from memory
at the next look-up (personal data: kept no longer than needed).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from waybill_contracts import fact_id
from waybill_contracts.events import ReturnRequested
from waybill_contracts.model import Order
from waybill_runtime.recent import Recent

__all__ = ["CONTACT_FRESH_FOR_S", "CustomerContact", "OrderBook", "contact_of", "contact_of_return"]

REMEMBERED_PAGES = 4096
"""How many shipments' tracking pages are kept in memory (oldest forgotten first)."""

CONTACT_FRESH_FOR_S = 5.0
"""How long a contact written or read here is taken as current without reading it again."""

REMEMBERED_CONTACTS = 4096
"""How many orders' contacts are kept in memory at most (each for CONTACT_FRESH_FOR_S)."""

_PLAIN_KEY_TOKEN = re.compile(r"[A-Za-z0-9_=/-]{1,100}")


def key_token(text: str) -> str:
    """``text`` as one KV key token: itself when it can be (readable), else a digest."""
    return text if _PLAIN_KEY_TOKEN.fullmatch(text) else "h" + fact_id(text)


class CustomerContact(msgspec.Struct, frozen=True, kw_only=True):
    """Who to tell about an order, and what the order is called for them."""

    order_ref: str
    order_label: str
    """The name the customer knows the order by (the sale order's, else the picking's)."""
    customer_reference: str | None = None
    name: str
    email: str | None = None
    locale: str | None = None
    channel: str | None = None
    partner_id: int | None = None


def contact_of(order: Order) -> CustomerContact:
    """The part of a released order that notifications need."""
    customer = order.customer
    return CustomerContact(
        order_ref=order.ref,
        order_label=order.sale_order_ref or order.ref,
        customer_reference=order.customer_reference,
        name=customer.name,
        email=(customer.email or "").strip() or None,
        locale=customer.locale,
        channel=order.channel,
        partner_id=customer.odoo_partner_id,
    )


def contact_of_return(event: ReturnRequested) -> CustomerContact:
    """Who asked for a return, for when the order's release is no longer remembered."""
    customer = event.customer
    return CustomerContact(
        order_ref=event.order_ref,
        order_label=event.order_ref,
        name=customer.name,
        email=(customer.email or "").strip() or None,
        locale=customer.locale,
        partner_id=customer.odoo_partner_id,
    )


class _TrackingPage(msgspec.Struct, frozen=True):
    url: str


class OrderBook:
    """Customer contacts per order and tracking pages per shipment."""

    def __init__(
        self,
        *,
        contacts: KeyValue,
        tracking: KeyValue,
        legacy: KeyValue | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._contacts = contacts
        self._tracking = tracking
        self._legacy = legacy
        self._encode = msgspec.json.Encoder().encode
        self._decode_contact = msgspec.json.Decoder(CustomerContact).decode
        self._decode_page = msgspec.json.Decoder(_TrackingPage).decode
        self._pages: Recent[str, str] = Recent(REMEMBERED_PAGES)
        # By order ref: the contacts written or read here, current for a while.
        self._fresh: Recent[str, CustomerContact] = Recent(
            REMEMBERED_CONTACTS, max_age_s=CONTACT_FRESH_FOR_S, clock=clock
        )

    async def remember(self, contact: CustomerContact) -> None:
        """Keep (or refresh) an order's contact; the last release of an order wins."""
        await self._contacts.put(_contact_key(contact.order_ref), self._encode(contact))
        self._keep(contact)

    async def remember_if_unknown(self, contact: CustomerContact) -> None:
        """Keep a contact only where the order's own release left none (it says more)."""
        with contextlib.suppress(KeyWrongLastSequenceError):  # known already
            await self._contacts.create(_contact_key(contact.order_ref), self._encode(contact))
            self._keep(contact)

    async def contact(self, order_ref: str) -> CustomerContact | None:
        """The contact of an order, or None while its release has not been seen."""
        fresh = self._fresh.get(order_ref)
        if fresh is not None:
            return fresh
        value = await self._get(self._contacts, _contact_key(order_ref))
        if value is None:
            return None  # not kept: the release may be seen any moment
        contact: CustomerContact = self._decode_contact(value)
        self._keep(contact)
        return contact

    def _keep(self, contact: CustomerContact) -> None:
        self._fresh.put(contact.order_ref, contact)

    async def remember_tracking_page(self, shipment_id: str, url: str) -> None:
        if self._pages.get(shipment_id) == url:
            return  # a redelivered booking: written already
        await self._tracking.put(_tracking_key(shipment_id), self._encode(_TrackingPage(url)))
        self._pages.put(shipment_id, url)

    async def tracking_page(self, shipment_id: str) -> str | None:
        known = self._pages.get(shipment_id)
        if known is not None:
            return known
        value = await self._get(self._tracking, _tracking_key(shipment_id))
        if value is None:
            return None
        return self._pages.put(shipment_id, self._decode_page(value).url)

    async def _get(self, kv: KeyValue, key: str) -> bytes | None:
        value = await _value(kv, key)
        if value is None and self._legacy is not None:
            value = await _value(self._legacy, key)
            if value is not None:
                # Moved, not copied: what is left in the old bucket would never expire.
                await kv.put(key, value)
                await self._legacy.delete(key)
        return value


async def _value(kv: KeyValue, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry.value or None


def _contact_key(order_ref: str) -> str:
    return f"notifier.customer.{key_token(order_ref)}"


def _tracking_key(shipment_id: str) -> str:
    return f"notifier.tracking.{key_token(shipment_id)}"
