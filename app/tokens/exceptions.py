"""Why a card is refused: not a treu card, unknown here, or deleted by its owner."""

from app.errors import AppError, NotFound

NOT_A_CARD = "This is not a treu card."


class NotACard(AppError):
    """What was sent or scanned is no valid token (or card URL): 422 in a body, 404 in a path."""

    status = 422
    title = "Not a treu card"

    def __init__(self, detail: str = NOT_A_CARD, *, status: int | None = None) -> None:
        super().__init__(detail, status=status, code="not-a-card")


class UnknownCard(NotFound):
    title = "Unknown card"

    def __init__(self, detail: str = "This card is not known here.") -> None:
        super().__init__(detail, code="unknown-card")


class CardDeleted(AppError):
    status = 410
    title = "Card deleted"

    def __init__(self, detail: str = "This card was deleted by its owner.") -> None:
        super().__init__(detail, code="card-deleted")
