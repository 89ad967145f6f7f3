"""Why the dashboard refuses a period."""

from app.errors import Unprocessable


class PeriodError(Unprocessable):
    title = "Invalid period"
