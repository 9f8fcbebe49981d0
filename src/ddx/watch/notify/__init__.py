"""Notifications: an incident opened, its leading cause changed, it resolved.

Three channels, each a ``[notify.*]`` table of ddx.toml (``notify_settings``):

- ``[notify.webhook]``: a JSON POST to ``url`` (docs/schema/notification.schema.json);
- ``[notify.slack]``: an incoming webhook (``webhook_url``: one message per
  event), or a bot ``token`` and ``channel``: ``chat.postMessage`` for the
  incident's first message and ``chat.update`` of that same message afterwards,
  so that one incident is one Slack message, edited in place;
- ``[notify.email]``: a plain-text mail through an SMTP relay (STARTTLS by
  default, login when ``user`` is set, the password read from ``password_file``).

Every channel also takes ``timeout`` (seconds per attempt, default 5),
``min_interval`` (seconds between two messages of the channel, default 10) and
``retries`` (attempts in all, default 4).

``Notifier.send`` never blocks its caller (the incident book, under its lock):
it builds the message and puts it on a queue. One daemon thread delivers: per
channel one message at a time, oldest incident first; a 5xx, a 429, a timeout
or a connection error is tried again after 1 s, 2 s, 4 s... (capped), a 4xx is
not. Another channel's message waits at most one attempt (``timeout``) of a
channel that hangs: a failed attempt's retry is scheduled, not slept on. When
messages of one incident pile up while a channel waits (its ``min_interval``,
a retry), only the incident's latest is sent, so a burst never floods a
channel. Each outcome goes to ``record(incident_id, channel, kind, status,
detail, ref)``, status "sent" or "failed"; ``ref`` is the Slack message's ts
(``CHANNEL:ts`` when Slack answered with another channel id than the one
configured, a ``#name``), which ``refs(incident_id, channel)`` gives back after
a restart so that the daemon keeps editing the same message.

Secrets (the Slack token, the webhook URLs, the SMTP password) appear in no
error, log line, recorded detail or ``repr``. Text from the host (titles,
evidence, commands) is untrusted: control characters are escaped, and Slack's
``&``, ``<``, ``>`` are written as entities (no mention, no link).
"""

from ddx.watch.notify.channels import (
    Channel,
    DeliveryError,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
)
from ddx.watch.notify.message import KINDS, NOTIFICATION_VERSION, Message, build_message
from ddx.watch.notify.settings import notify_settings
from ddx.watch.notify.worker import Notifier, build_notifier

__all__ = [
    "KINDS",
    "NOTIFICATION_VERSION",
    "Channel",
    "DeliveryError",
    "EmailChannel",
    "Message",
    "Notifier",
    "SlackChannel",
    "WebhookChannel",
    "build_message",
    "build_notifier",
    "notify_settings",
]
