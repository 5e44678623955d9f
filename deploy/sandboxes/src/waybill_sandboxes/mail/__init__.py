"""Mail and webhook sinks: where Waybill's notifier sends customer notifications."""

from waybill_sandboxes.mail.receiver import Delivery, WebhookReceiver, new_secret
from waybill_sandboxes.mail.sandbox import MailSandbox
from waybill_sandboxes.mail.smtp import CapturedMail, SmtpMode, SmtpSink

__all__ = [
    "CapturedMail",
    "Delivery",
    "MailSandbox",
    "SmtpMode",
    "SmtpSink",
    "WebhookReceiver",
    "new_secret",
]
