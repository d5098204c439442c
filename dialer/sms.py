"""SMS payment links for small unpaid amounts: queue through the hopper, send through a gateway's HTTP API.

Who may be messaged is decided by the same code as who may be called: entries of the campaign's `unpaid`
segment are leased from the hopper (consent, DNC, refusals, hold-out control, calling hours and holidays),
and each message is re-checked with `Hopper.contact_refusal` (dialer.store.entries) right before it leaves, so a refusal recorded
after queueing still stops it. Each message is queued once (dialer.store.sms: unique per campaign and
entry, written in the transaction that closes the entry), carries an idempotency key that never changes,
and is retried with exponential backoff while the gateway is down; the gateway drops a repeated key, so a
send whose answer was lost (timeout, kill -9) is never delivered twice by such a gateway. A gateway that ignores
the key must not double-text either (issue 26): every message is claimed in the store before it is posted (one
sender per message across processes and hosts), and a failure after the request may have left makes it
`unknown`, settled by the gateway's status API (`[sms] status_url`) or an operator (`dialer sms resolve`),
never by posting it again blindly. Delivery receipts are polled.

Gateway API (`provider = "generic"`): POST ENDPOINT with JSON {to, from, text, reference} and headers
`Authorization: Bearer TOKEN`, `Idempotency-Key`; 2xx {"id": ...} = accepted, 409 = that key was accepted
before (body may carry its id); 429/5xx/transport errors are retried, other 4xx are dead. GET ENDPOINT/ID
returns {"status": "delivered" | "failed" | ...}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import phonenumbers

from dialer.config import CampaignConfig, Config
from dialer.privacy import mask_phone, mask_text
from dialer.store import Engine
from dialer.store import sms as store
from dialer.store.entries import Hopper
from dialer.store.sms import Recipient, SmsStatus

_NS = uuid.UUID("3b0f5a8e-2c61-4f7d-9e0a-736d736c696e")
FINAL_RECEIPTS = ("delivered", "failed", "undeliverable", "expired", "rejected")


class SmsError(Exception):
    """A send that cannot start (no endpoint, no token, no link secret, a template too long)."""


def message_key(campaign: str, r: Recipient) -> str:
    """Stable per (campaign, entry, customer): the idempotency key the gateway deduplicates on."""
    return str(uuid.uuid5(_NS, f"sms|{campaign}|{r.entry_id}|{r.customer_id}"))


def is_mobile(e164: str) -> bool:
    try:
        n = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(n) in (phonenumbers.PhoneNumberType.MOBILE,
                                           phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def payment_link(cfg: Config, r: Recipient) -> str:
    """A link the payment page can verify: HMAC of customer, orders and amount with a secret from the env."""
    secret = cfg.sms.link_secret()
    if not secret:
        raise SmsError(f"[sms] link_secret_env: environment variable {cfg.sms.link_secret_env} is not set "
                       "(the secret that signs payment links)")
    mac = hmac.new(secret.encode(), f"{r.customer_id}|{r.order_ids}|{round(r.amount)}".encode(), hashlib.sha256)
    token = base64.urlsafe_b64encode(mac.digest()[:16]).decode().rstrip("=")
    return cfg.sms.payment_url.format(token=token, customer_id=r.customer_id)


def render(cfg: Config, r: Recipient, link: str) -> str:
    """The message from `[sms] template`; names the business and its number (sender identification)."""
    return cfg.sms.template.format(business=cfg.business.name, phone=cfg.business.phone, name=r.name or "お客",
                                   amount=f"{round(r.amount):,}", link=link)


@dataclass
class SmsResult:
    queued: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    duplicates: int = 0  # the gateway already had the key (an earlier answer was lost)
    blocked: int = 0
    postponed: int = 0
    failed_tries: int = 0
    dead: int = 0
    claimed_elsewhere: int = 0  # due, but another sender claimed it first
    unknown_new: int = 0  # ambiguous failures this run (not posted again)
    resolved_sent: int = 0  # unknown -> sent by the status API
    resolved_not_sent: int = 0  # unknown -> pending by the status API
    unknown: int = 0  # still unknown at the end: an operator must settle them (`dialer sms resolve`)
    receipts: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)
    preview: list[dict[str, str]] = field(default_factory=list)


def _phone_for(r: Recipient, leased: str) -> str:
    if is_mobile(leased):
        return leased
    return next((p for p in r.phones if is_mobile(p)), "")


def queue(cfg: Config, hopper: Hopper, campaign: CampaignConfig, now: datetime, res: SmsResult,
          *, dry_run: bool = False, limit: int = 5000) -> None:
    """Lease the campaign's due unpaid entries and queue one message each (dry run: only say what would go)."""
    engine = hopper.engine
    if dry_run:
        items = hopper.preview(now, limit=limit)
        recs = {r.entry_id: r for r in store.recipients(engine, [i.entry_id for i in items])}
        for it in items:
            r = recs.get(it.entry_id)
            phone = _phone_for(r, it.phone_e164) if r else ""
            if r is None or not phone:
                res.skipped["no balance" if r is None else "no mobile number"] = res.skipped.get(
                    "no balance" if r is None else "no mobile number", 0) + 1
                continue
            res.preview.append({"customer_id": r.customer_id, "phone": mask_phone(phone),
                                "amount": f"{round(r.amount)}", "text": render(cfg, r, "<link>")})
        return
    owner = f"sms:{campaign.name}"
    while res.queued + sum(res.skipped.values()) < limit:
        leases = hopper.lease(min(200, limit), owner, now, lease_s=600)
        if not leases:
            break
        recs = {r.entry_id: r for r in store.recipients(engine, [x.entry_id for x in leases])}
        for lease in leases:
            r = recs.get(lease.entry_id)
            if r is None:
                store.park_entry(engine, lease.entry_id, lease.lease_token, "withdrawn", "no unpaid balance recorded", now)
                res.skipped["no balance"] = res.skipped.get("no balance", 0) + 1
                continue
            phone = _phone_for(r, lease.phone_e164)
            if not phone:
                store.park_entry(engine, lease.entry_id, lease.lease_token, "exhausted", "no mobile number for SMS", now)
                res.skipped["no mobile number"] = res.skipped.get("no mobile number", 0) + 1
                continue
            text = render(cfg, r, payment_link(cfg, r))
            if len(text) > cfg.sms.max_chars:
                raise SmsError(f"[sms] template: message for {r.customer_id} is {len(text)} characters "
                               f"(max_chars {cfg.sms.max_chars})")
            if store.queue_message(engine, campaign.name, r, phone, text, message_key(campaign.name, r),
                                   lease.lease_token, now):
                res.queued += 1


def _backoff(cfg: Config, tries: int) -> float:
    return float(min(cfg.sms.retry_max_s, cfg.sms.retry_base_s * (2 ** max(0, tries - 1))))


def _provider_id(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return ""
    return str(body.get("id", "")) if isinstance(body, dict) else ""


def claim_seconds(cfg: Config) -> float:
    """How long a claim holds: longer than a send can take (rate wait, connect, write, read: each up to
    timeout_s), so a live sender never loses its message; a dead one's message becomes `unknown` after it."""
    return 1.0 / cfg.sms.rate_per_s + 4 * cfg.sms.timeout_s + 2.0


# httpx errors raised before any byte of the request left: the gateway cannot have the message, it may go again
_BEFORE_SENDING = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def send_pass(cfg: Config, hopper: Hopper, campaign: str, client: httpx.Client, res: SmsResult,
              clock: Callable[[], datetime], sleep: Callable[[float], None], batch: int = 100) -> None:
    """Send every due message at most once (rate-limited); the gateway down or refusing ends the pass.

    Each message is claimed first (store.claim: one sender wins across processes and hosts). The answer decides:
    2xx/409 sent; 429 or an error before the request left (connection refused) back to pending with a backoff;
    another 4xx dead; a 5xx, a timeout or a connection cut after the request left `unknown` -- the gateway may
    have texted the customer, so it is not posted again until `resolve_pass` or an operator settles it.
    """
    engine = hopper.engine
    token = cfg.sms.token()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    gap = 1.0 / cfg.sms.rate_per_s
    last = 0.0
    owner = f"{socket.gethostname()}:{os.getpid()}"
    for m in store.due_messages(engine, campaign, clock(), batch):
        now = clock()
        claim = store.claim(engine, m.id, owner, now, now + timedelta(seconds=claim_seconds(cfg)))
        if claim is None:
            res.claimed_elsewhere += 1  # another sender has it
            continue
        refusal = hopper.contact_refusal(m.entry_id, m.phone_e164, now)
        if refusal is not None:
            why, retry_at = refusal
            if retry_at is not None:
                store.settle(engine, m.id, claim, status=SmsStatus.PENDING.value, tries=m.tries,
                             next_try_at=retry_at, last_error=why[:500])
                res.postponed += 1
            else:
                store.settle(engine, m.id, claim, status=SmsStatus.BLOCKED.value, tries=m.tries, last_error=why[:500])
                res.blocked += 1
            continue
        wait = last + gap - time.monotonic()
        if wait > 0:
            sleep(wait)
        last = time.monotonic()
        tries = m.tries + 1
        error, state, down = "", SmsStatus.UNKNOWN, False
        try:
            r = client.post(cfg.sms.endpoint, json={"to": m.phone_e164, "from": cfg.sms.sender_id, "text": m.text,
                                                    "reference": m.idempotency_key},
                            headers={**headers, "Idempotency-Key": m.idempotency_key})
            if 200 <= r.status_code < 300 or r.status_code == 409:
                store.settle(engine, m.id, claim, status=SmsStatus.SENT.value, sent_at=datetime.now(UTC),
                             last_error="", provider_id=_provider_id(r))
                res.sent += 1
                res.duplicates += r.status_code == 409
                continue
            error = f"HTTP {r.status_code}: {mask_text(r.text[:200])}"
            if r.status_code == 429:  # rate limited: not taken; stop this pass, come back after the backoff
                state, down = SmsStatus.PENDING, True
            elif 400 <= r.status_code < 500 and r.status_code not in (408, 425):
                state = SmsStatus.DEAD
            else:  # 5xx, 408, 425: the gateway may have processed it before failing
                state, down = SmsStatus.UNKNOWN, True
        except _BEFORE_SENDING as exc:
            error, state, down = f"{type(exc).__name__}: {mask_text(str(exc))}", SmsStatus.PENDING, True
        except httpx.HTTPError as exc:  # timeout, connection cut after the request left: ambiguous
            error, state, down = f"{type(exc).__name__}: {mask_text(str(exc))}", SmsStatus.UNKNOWN, True
        res.failed_tries += 1
        if error not in res.errors:
            res.errors.append(error)
        if state == SmsStatus.PENDING and tries >= cfg.sms.max_tries:
            state = SmsStatus.DEAD
        if state == SmsStatus.PENDING:
            store.settle(engine, m.id, claim, status=state.value, last_error=error[:500],
                         next_try_at=now + timedelta(seconds=_backoff(cfg, tries)))
        else:
            store.settle(engine, m.id, claim, status=state.value, last_error=error[:500])
            if state == SmsStatus.DEAD:
                res.dead += 1
            else:
                res.unknown_new += 1
        if down:
            return


def resolve_pass(cfg: Config, engine: Engine, campaign: str, client: httpx.Client, res: SmsResult,
                 now: datetime) -> None:
    """Settle `unknown` messages: claims of dead senders first, then the gateway's status API (`status_url`)
    says whether it has each one (200: sent, never post again) or never got it (404: pending, it may go)."""
    store.expire_claims(engine, campaign, now)
    if not cfg.sms.status_url:
        return
    token = cfg.sms.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for u in store.unknown_messages(engine, campaign):
        try:
            r = client.get(cfg.sms.status_url.format(key=u.idempotency_key), headers=headers)
        except httpx.HTTPError:
            return
        if r.status_code == 200:
            if store.resolve(engine, u.id, True, datetime.now(UTC), "the gateway's status API has it",
                             provider_id=_provider_id(r)):
                res.resolved_sent += 1
        elif r.status_code == 404:
            if store.resolve(engine, u.id, False, now, f"the gateway's status API never got it ({u.last_error})"):
                res.resolved_not_sent += 1


def receipts_pass(cfg: Config, engine: Engine, campaign: str, client: httpx.Client, res: SmsResult) -> None:
    """Poll the gateway for the delivery status of sent messages; record final ones."""
    token = cfg.sms.token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for mid, pid in store.awaiting_receipt(engine, campaign):
        try:
            r = client.get(f"{cfg.sms.endpoint.rstrip('/')}/{pid}", headers=headers)
        except httpx.HTTPError:
            return
        if r.status_code != 200:
            continue
        status = str(r.json().get("status", ""))
        if status in FINAL_RECEIPTS:
            store.mark(engine, mid, status=SmsStatus.DELIVERED.value if status == "delivered" else SmsStatus.FAILED.value,
                       receipt_status=status, receipt_at=datetime.now(UTC))
            res.receipts += 1


def run(cfg: Config, campaign: CampaignConfig, hopper: Hopper, *, dry_run: bool = False, duration_s: float = 0.0,
        transport: httpx.BaseTransport | None = None, clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep) -> SmsResult:
    """Queue, then send until the outbox is empty or DURATION_S has passed (bounded; sleeps until the next due)."""
    clk = clock or (lambda: datetime.now(UTC))
    res = SmsResult()
    if not dry_run:
        if not cfg.sms.endpoint:
            raise SmsError("[sms] endpoint is not set (the SMS gateway's URL)")
        if cfg.sms.token_env and not cfg.sms.token():
            raise SmsError(f"[sms] token_env: environment variable {cfg.sms.token_env} is not set")
        payment_link(cfg, Recipient(0, "", "", [], 0.0, ""))  # fail before leasing anything without a secret
    queue(cfg, hopper, campaign, clk(), res, dry_run=dry_run)
    if dry_run:
        return res
    deadline = time.monotonic() + max(0.0, duration_s)
    in_doubt_streak = 0
    with httpx.Client(timeout=cfg.sms.timeout_s, transport=transport) as client:
        while True:
            resolve_pass(cfg, hopper.engine, campaign.name, client, res, clk())
            doubtful = res.unknown_new
            send_pass(cfg, hopper, campaign.name, client, res, clk, sleep)
            # an ambiguous failure: let the gateway recover before the next message, or a gateway answering 5xx
            # to everything would turn the whole outbox into `unknown` one message at a time
            in_doubt_streak = in_doubt_streak + 1 if res.unknown_new > doubtful else 0
            receipts_pass(cfg, hopper.engine, campaign.name, client, res)
            c = store.counts(hopper.engine, campaign.name)
            res.pending = c.get(SmsStatus.PENDING, 0)
            res.unknown = c.get(SmsStatus.UNKNOWN, 0)
            sending = c.get(SmsStatus.SENDING, 0)  # claimed by another sender (or a dead one: its claim lapses)
            remaining = deadline - time.monotonic()
            work = res.pending + sending + (res.unknown if cfg.sms.status_url else 0)
            if work == 0 or remaining <= 0:
                break
            wakes = [t for t in (store.next_due(hopper.engine, campaign.name),
                                 store.next_claim_expiry(hopper.engine, campaign.name)) if t is not None]
            wait = (min(wakes) - clk()).total_seconds() if wakes and not res.unknown else 0.2
            if sending:  # another live sender may finish (or fail ambiguously) any moment: look again soon
                wait = min(wait, 0.5)
            if in_doubt_streak:
                wait = max(wait, _backoff(cfg, in_doubt_streak))
            sleep(min(max(0.02, wait), remaining))
    return res
