"""The loyalty levers in plain words, in the language being rendered (`i18n.activate`).

One wording for the merchant area's pages, its live preview and the merchant's JSON API
(`summary`), so that what the owner reads before saving is what the list and the API say:
"Tuesdays to Thursdays 14-16 h, every stamp counts double, until 31 March, at most 500 extra
stamps" / "Dienstag bis Donnerstag 14-16 Uhr zählt jeder Stempel doppelt, bis 31. März,
höchstens 500 Extrastempel" (with an en dash between the hours).
"""

from datetime import date
from typing import Any, Protocol

from babel.dates import format_skeleton
from babel.numbers import format_decimal

from app.web import i18n
from app.web.i18n import gettext as _
from app.web.i18n import ngettext

# Day-and-month dates as people write them: "31 March" (not "March 31"), "31. März".
DATE_LOCALES = {"en": "en_GB", "de": "de"}


class PromotionLike(Protocol):
    """A promotion row or a PromotionSpec: what a summary is made from (read only)."""

    @property
    def kind(self) -> str: ...

    @property
    def factor(self) -> int: ...

    @property
    def stamps(self) -> int: ...

    @property
    def weekdays(self) -> int: ...

    @property
    def from_minute(self) -> int | None: ...

    @property
    def to_minute(self) -> int | None: ...

    @property
    def away_days(self) -> int: ...

    @property
    def starts_on(self) -> date | None: ...

    @property
    def ends_on(self) -> date | None: ...

    @property
    def budget(self) -> int: ...

    @property
    def holdout_percent(self) -> int: ...


def _number(n: int) -> str:
    return format_decimal(n, locale=i18n.current_language())


def _day(day: date, today: date) -> str:
    """'31 March' / '31. März'; with the year when it is not this year."""
    locale = DATE_LOCALES.get(i18n.current_language(), "en_GB")
    return format_skeleton("dMMMM" if day.year == today.year else "yMMMMd", day, locale=locale)


def _weekdays() -> tuple[str, ...]:
    """Weekday names as a list or a range of days says them, Monday first."""
    return (
        _("Mondays"), _("Tuesdays"), _("Wednesdays"), _("Thursdays"), _("Fridays"),
        _("Saturdays"), _("Sundays"),
    )  # fmt: skip


def _one_weekday(index: int) -> str:
    return (
        _("every Monday"), _("every Tuesday"), _("every Wednesday"), _("every Thursday"),
        _("every Friday"), _("every Saturday"), _("every Sunday"),
    )[index]  # fmt: skip


def _run(days: list[int]) -> tuple[int, int] | None:
    """(first, last) when the days are one unbroken run of three or more, across the weekend
    too (Friday to Monday); else None."""
    starts = [d for d in days if (d - 1) % 7 not in days]
    if len(days) < 3 or len(starts) != 1:
        return None
    return starts[0], (starts[0] + len(days) - 1) % 7


def days_text(mask: int) -> str | None:
    """'Tuesdays to Thursdays', 'Mondays, Wednesdays and Fridays', 'every Sunday'; None for
    every day of the week."""
    days = [i for i in range(7) if mask & (1 << i)]
    if len(days) == 7 or not days:
        return None
    if len(days) == 1:
        return _one_weekday(days[0])
    names = _weekdays()
    run = _run(days)
    if run is not None:
        return _("%(first)s to %(last)s") % {"first": names[run[0]], "last": names[run[1]]}
    listed = [names[d] for d in days]
    return _("%(days)s and %(last)s") % {"days": ", ".join(listed[:-1]), "last": listed[-1]}


def _clock(minute: int) -> str:
    hours, minutes = divmod(minute, 60)
    return str(hours) if not minutes else f"{hours}:{minutes:02d}"


def _when(p: PromotionLike) -> str | None:
    days = days_text(p.weekdays)
    hours = None
    if p.from_minute is not None and p.to_minute is not None:
        hours = _("%(start)s\u2013%(end)s h") % {
            "start": _clock(p.from_minute), "end": _clock(p.to_minute),
        }  # fmt: skip
    if days and hours:
        return f"{days} {hours}"
    if hours:
        return _("daily %(hours)s") % {"hours": hours}
    return days


def _times(factor: int) -> str:
    return {2: _("double"), 3: _("triple"), 4: _("four times"), 5: _("five times")}.get(
        factor, f"{factor}x"
    )


def _rule(p: PromotionLike) -> str:
    """What the promotion gives, and when."""
    if p.kind == "multiplier":
        when = _when(p)
        if when is None:
            return _("Every stamp counts %(times)s") % {"times": _times(p.factor)}
        return _("%(when)s, every stamp counts %(times)s") % {
            "when": when, "times": _times(p.factor),
        }  # fmt: skip
    plus = ngettext("+%(n)s stamp", "+%(n)s stamps", p.stamps) % {"n": p.stamps}
    if p.kind == "welcome":
        return _("%(stamps)s on the first visit of a card") % {"stamps": plus}
    if p.kind == "winback":
        after = ngettext(
            "after %(n)s day or more away", "after %(n)s days or more away", p.away_days
        ) % {"n": _number(p.away_days)}
        return _("%(stamps)s on the first visit %(after)s") % {"stamps": plus, "after": after}
    if p.kind == "anniversary":
        return _("%(stamps)s on the first visit after each anniversary of a card's first visit") % {
            "stamps": plus
        }
    return _("%(stamps)s on every visit") % {"stamps": plus}


def _dates(p: PromotionLike, today: date) -> str | None:
    start, end = p.starts_on, p.ends_on
    if start and end and start == end:
        return _("only on %(day)s") % {"day": _day(start, today)}
    if start and end:
        return _("from %(start)s to %(end)s") % {
            "start": _day(start, today), "end": _day(end, today),
        }  # fmt: skip
    if start:
        return _("from %(start)s") % {"start": _day(start, today)}
    if end:
        return _("until %(end)s") % {"end": _day(end, today)}
    return None


def promotion_summary(p: PromotionLike, *, today: date, program: str | None = None) -> str:
    """The promotion in one sentence: its rule and time, the program it is limited to, its
    dates, its budget and its hold-out share."""
    parts = [_rule(p)]
    if program:
        parts.append(_("only in “%(program)s”") % {"program": program})
    dates = _dates(p, today)
    if dates:
        parts.append(dates)
    if p.budget:
        parts.append(
            ngettext("at most %(n)s extra stamp", "at most %(n)s extra stamps", p.budget)
            % {"n": _number(p.budget)}
        )
    if p.holdout_percent:
        parts.append(
            _("%(percent)s%% of cards get no bonus, for comparison")
            % {"percent": p.holdout_percent}
        )
    sentence = ", ".join(parts)
    return sentence[:1].upper() + sentence[1:]


def spent_text(spent: int, budget: int) -> str:
    """'120 of 500 extra stamps given' / '120 extra stamps given, no limit'."""
    if budget:
        return ngettext(
            "%(spent)s of %(n)s extra stamp given", "%(spent)s of %(n)s extra stamps given", budget
        ) % {"spent": _number(spent), "n": _number(budget)}
    return ngettext(
        "%(spent)s extra stamp given, no limit", "%(spent)s extra stamps given, no limit", spent
    ) % {"spent": _number(spent)}


def kind_name(kind: str) -> str:
    return {
        "multiplier": _("Happy hour"), "welcome": _("Welcome bonus"), "winback": _("Win-back"),
        "anniversary": _("Anniversary"), "campaign": _("Campaign"),
    }.get(kind, kind)  # fmt: skip


def kind_hint(kind: str) -> str:
    return {
        "multiplier": _("Every stamp counts double (or more) on the days and hours you choose: "
                        "for your slow hours."),
        "welcome": _("Extra stamps on a card's first visit at your shop."),
        "winback": _("Extra stamps when a card comes back after a long time away."),
        "anniversary": _("Extra stamps on the first visit a year after a card's first visit "
                         "here (and every year after). There is no birthday: nobody tells us "
                         "one."),
        "campaign": _("Extra stamps on every visit between two dates."),
    }.get(kind, "")  # fmt: skip


def N_(message: str) -> str:
    """Mark a message for the catalogs (gettext's N_): it is translated where it is used."""
    return message


DEFAULT_TITLES = {
    "multiplier": N_("Happy hour"), "welcome": N_("Welcome"), "winback": N_("Welcome back"),
    "anniversary": N_("Anniversary"), "campaign": N_("Campaign bonus"),
}  # fmt: skip


def default_title(kind: str, language: str) -> str:
    """What the till and the card page call a promotion unless the owner names it, in the
    shop's language (its customers read it)."""
    return i18n.translations(language).ugettext(DEFAULT_TITLES.get(kind, kind))


def status_name(status: str) -> str:
    """A program's or a promotion's state, as its chip says it."""
    return {
        "running": _("Running"), "paused": _("Paused"), "archived": _("Archived"),
        "closed": _("Closed"), "scheduled": _("Scheduled"), "spent": _("Budget used up"),
        "over": _("Over"), "ended": _("Ended"),
    }.get(status, status)  # fmt: skip


def tier_text(tier: Any) -> str:
    """'From 30 stamps collected here: +1 stamp on every visit, 10 % on cakes'."""
    parts = [
        ngettext(
            "from %(n)s stamp collected here", "from %(n)s stamps collected here",
            tier.lifetime_stamps,
        ) % {"n": _number(tier.lifetime_stamps)}
    ]  # fmt: skip
    if tier.bonus_per_visit:
        parts.append(
            ngettext(
                "+%(n)s stamp on every visit", "+%(n)s stamps on every visit", tier.bonus_per_visit
            )
            % {"n": tier.bonus_per_visit}
        )
    if tier.perk_text:
        parts.append(tier.perk_text)
    sentence = ", ".join(parts)
    return sentence[:1].upper() + sentence[1:]
