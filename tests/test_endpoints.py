"""Customer data and tokens go over https only (issue 28): the config refuses plain http, except to a loopback
test receiver when the section says so, and an allow-list pins the hosts."""

from __future__ import annotations

import pytest

from dialer.config import ConfigError, parse_config
from dialer.endpoints import InsecureEndpoint, check_endpoint


@pytest.mark.parametrize("section,key", [("outcomes", "webhook_url"), ("sms", "endpoint")])
@pytest.mark.parametrize("url,extra,ok", [
    ("https://crm.example.jp/hook", "", True),
    ("http://crm.example.jp/hook", "", False),
    ("http://crm.example.jp/hook", "allow_insecure_loopback = true\n", False),  # only loopback may be http
    ("http://127.0.0.1:8080/hook", "", False),
    ("http://127.0.0.1:8080/hook", "allow_insecure_loopback = true\n", True),
    ("http://localhost/hook", "allow_insecure_loopback = true\n", True),
    ("https://crm.example.jp/hook", 'allowed_hosts = ["crm.example.jp"]\n', True),
    ("https://evil.example.com/hook", 'allowed_hosts = ["crm.example.jp"]\n', False),
    ("https://CRM.Example.JP/hook", 'allowed_hosts = ["crm.example.jp"]\n', True),
])
def test_config_allows_only_https_or_explicit_loopback(section: str, key: str, url: str, extra: str,
                                                       ok: bool) -> None:
    text = f'[{section}]\n{key} = "{url}"\n{extra}'
    if ok:
        parse_config(text)
    else:
        with pytest.raises(ConfigError) as e:
            parse_config(text)
        assert key in str(e.value) and section in str(e.value)


def test_status_url_is_held_to_the_same_rule() -> None:
    with pytest.raises(ConfigError, match="status_url"):
        parse_config('[sms]\nendpoint = "https://sms.example.jp/v1"\n'
                     'status_url = "http://sms.example.jp/v1/{key}"\n')


@pytest.mark.parametrize("url", ["ftp://x.example/a", "file:///etc/passwd", "http:///nohost", "gopher://a"])
def test_other_schemes_and_hostless_urls_are_refused(url: str) -> None:
    with pytest.raises(InsecureEndpoint):
        check_endpoint(url, allow_insecure_loopback=True)
