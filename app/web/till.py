"""The till: a paired cashier device scans cards and stamps, redeems, undoes.

Pages: /till (the till itself, or how to pair when this browser is not a till yet) and
/till/pair/{code} (claims a pairing code). Which state a browser is in is known only to the
browser (the device secret lives in its localStorage), so the pages are the same for everyone
and the service worker can keep them for offline use.

The till's small JSON API (/api/v1/till/...) lives with its domains: pairing and the till's
settings in app.merchants.router, a card's balances in app.ledger.router, the claim QR in
app.claims.router.
"""

import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.merchants.pairing import normalize_code
from app.web import i18n, render
from app.web.i18n import gettext as _

router = APIRouter(include_in_schema=False)


def _messages(request: Request) -> dict[str, str]:
    """Every text the till's script shows, in the page's language.

    Keys are problem codes (the API's refusals, reworded for a cashier) or UI names. Numbers
    from the API's English `detail` fill the {0}, {1} placeholders in order.
    """
    i18n.activate(i18n.choose_language(request))
    return {
        # refusals by problem code
        "cooldown": _("Already stamped {0} seconds ago. Try again in {1} seconds."),
        "daily-cap": _("This card already got the daily maximum of {0} stamps here today."),
        "no-reward-due": _("No reward is due yet: the card has {0} of {1} stamps."),
        "not-a-card": _("Not a treu card. Scan it again."),
        "unknown-card": _("This card is not known here."),
        "card-deleted": _("This card was deleted by its owner."),
        "program-paused": _("This stamp program is paused; the shop owner can resume it."),
        "too-many-stamps": _("At most {0} stamps per scan in this program."),
        "unknown-program": _("This shop has no such stamp program."),
        "undo-window": _("Too late to undo: entries can be undone within {0} minutes."),
        "voided": _("This was already undone."),
        "void-would-go-negative": _(
            "These stamps were already redeemed; undo the redemption first."
        ),
        "unknown-entry": _("There is nothing to undo."),
        "in-flight": _("Still working on it, one moment."),
        "device-revoked": _(
            "This till was switched off by the shop owner. Pair it again to keep using it."
        ),
        "unknown-device": _("This till is not paired any more. Pair it again."),
        "pairing-unknown": _(
            "This pairing code is not known. Check it, or make a new one in the shop's settings."
        ),
        "pairing-used": _(
            "This pairing code was already used. Make a new one in the shop's settings."
        ),
        "pairing-expired": _(
            "This pairing code has expired (they are valid for 10 minutes). Make a new one."
        ),
        "claim-expired": _("The code expired before it was scanned. Make a new one."),
        "program-ended": _(
            "This program has ended: no more stamps. Rewards already collected can still be "
            "redeemed."
        ),
        "program-closed": _("This program was closed by the shop."),
        "unknown-reward": _("This reward is not offered any more. Scan the card again."),
        "server": _("The server did not answer properly. Try again."),
        # the till's own words
        "stamps_of": _("{0} of {1} stamps"),
        "stamped": _("+{0} stamp, now {1} of {2}"),
        "stamped_many": _("+{0} stamps, now {1} of {2}"),
        # {0}: the stamp and its bonuses, e.g. "+1, +1 Happy Hour"
        "stamped_bonus": _("{0}, now {1} of {2}"),
        # punctuation only, the same in both languages
        "bonus_item": "+{0} {1}",
        "in_program": "{0}: {1}",
        "redeemed": _("Redeemed: {0}. {1} stamps left."),
        "undone": _("Undone. The card has {0} of {1} stamps."),
        "undone_what": _("Undone: {0}. The card has {1} of {2} stamps."),
        "undone_redemption": _("Undone: the redemption of {0}. The card has {1} of {2} stamps."),
        "undone_queued": _("Undone. The offline stamp will not be sent."),
        "queued": _("Saved on this till: +{0}. It is sent when the network is back."),
        "reward_due": _("Reward due: {0}"),
        "rewards_due": _("{0} rewards due: {1}"),
        "to_go": _("{0} more for {1}"),
        "redeem": _("Redeem: {0}"),
        "redeem_level": _("Redeem: {0} ({1} stamps)"),
        "redeem_ended": _("Redeem: {0} ({1}, ended)"),
        "redeem_other": _("Redeem: {0} ({1})"),
        "choose_reward": _("Rewards due: which one does the customer want?"),
        "tier_perk": "{0} — {1}",  # the tier's name and its perk
        "confirm_redeem": _("Give {0}?"),
        "confirm_redeem_detail": _("This uses {0} stamps of the card."),
        "undo": _("Undo"),
        "undo_what": _("Undo {0}"),
        "undo_what_redeem": _("Undo redemption"),
        "previous_card": _("previous card"),
        "just_now": _("just now"),
        "seconds_ago": _("{0} seconds ago"),
        "minute_ago": _("1 minute ago"),
        "minutes_ago": _("{0} minutes ago"),
        # the card's short code at this shop: which card was scanned, without any identity
        "card_code": _("Card …{0}"),
        "card_ok": _("Genuine card ✓"),
        "online": _("Online"),
        "offline": _("Offline"),
        "waiting": _("{0} waiting to be sent"),
        "sending": _("Sending…"),
        "sent": _("{0} offline stamps sent."),
        "sent_one": _("1 offline stamp sent."),
        "refused_sync": _("An offline stamp was refused: {0}"),
        "lost": _("Stamps not sent, because the till was switched off first: {0}"),
        "offline_card": _(
            "Offline: the card is genuine; stamps are sent when the network is back. "
            "Redeeming needs the network."
        ),
        "offline_balance": _("Offline: last known {0} of {1} stamps."),
        "offline_redeem": _("Redeeming needs the network. The card's stamps are safe."),
        "offline_undo": _("Undo needs the network for stamps that were already sent."),
        "offline_claim": _("Codes for a phone need the network."),
        "camera_starting": _("Starting the camera…"),
        "camera_on": _("Hold the card's QR code in front of the camera."),
        "camera_denied": _(
            "The camera is blocked for this page. Allow it in the browser's site settings, or "
            "use a handheld scanner or the field below."
        ),
        "camera_missing": _("No camera found. Use a handheld scanner or the field below."),
        "camera_insecure": _(
            "The camera needs a secure connection (https). Use a handheld scanner or the field "
            "below."
        ),
        "camera_failed": _(
            "The camera could not be started. Use a handheld scanner or the field below."
        ),
        "camera_off": _("Camera off. Handheld scanners and the field below still work."),
        "camera_busy": _("The camera is used by another app or tab. Close it and try again."),
        "claim_expires": _("Valid for {0}"),
        "claim_claimed": _("Claimed ✓ +{0} on the customer's card"),
        "claim_scan": _("Customer: scan this with the phone camera"),
        "claim_for": _("{0} stamps for {1}"),
        "claim_for_one": _("1 stamp for {0}"),
        "pairing": _("Pairing this browser…"),
        "paired": _("Paired as {0} at {1}."),
        "code_short": _("A pairing code has 12 letters and digits."),
        "pair_scan": _("Hold the pairing QR code from the shop's settings in front of the camera."),
    }


@router.get("/till", response_class=HTMLResponse)
def till_page(request: Request) -> HTMLResponse:
    """The till, or how to pair (decided in the browser, which alone holds the secret)."""
    return render(request, "till/till.html", messages=_messages(request))


@router.get("/till/pair", response_model=None)
def pair_form(request: Request, code: str = "") -> Response:
    """The typed-code form on an unpaired till lands here when scripts are off."""
    cleaned = normalize_code(code)
    if re.fullmatch(r"[A-Z2-7]{12}", cleaned):
        return RedirectResponse(f"/till/pair/{cleaned}", status_code=303)
    return RedirectResponse("/till", status_code=303)


@router.get("/till/pair/{code}", response_class=HTMLResponse)
def pair_page(code: str, request: Request) -> HTMLResponse:
    """Opened on the new till (from the owner's QR): the script redeems the code once."""
    return render(
        request, "till/pair.html", code=normalize_code(code)[:64], messages=_messages(request)
    )
