"""Where probes read evidence: the live machine, a recording of it, a saved bundle.

- ``base``: the Host contract (``Host``, ``CommandResult``, ``StatResult``,
  ``VfsResult``) and the ``live`` capability;
- ``calls``: the calling context (which probe, until when) and abandonable calls;
- ``live``: ``LiveHost``, the running machine, every call time-boxed;
- ``recording``: ``RecordingHost``, which records every call to save a bundle;
- ``ssh``: ``SshHost``, a remote machine over one SSH session (imported on demand:
  ``from ddx.host.ssh import SshHost``); ``sshagent``, what it runs there;
- ``bundle``: the bundle format, ``BundleHost`` (replay) and ``build_bundle``;
- ``redact``: secrets out of text, command lines and output.
"""

from __future__ import annotations

from ddx.host.base import (
    CommandResult,
    Host,
    StatResult,
    VfsResult,
    is_live,
    offline_reason,
)
from ddx.host.bundle import BUNDLE_FORMAT, BundleHost, build_bundle
from ddx.host.calls import call_timeout, current_probe, parallel_map, probe_scope
from ddx.host.live import LiveHost
from ddx.host.recording import RecordingHost
from ddx.host.redact import redact_cmdline, redact_output, redact_text

__all__ = [
    "BUNDLE_FORMAT",
    "BundleHost",
    "CommandResult",
    "Host",
    "LiveHost",
    "RecordingHost",
    "StatResult",
    "VfsResult",
    "build_bundle",
    "call_timeout",
    "current_probe",
    "is_live",
    "offline_reason",
    "parallel_map",
    "probe_scope",
    "redact_cmdline",
    "redact_output",
    "redact_text",
]
