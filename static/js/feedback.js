// Feedback page: a live character count for the comment, and replies marked read once shown.
const comment = document.getElementById("comment");
const count = document.getElementById("comment-count");
if (comment && count) {
  const max = Number(count.dataset.max || 500);
  const update = () => {
    const used = comment.value.length;
    count.textContent = `${used}/${max}`;
    count.classList.toggle("near", used > max - 50);
  };
  comment.addEventListener("input", update);
  update();
}

// The shop's new replies are on screen now: tell the server, so the card's badge goes away.
const conversation = document.getElementById("conversation");
if (conversation && Number(conversation.dataset.unread) > 0) {
  const { token, merchant } = conversation.dataset;
  fetch(`/api/v1/cards/${encodeURIComponent(token)}/feedback/read`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ merchant }),
    keepalive: true,
  }).catch(() => {
    // Offline: the badge simply stays until the next visit of this page.
  });
}
