"""Why feedback is refused. The details are English msgids: pages show them translated."""

from typing import Any

from app.errors import AppError, Conflict, Unprocessable


class NoRecentVisit(AppError):
    status = 403
    title = "No recent visit"

    def __init__(self) -> None:
        super().__init__(
            "Feedback opens after a visit: collect a stamp here and you can tell the shop how "
            "it was, for 30 days.",
            code="no-recent-visit",
        )


class EditWindowClosed(AppError):
    status = 403
    title = "Too late to change"

    def __init__(self) -> None:
        super().__init__(
            "Feedback can be changed for 24 hours after it was given.",
            code="edit-window-closed",
        )


class AlreadyGiven(Conflict):
    title = "Feedback already given"

    def __init__(self, feedback_id: str) -> None:
        super().__init__(
            "You already gave feedback for this visit; you can change it for 24 hours.",
            code="already-given",
        )
        self.feedback_id = feedback_id

    def problem(self, base_url: str = "") -> dict[str, Any]:
        return {**super().problem(base_url), "feedback_id": self.feedback_id}


class TooMuchFeedback(AppError):
    status = 429
    title = "Too much feedback"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(
            detail, code="feedback-rate-limited", headers={"Retry-After": str(retry_after)}
        )


class InvalidFeedback(Unprocessable):
    """Input the schema cannot check alone: the comment's length, the merchant's tags."""


class InvalidForm(Unprocessable):
    """The form without JavaScript, refused where the API's schema refuses its body."""

    title = "Invalid feedback"
