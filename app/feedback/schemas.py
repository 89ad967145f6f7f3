"""Feedback API bodies."""

from pydantic import BaseModel, ConfigDict, Field

from app.inputs import Line, Text

# The comment limit is checked after normalising (a line break typed as CR LF counts once);
# this is only the hard cap on what is read at all.
RAW_COMMENT_CHARS = 2000
COMMENT_CHARS = 500
MAX_TAGS = 10


class FeedbackFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5, description="1 (very bad) to 5 (very good)")
    recommend: int | None = Field(
        default=None, ge=0, le=10, description="How likely would you recommend us, 0-10"
    )
    comment: Text = Field(default="", max_length=RAW_COMMENT_CHARS, description="Up to 500 chars")
    tags: list[Line] = Field(default_factory=list, max_length=MAX_TAGS)


class FeedbackIn(FeedbackFields):
    token: Text = Field(min_length=1, max_length=4096, description="The card token or card URL")
    merchant: Line = Field(min_length=1, max_length=64, description="The merchant's slug")


class FeedbackEdit(FeedbackFields):
    token: Text = Field(min_length=1, max_length=4096)


class MerchantRef(BaseModel):
    slug: str
    name: str


class FeedbackOut(BaseModel):
    id: str
    merchant: MerchantRef
    rating: int
    recommend: int | None
    comment: str
    tags: list[str]
    created_at: str
    editable_until: str
    removed: list[str] = Field(
        description="What was taken out of the comment to keep the writer anonymous: "
        "email, url, iban, phone"
    )
    review_link: str | None = Field(
        description="The merchant's public review page (through treu's counting redirect), "
        "offered to everyone, whatever the rating"
    )
    reply: str | None
    replied_at: str | None


class ReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    merchant: Line | None = Field(default=None, max_length=64)


class ReplyOut(BaseModel):
    text: str
    replied_at: str
    unread: bool
    in_reply_to: dict[str, object]


class MerchantFeedback(BaseModel):
    slug: str
    name: str
    can_give_feedback: bool
    can_edit_feedback: bool
    feedback_url: str
    replies: list[ReplyOut]


class CardFeedback(BaseModel):
    merchants: list[MerchantFeedback]
