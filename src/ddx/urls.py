"""Target URLs: parse them and show them without their passwords."""

from __future__ import annotations

import re

__all__ = ["mask_url"]

_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@")


def mask_url(url: str) -> str:
    """``url`` with the password of its user-info replaced by ``***``
    (``redis://:s3cret@h:6379`` -> ``redis://:***@h:6379``)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url, count=1)
