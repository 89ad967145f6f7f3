// The new-promotion form: while the owner types, ask the server for the promotion in plain
// words (the sentence the list and the API will show, in the page's language) and show it
// under the form. Without this script the sentence shows once the form is saved.
const form = document.getElementById("promotion-form");
const preview = document.getElementById("promotion-preview");
const WAIT_MS = 250;
let timer;
let asked = 0;

async function refresh() {
  const fields = new URLSearchParams(new FormData(form));
  fields.delete("csrf_token"); // the token stays out of addresses
  const mine = ++asked;
  let answer;
  try {
    answer = await fetch(`${form.dataset.previewUrl}?${fields}`, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      redirect: "error", // a lapsed login answers with a redirect: keep the last sentence
    });
  } catch {
    return; // offline or logged out
  }
  if (!answer.ok || mine !== asked) return; // a later answer is on its way
  const { summary } = await answer.json();
  preview.textContent = summary || preview.dataset.incomplete;
}

if (form && preview) {
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, WAIT_MS);
  });
}
