"""Rollup tables: what the dashboard reads instead of the ledger.

The ledger keeps them in each write's transaction (app.ledger.projections.record_entries) and
can always recompute them from its entries (rebuild_rollups); app.analytics.service only
reads them. Days are the merchant's local calendar days counted from 1970-01-01 and months
are months since January 1970: plain integers, so window arithmetic ("the visit before this
one was before day a") is the same SQL on SQLite and PostgreSQL. No table holds a time finer
than the hour, and every row leads with merchant_id.
On SQLite the tables are WITHOUT ROWID: rows are stored in key order, so the dashboard's range
reads (one merchant, a span of days) touch contiguous pages.
"""

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel


class ActivityRollup(SQLModel, table=True):
    """Counts per merchant, local day, local hour and device (0: no device)."""

    __tablename__ = "analytics_activity"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    day: int = Field(primary_key=True)
    hour: int = Field(primary_key=True)
    device_id: int = Field(primary_key=True)
    scans: int = 0  # stamp entries not undone
    stamps: int = 0
    visits: int = 0  # a card's first stamp of its day (a visit is a card-day with stamps)
    redemptions: int = 0
    voids: int = 0  # entries undone, counted where the undone entry was
    rewards_earned: int = 0  # times a card's lifetime stamps passed a multiple of the goal


class VisitRollup(SQLModel, table=True):
    """Visits per local day by the days since the same card's previous visit (gap 0: first).

    The gap is what makes distinct-card counts over any window cheap: a card was active in
    [a, b) exactly once for each visit in [a, b) whose previous visit lies before a.
    """

    __tablename__ = "analytics_visit"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    day: int = Field(primary_key=True)
    gap: int = Field(primary_key=True)
    visits: int = 0


class HourVisitRollup(SQLModel, table=True):
    """Visits per local day and hour by the days since the same card's previous visit in the
    same weekday and hour (gap 0: its first there): distinct cards per cell of the heat map.

    Like VisitRollup's gap, per cell of the week: a card visited on weekday w at hour h in [a, b)
    once for each such visit in [a, b) whose previous one there lies before a.
    """

    __tablename__ = "analytics_hour_visit"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    day: int = Field(primary_key=True)
    hour: int = Field(primary_key=True)
    gap: int = Field(primary_key=True)
    visits: int = 0


class WeekdayVisitRollup(SQLModel, table=True):
    """Visits per local day by the days since the same card's previous visit on the same
    weekday (gap 0: its first): distinct cards per weekday."""

    __tablename__ = "analytics_weekday_visit"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    day: int = Field(primary_key=True)
    gap: int = Field(primary_key=True)
    visits: int = 0


class DeviceCardRollup(SQLModel, table=True):
    """Cards stamped at a device (0: no device) per local day, by the days since the same card
    was last stamped there (gap 0: never before): distinct cards per device.

    Not ActivityRollup's visits, which count a card-day once, at the device of its first stamp.
    """

    __tablename__ = "analytics_device_card"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    day: int = Field(primary_key=True)
    device_id: int = Field(primary_key=True)
    gap: int = Field(primary_key=True)
    cards: int = 0


class CohortRollup(SQLModel, table=True):
    """Cards first seen in first_month that visited in month."""

    __tablename__ = "analytics_cohort"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    first_month: int = Field(primary_key=True)
    month: int = Field(primary_key=True)
    cards: int = 0


class HoldingRollup(SQLModel, table=True):
    """How many cards hold exactly `stamps` stamps in a program right now (0 not kept).

    The program's liability (stamps held, rewards due) is read from these few rows, with the
    program's current goal, instead of from every balance.
    """

    __tablename__ = "analytics_holding"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    program_id: int = Field(foreign_key="program.id", primary_key=True)
    stamps: int = Field(primary_key=True)
    cards: int = 0


class CardRollup(SQLModel, table=True):
    """Per holder at a merchant: the visit days the other rollups are derived from."""

    __tablename__ = "analytics_card"
    # New cards of a period, and whether they came back, are counted from this index alone.
    __table_args__ = (
        Index("ix_analytics_card_first_day", "merchant_id", "first_day", "second_day"),
        {"sqlite_with_rowid": False},
    )

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    holder: str = Field(primary_key=True, max_length=32)
    first_day: int
    second_day: int | None = None
    last_day: int
    visits: int = 0
    # The last visit day per weekday-hour and the last day per device, the gaps of the tables
    # above are counted from (app.analytics.rollups.CardState.recent: compact JSON).
    recent: str = Field(default="", sa_type=Text, sa_column_kwargs={"server_default": ""})
    # The funnel steps the card has reached here beyond its visits (bits: 1 a first reward,
    # 2 a first redemption), so that each step is counted once, when it happens.
    steps: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # How the card came to this shop (app.analytics.rollups.SOURCES; 0: not known, e.g. rows
    # from before sources were counted): the ledger does not say, so a rebuild keeps it, and
    # deleting the card takes it out of its source's count.
    source: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class PromotionRollup(SQLModel, table=True):
    """Visits at a shop while one of its promotions with a hold-out ran, per local day and group
    (held_out 0: cards the promotion applies to, 1: the cards it leaves out), so the shop can see
    whether the promotion changed behaviour. Counts only: no row names a card.

    visits: card-days with stamps on `day`, from the promotion's first day to its last;
    entered: those that were the card's first visit since the promotion began;
    returned: visits on `day` (up to 30 days after the promotion's last day) whose previous
    visit fell while the promotion ran and at most 30 days before;
    bonus_stamps: what the promotion gave on `day` (any promotion, with or without a hold-out).
    """

    __tablename__ = "analytics_promotion"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    promotion_id: int = Field(foreign_key="promotion.id", primary_key=True)
    day: int = Field(primary_key=True)
    held_out: int = Field(primary_key=True)
    visits: int = 0
    entered: int = 0
    returned: int = 0
    bonus_stamps: int = 0  # given on `day` (for every promotion, held_out 0)


class FunnelRollup(SQLModel, table=True):
    """The way in, counted when each step happens (app.analytics.rollups: FUNNEL_STEPS, SOURCES).

    Funnel steps (1 first visit here, 2 a second visit, 3 a first reward, 4 a first redemption):
    `day` is the local day of the cards' first visit here, so a month's funnel is a sum of days.
    Sources (11 and up): `day` is the day it happened: a card made from the shop's page (poster),
    or a card's first visit here, by how it came (claim code, printed card, an older card, a card
    made that day). One table, so a batch of stamps adds to both with one statement.
    Counts only: no row names a card.
    """

    __tablename__ = "analytics_funnel"
    __table_args__ = {"sqlite_with_rowid": False}

    merchant_id: int = Field(foreign_key="merchant.id", primary_key=True)
    day: int = Field(primary_key=True)
    step: int = Field(primary_key=True)
    cards: int = 0


# Table handles for Core statements, shared by the write path (the ledger's projections) and the
# dashboard's reads.
activity_table = ActivityRollup.__table__  # type: ignore[attr-defined]
visit_table = VisitRollup.__table__  # type: ignore[attr-defined]
cohort_table = CohortRollup.__table__  # type: ignore[attr-defined]
holding_table = HoldingRollup.__table__  # type: ignore[attr-defined]
card_table = CardRollup.__table__  # type: ignore[attr-defined]
hour_table = HourVisitRollup.__table__  # type: ignore[attr-defined]
weekday_table = WeekdayVisitRollup.__table__  # type: ignore[attr-defined]
device_table = DeviceCardRollup.__table__  # type: ignore[attr-defined]
promotion_table = PromotionRollup.__table__  # type: ignore[attr-defined]
funnel_table = FunnelRollup.__table__  # type: ignore[attr-defined]
# Rollups' single-count fields: their table, the key columns after merchant_id, the count.
COUNTED = {
    "visits": (visit_table, ("day", "gap"), "visits"),
    "cohorts": (cohort_table, ("first_month", "month"), "cards"),
    "holdings": (holding_table, ("program_id", "stamps"), "cards"),
    "hours": (hour_table, ("day", "hour", "gap"), "visits"),
    "weekdays": (weekday_table, ("day", "gap"), "visits"),
    "devices": (device_table, ("day", "device_id", "gap"), "cards"),
    "funnel": (funnel_table, ("day", "step"), "cards"),
}
# The distinct-card counts by slot of the week and by device: their gaps chain one card's
# visits together, on a quiet weekday hour or device.
CHAINED = ("hours", "weekdays", "devices")
ROLLUP_TABLES = (
    activity_table,
    promotion_table,
    *(table for table, _, _ in COUNTED.values()),
    card_table,
)
