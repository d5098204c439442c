"""(issue 29) The `listen` command's argument: one written form for the service and the runner."""

from __future__ import annotations

import pytest

from dialer.domain.listen import ListenOrder, check_uri, parse_listen
from dialer.domain.vocabulary import ListenMode
from dialer.errors import UserError


def test_the_argument_round_trips() -> None:
    order = ListenOrder(ListenMode.WHISPER, 42, "sip:sv01@192.0.2.10:5060", "佐藤")
    assert parse_listen(order.argument()) == order


@pytest.mark.parametrize("arg", ["shout 1 sip:a@b x", "listen x sip:a@b x", "listen 1 tel:0312345678 x",
                                 "listen 1 sip:a@b", "listen 1 http://a@b x"])
def test_a_bad_argument_is_refused_with_what_was_wrong(arg: str) -> None:
    with pytest.raises(UserError):
        parse_listen(arg)


def test_a_phone_is_a_sip_uri_without_spaces() -> None:
    assert check_uri("  sip:sv01@127.0.0.1:5999 ") == "sip:sv01@127.0.0.1:5999"
    for bad in ("sip:sv01", "sv01@127.0.0.1", "sip:sv 01@127.0.0.1"):
        with pytest.raises(UserError):
            check_uri(bad)
