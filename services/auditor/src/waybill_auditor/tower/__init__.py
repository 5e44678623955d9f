"""The control tower: the auditor's web pages for operations staff.

Server-rendered HTML (Jinja2), one stylesheet and one small script, live
updates by server-sent events. What a page shows comes from the audit trail
and is masked exactly as the JSON API masks it (:mod:`waybill_auditor.views`).
Operators act from the pages (:mod:`waybill_auditor.tower.actions`); every
action is a command on the bus.
"""
