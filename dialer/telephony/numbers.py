"""Turn a stored number into the Request-URI a trunk expects (carriers differ: +E.164, national, prefixes)."""

from __future__ import annotations

import re

import phonenumbers

from dialer.config import TrunkConfig


def format_number(number: str, trunk: TrunkConfig) -> str:
    """E.164 '+81312345678' -> '+81312345678' (e164), '0312345678' (national) or '81312345678' (digits),
    then the trunk's dial_prefix in front. Anything that is not a parseable number is passed through digits-only
    for national/digits so a test number like '1001' still works."""
    fmt = trunk.number_format
    text = number.strip()
    if fmt == "national":
        try:
            parsed = phonenumbers.parse(text, None)
            text = re.sub(r"\D", "", phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))
        except phonenumbers.NumberParseException:
            text = re.sub(r"[^\d*#]", "", text)
    elif fmt == "digits":
        text = re.sub(r"[^\d*#]", "", text)
    else:
        text = re.sub(r"[^\d+*#]", "", text)
    return trunk.dial_prefix + text


def request_uri(number_or_uri: str, trunk: TrunkConfig) -> str:
    """A full SIP URI is dialled as given; a number becomes user@trunk-host (with the trunk's transport)."""
    if number_or_uri.startswith(("sip:", "sips:")):
        return number_or_uri
    user = format_number(number_or_uri, trunk)
    scheme, rest = trunk.proxy.split(":", 1)
    hostpart = rest.split("@")[-1]
    host, _, params = hostpart.partition(";")
    uri = f"{scheme}:{user}@{host}"
    if trunk.transport == "tcp" and "transport=" not in params:
        params = (params + ";" if params else "") + "transport=tcp"
    return uri + (";" + params if params else "")
